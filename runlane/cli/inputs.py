"""What the command line hands to the API: definition files (YAML or JSON) and a run's inputs
given as NODE=VALUE options."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import yaml


@dataclass(frozen=True)
class WorkflowFile:
    """A workflow file: `{name, description?, definition}`, or a bare definition
    (`{nodes, edges}`) whose name is the file's stem."""

    path: Path
    name: str
    description: str | None
    definition: Any


def read_structured(path: Path) -> Any:
    """A YAML or JSON file's content (JSON is YAML, but a .json file gets JSON's own errors)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise click.BadParameter(f"cannot read {path}: {err.strerror}") from None
    except UnicodeDecodeError:
        raise click.BadParameter(f"{path} is not UTF-8 text") from None
    try:
        if path.suffix.lower() == ".json":
            return json.loads(text)
        return yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as err:
        raise click.BadParameter(f"{path} is not valid {_kind(path)}: {err}") from None


def _kind(path: Path) -> str:
    return "JSON" if path.suffix.lower() == ".json" else "YAML"


def workflow_file(path: Path) -> WorkflowFile:
    content = read_structured(path)
    if isinstance(content, dict) and "definition" in content:
        name = content.get("name")
        description = content.get("description")
        if name is not None and not isinstance(name, str):
            raise click.BadParameter(f"{path}: `name` must be a string")
        if description is not None and not isinstance(description, str):
            raise click.BadParameter(f"{path}: `description` must be a string")
        return WorkflowFile(path, name or path.stem, description, content["definition"])
    # Anything else is taken as the definition itself; the API says what is wrong with it.
    return WorkflowFile(path, path.stem, None, content)


def split_assignment(option: str, value: str) -> tuple[str, str]:
    node, sep, rest = value.partition("=")
    if not sep or not node:
        raise click.BadParameter(f"expected NODE=VALUE, got {value!r}", param_hint=option)
    return node, rest


def _read_text_source(option: str, source: str) -> str:
    """`@path` reads a file, `@-` stdin; anything else is the value itself."""
    if not source.startswith("@"):
        return source
    if source == "@-":
        return sys.stdin.read()
    path = Path(source[1:])
    try:
        return path.read_text(encoding="utf-8")
    except OSError as err:
        raise click.BadParameter(f"cannot read {path}: {err.strerror}", param_hint=option) from None
    except UnicodeDecodeError:
        raise click.BadParameter(f"{path} is not UTF-8 text", param_hint=option) from None


def json_inputs(values: tuple[str, ...], option: str = "--json") -> dict[str, Any]:
    """`--json NODE='{"a": 1}'` or `--json NODE=@file.json` (`@-`: stdin)."""
    found: dict[str, Any] = {}
    for value in values:
        node, source = split_assignment(option, value)
        text = _read_text_source(option, source)
        try:
            found[node] = json.loads(text)
        except json.JSONDecodeError as err:
            raise click.BadParameter(
                f"{node}: not JSON ({err.msg} at line {err.lineno} column {err.colno})",
                param_hint=option,
            ) from None
    return found


def text_inputs(values: tuple[str, ...], option: str = "--text") -> dict[str, str]:
    """`--text NODE="..."` or `--text NODE=@file.txt` (`@-`: stdin)."""
    found: dict[str, str] = {}
    for value in values:
        node, source = split_assignment(option, value)
        found[node] = _read_text_source(option, source)
    return found


def document_files(values: tuple[str, ...], option: str = "--doc") -> dict[str, Path]:
    """`--doc NODE=invoice.pdf`. The client sends each inline (base64, its MIME type guessed
    from its name): the start is then one request, which the same --command-id replays
    exactly (an upload first would make every replay's body differ)."""
    found: dict[str, Path] = {}
    for value in values:
        node, source = split_assignment(option, value)
        path = Path(source)
        if not path.is_file():
            raise click.BadParameter(f"{node}: no file {path}", param_hint=option)
        found[node] = path
    return found
