"""Shared pytest setup. Fixtures that start real services live in plugin modules, one per part."""

pytest_plugins = [
    "tests.plugin_gpu",
    "tests.plugin_juicefs",
    "tests.plugin_standin",
    "tests.plugin_agent",
    "tests.plugin_mysql",
    "tests.plugin_coordinator",
    "tests.plugin_cluster",
]
