"""The `tidegate` command line: the composition root that wires the engine to its callers."""
