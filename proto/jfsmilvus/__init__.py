"""Wire contract between jfs-milvus agents, coordinators and coordinatorctl."""
