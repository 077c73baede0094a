"""Shared, side-effect-free pieces used by the API, the worker and the workflow sandbox."""
