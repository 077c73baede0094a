"""Bulk operations (API.md part 2 "Recovery: more"): retry, cancel, restart or rerun every run
a filter matches, as one durable Temporal workflow. A layer above the run service, like
triggers/: each run's action goes through `runs.service.RunService`, the same code (and the
same rules) as the REST call for that run. Nothing here imports FastAPI."""
