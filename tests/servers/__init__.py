"""Real servers started by the test suite (each in a temp dir, on loopback)."""
