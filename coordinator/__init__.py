"""jfs-milvus-coordinator: assigns the rw and ro roles, fails over, and keeps Mishards pointed right."""

from jfsmilvus.common.version import version

__version__ = version()
