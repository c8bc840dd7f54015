"""Fixtures for real Redis and JuiceFS volumes (owned by the mount work)."""
