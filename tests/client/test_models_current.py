"""runlane/client/models.py is what the generator writes from today's OpenAPI document: a
change to the API's schemas without `make client-models` fails here."""

from __future__ import annotations

from scripts.client_models import TARGET, generate, openapi_document


def test_the_committed_models_match_the_api() -> None:
    assert TARGET.read_text() == generate(openapi_document()), (
        "runlane/client/models.py is out of date: run `make client-models`"
    )
