"""Triggers and events (API.md part 2 "Triggers"): schedules, inbound webhooks and outbound
event webhooks. A layer above the run service: every run a trigger starts goes through
`runs.service.RunService`, the same code as the REST call. Nothing here imports FastAPI."""
