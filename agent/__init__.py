"""jfs-milvus-agent: one per GPU node; observes GPUs, the JuiceFS mount and Milvus, and converges to its role."""

__version__ = "0.1.0"
