"""Stand-in for Mishards 1.x (tests only): its settings, routing, proxy and start-up; see ../README.md."""
