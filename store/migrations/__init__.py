"""Alembic's environment for the relational store: store/migrate.py runs it (API start-up,
`make run`, `python -m store.migrate`); the revisions are in versions/."""
