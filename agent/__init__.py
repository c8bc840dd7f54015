"""jfs-milvus-agent: one per GPU node; observes GPUs, the JuiceFS mount and Milvus, and converges to its role."""

from typing import Any


def __getattr__(name: str) -> Any:
    # __version__ comes from pyproject.toml or the installed metadata (jfsmilvus/common/version.py), read on
    # first use so that importing the package (the mount helper does) reads nothing.
    if name == "__version__":
        from jfsmilvus.common.version import version

        return version()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
