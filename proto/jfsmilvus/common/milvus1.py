"""Milvus 1.x facts that the agent and the coordinator (and its doctor) both need: ports, how Milvus reads a
boolean and its WAL defaults, the states of the meta-database CREATE probe (agent/milvus/metaright.py), and the
NVIDIA container toolkit's binaries (agent/milvus/nvidiatoolkit.py)."""

from __future__ import annotations

# The ports a Milvus 1.x server listens on in its container (server_config.yaml network.bind.port, web.port);
# the agent publishes them on milvus.port and milvus.http_port, these by default.
MILVUS_PORT = 19530
MILVUS_HTTP_PORT = 19121
MISHARDS_SERVER_PORT = 19531  # Mishards' own port when it shares a host with a Milvus on 19530
# The server_config.yaml `version` Milvus 1.x reads: v1.0.0 Config.cpp milvus_config_version_map["1.0.0"], 1.1's
# SERVER_CONFIG_VERSION.
MILVUS_CONFIG_VERSION = "0.5"

# What Milvus takes as a boolean (ValidationUtil::ValidateStringIsBool, StringHelpFunctions::ConvertToBoolean).
MILVUS_TRUE = ("true", "on", "yes", "1")
MILVUS_FALSE = ("false", "off", "no", "0", "")
WAL_ENABLE_DEFAULT = True  # CONFIG_WAL_ENABLE_DEFAULT
RECOVERY_ERROR_IGNORE_DEFAULT = True  # CONFIG_WAL_RECOVERY_ERROR_IGNORE_DEFAULT


def milvus_bool(text: str | None, default: bool) -> bool | None:
    """How Milvus reads a boolean key: `default` when absent, None when it is no boolean (its config check
    then stops the start)."""
    if text is None:
        return default
    lowered = text.lower()
    if lowered in MILVUS_TRUE:
        return True
    if lowered in MILVUS_FALSE:
        return False
    return None


# The meta-database CREATE probe: how often, and what it found.
META_PROBE_INTERVAL_S = 300.0
GRANTED = "granted"  # the CREATE TABLE IF NOT EXISTS went through
REFUSED = "refused"  # MySQL denied the account the right (1142) or the database (1044)
LOGIN_REFUSED = "login_refused"  # MySQL refused the login itself (1045): Milvus cannot log in either
UNREACHABLE = "unreachable"  # no answer from MySQL (connection refused, timeout, lost)
FAILED = "error"  # anything else (an unknown database, ...): the detail says what
META_RIGHT_STATES = (GRANTED, REFUSED, LOGIN_REFUSED, UNREACHABLE, FAILED)

# The NVIDIA container toolkit's binaries that serve a GPU device request.
RUNTIME_HOOK = "nvidia-container-runtime-hook"
CONTAINER_CLI = "nvidia-container-cli"
TOOLKIT_CLI = "nvidia-ctk"
CDI_HOOK = "nvidia-cdi-hook"
TOOLKIT_BINARIES = (RUNTIME_HOOK, CONTAINER_CLI, TOOLKIT_CLI, CDI_HOOK)
