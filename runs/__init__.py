"""The run service: the HTTP-free layer every way of starting, reading and acting on runs goes
through (runs/service.py); the API, the CLI, schedules, webhooks and bulk operations call it."""
