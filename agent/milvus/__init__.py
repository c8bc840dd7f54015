"""The local Milvus 1.x container: its server_config.yaml, its container, and converging it to a role."""
