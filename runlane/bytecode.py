"""Whether the workflow sandbox can load a module from bytecode instead of compiling it.

Temporal's sandbox imports the workflow's own module afresh for every new workflow instance
(each run, and each run evicted from the worker cache). Python reads that module from its
`__pycache__` file when one matches the source; otherwise it compiles the source every time,
and nothing writes the cache when PYTHONDONTWRITEBYTECODE is set (Docker images, this machine)
or the tree is read-only. Measured: compiling `workflows/run_workflow.py` costs 2.8 ms per run,
a third of the worker's CPU for a 10-node pure run. `make run`, `make test` and
`make bench` (the `bytecode` target) and the Dockerfile precompile; the worker warns when
that was skipped.
"""

from __future__ import annotations

import importlib.util
import os
from types import ModuleType

# The pyc header: magic, flags, source mtime, source size (PEP 552, timestamp-based pycs).
_HEADER = 16


def compiled_for_source(module: ModuleType) -> bool:
    """True when `module`'s source has an up-to-date cached bytecode file next to it."""
    source = getattr(module, "__file__", None)
    if not source or not source.endswith(".py"):
        return True  # frozen, built in, or loaded from a .pyc: nothing to compile
    try:
        stat = os.stat(source)
        with open(importlib.util.cache_from_source(source), "rb") as cached:
            header = cached.read(_HEADER)
    except OSError:
        return False
    if len(header) < _HEADER or header[:4] != importlib.util.MAGIC_NUMBER:
        return False
    flags = int.from_bytes(header[4:8], "little")
    if flags & 0b1:  # hash-based pyc: Python validates it against the source itself
        return True
    mtime = int.from_bytes(header[8:12], "little")
    size = int.from_bytes(header[12:16], "little")
    return mtime == int(stat.st_mtime) & 0xFFFFFFFF and size == stat.st_size & 0xFFFFFFFF
