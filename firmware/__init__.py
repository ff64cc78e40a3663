"""evalbox box firmware (MicroPython). Not imported by the collector."""
