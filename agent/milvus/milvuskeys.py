"""The server_config.yaml keys Milvus 1.x reads, for warning about the ones it would silently ignore.

Milvus loads unknown keys and sections and never reads them (config/YamlConfigMgr.cpp, ConfigNode.cpp), so a
typo or an old 0.x key name just does nothing. The names are the union of the v1.0.0 and 1.1
`core/conf/server_config.template` and of the keys `core/src/config/Config.cpp` reads (the same on both).
"""

from __future__ import annotations

from typing import Any

from jfsmilvus.common.configschema import did_you_mean
from jfsmilvus.common.milvus1 import MILVUS_CONFIG_VERSION

CONFIG_VERSION = MILVUS_CONFIG_VERSION  # jfsmilvus.common.milvus1, shared with the cluster config's check

MILVUS_1X_KEYS: dict[str, tuple[str, ...]] = {
    "cluster": ("enable", "role"),
    "general": ("timezone", "meta_uri"),
    # Flat dotted keys: Milvus reads "bind.address", not a nested "bind:" mapping.
    "network": ("bind.address", "bind.port", "http.enable", "http.port"),
    "db_config": ("archive_disk_threshold", "archive_days_threshold"),
    "storage": ("path", "auto_flush_interval", "file_cleanup_timeout"),
    "wal": ("enable", "recovery_error_ignore", "buffer_size", "path"),
    "cache": ("cache_size", "cpu_cache_threshold", "insert_buffer_size", "cache_insert_data", "preload_collection"),
    "gpu": (
        "enable",
        "cache.enable",
        "cache_size",
        "cache_threshold",
        "gpu_search_threshold",
        "search_devices",
        "build_index_devices",
    ),
    "fpga": ("enable", "cache_size", "cache_threshold", "search_devices"),
    "engine_config": ("use_blas_threshold", "omp_thread_num", "simd_type", "search_combine_nq", "max_partition_num"),
    "tracing_config": ("json_config_path",),
    "logs": (
        "level",
        "trace.enable",
        "path",
        "max_log_file_size",
        "log_rotate_num",
        "log_to_stdout",
        "log_to_file",
    ),
    "metric": ("enable", "address", "port", "cluster_label", "instance_label"),
}
TOP_LEVEL_SCALARS = ("version",)
# The test stand-in's own knobs (tests/standin): not Milvus's, and never a problem.
STANDIN_SECTION = "standin"


def _did_you_mean(name: str, known: list[str]) -> str:
    close = did_you_mean(name, known)
    return f"; did you mean '{close}'?" if close else ""


def unknown_keys(base: dict[str, Any], path: str) -> list[str]:
    """One warning per section or key of `base` that Milvus 1.x does not read, with a did-you-mean."""
    warnings: list[str] = []
    sections = [*MILVUS_1X_KEYS, *TOP_LEVEL_SCALARS]
    for section, value in base.items():
        name = str(section)
        if name in TOP_LEVEL_SCALARS or name == STANDIN_SECTION:
            continue
        known = MILVUS_1X_KEYS.get(name)
        if known is None:
            warnings.append(
                f"{path}: section '{name}' is not one Milvus 1.x reads; it is ignored{_did_you_mean(name, sections)}"
            )
            continue
        for key, item in (value or {}).items():
            leaf = str(key)
            if leaf in known:
                continue
            dotted = [k for k in known if k.startswith(f"{leaf}.")]
            if isinstance(item, dict) and dotted:
                hint = f"; Milvus reads flat dotted keys: write '{dotted[0]}: ...' in '{name}', not a nested '{leaf}:'"
            else:
                hint = _did_you_mean(leaf, list(known))
            warnings.append(f"{path}: key '{name}.{leaf}' is not one Milvus 1.x reads; it is ignored{hint}")
    return warnings
