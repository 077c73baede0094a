"""`make chaos`: Runlane's fault suite. Kills and restarts the processes of a stack of its own
under load and writes what it measured, beside what it expects, to RELIABILITY.md."""
