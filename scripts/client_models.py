"""Writes runlane/client/models.py from the API's OpenAPI document, so the client's models
and the API's schemas have one source (api/schemas.py). `make client-models` runs it;
tests/client/test_models_current.py fails when the committed file differs from what this
writes for the current app.

    .venv/bin/python -m scripts.client_models           # rewrite the file
    .venv/bin/python -m scripts.client_models --check   # exit 1 if it is out of date
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "runlane" / "client" / "models.py"
BIN = Path(sys.executable).parent

HEADER = '''\
"""The API's request and response models, GENERATED from its OpenAPI document
(api.main.create_app().openapi()) by datamodel-code-generator: do not edit by hand.

Regenerate with `make client-models` (python -m scripts.client_models);
tests/client/test_models_current.py fails when this file is out of date.
Unknown fields are kept (extra="allow"), so an older client reads a newer API's answers.
"""

# The descriptions are the API's, on one line each.
# ruff: noqa: E501'''

# Generation options: pydantic v2 models, typed like the rest of the code base.
OPTIONS = [
    "--input-file-type=openapi",
    "--output-model-type=pydantic_v2.BaseModel",
    "--target-python-version=3.11",
    "--use-standard-collections",
    "--use-union-operator",
    "--use-annotated",
    "--field-constraints",
    "--disable-timestamp",
    "--enum-field-as-literal=all",
    "--extra-fields=allow",
    "--collapse-root-models",
    "--use-schema-description",
    "--use-double-quotes",
]


def openapi_document() -> dict[str, Any]:
    from api.main import create_app

    return create_app().openapi()


def _refs(value: Any) -> set[str]:
    """The schema names a piece of the document refers to."""
    found = re.findall(r'"#/components/schemas/([^"]+)"', json.dumps(value))
    return set(found)


def operation_schemas(document: dict[str, Any]) -> dict[str, Any]:
    """The document with only the schemas the operations use, directly or through other
    schemas: the client reads and sends those. (The node types' config schemas, listed
    for the docs, describe definitions, which the client passes through as JSON.)"""
    schemas = document.get("components", {}).get("schemas", {})
    wanted: set[str] = set()
    todo = _refs(document.get("paths", {}))
    while todo:
        name = todo.pop()
        if name in wanted or name not in schemas:
            continue
        wanted.add(name)
        todo |= _refs(schemas[name])
    kept = dict(document)
    kept["components"] = {
        **document.get("components", {}),
        "schemas": {name: schema for name, schema in schemas.items() if name in wanted},
    }
    return kept


def generate(document: dict[str, Any]) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "openapi.json"
        output = Path(tmp) / "models.py"
        source.write_text(json.dumps(operation_schemas(document), indent=1))
        ran = subprocess.run(
            [str(BIN / "datamodel-codegen"), f"--input={source}", f"--output={output}", *OPTIONS],
            check=False,
            capture_output=True,
            text=True,
        )
        if not output.exists():
            raise SystemExit(f"datamodel-codegen failed:\n{ran.stderr}")
        generated = output.read_text()
    # The generator's own header names a temporary file: ours says where it comes from.
    body = re.sub(r"\A(#[^\n]*\n)+\n*", "", generated)
    text = f"{HEADER}\n\n{body}"
    # Formatted and linted as the repository's own code (ruff config in pyproject.toml).
    fixed = subprocess.run(
        [str(BIN / "ruff"), "check", "--fix-only", "--quiet", "--stdin-filename", str(TARGET), "-"],
        input=text,
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout
    return subprocess.run(
        [str(BIN / "ruff"), "format", "--quiet", "--stdin-filename", str(TARGET), "-"],
        input=fixed,
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is stale")
    args = parser.parse_args()
    text = generate(openapi_document())
    if args.check:
        current = TARGET.read_text() if TARGET.exists() else ""
        if current != text:
            print(f"{TARGET.relative_to(ROOT)} is out of date: run `make client-models`")  # noqa: T201
            return 1
        return 0
    TARGET.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
