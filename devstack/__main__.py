"""`python -m devstack`: the local stack in the foreground (devstack/supervisor.py)."""

from __future__ import annotations

import sys

from devstack.supervisor import main

if __name__ == "__main__":
    sys.exit(main())
