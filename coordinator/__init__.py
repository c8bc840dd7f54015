"""jfs-milvus-coordinator: assigns the rw and ro roles, fails over, and keeps Mishards pointed right."""

__version__ = "0.1.0"
