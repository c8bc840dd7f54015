"""The jfs-milvus wire contract, version 1 (generated modules next to their .proto files)."""
