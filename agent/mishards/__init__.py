"""Mishards on the nodes that host it: its env file, and its container restarted when that file changes."""
