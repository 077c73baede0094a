"""The run workflow: a deterministic DAG interpreter, and its input/output models."""
