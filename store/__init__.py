"""The relational store: workflow definitions, drafts, snapshots, file metadata, idempotency keys.

Run state is deliberately absent: Temporal owns it (DESIGN.md, "no dual writes").
"""
