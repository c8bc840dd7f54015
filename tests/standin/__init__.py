"""A small stand-in for the Milvus 1.x GPU image, built locally from Debian packages (see README.md)."""
