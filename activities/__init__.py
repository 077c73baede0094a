"""Node types: one module per family, all listed in one registry (`activities.registry`)."""
