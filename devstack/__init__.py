"""Development tooling, not shipped: `python -m devstack` (what `make run` runs) supervises the
local stack. Outside the installed packages (pyproject.toml, the Docker image), like bench/."""
