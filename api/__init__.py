"""The FastAPI facade: routes by resource, dependencies, error mapping, schemas, store."""
