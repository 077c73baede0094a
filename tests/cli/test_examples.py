"""examples/ holds every workflow definition README.md shows, as YAML, each valid. (The API's
validation endpoint checks them too, through `runlane workflows validate`, in test_cli.py.)"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from activities.registry import default_registry
from runlane.definition import validate_definition

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))


def readme_workflows() -> list[dict[str, Any]]:
    """The `{name, definition}` bodies README's curl snippets send to POST /v1/workflows."""
    text = (ROOT / "README.md").read_text()
    found = []
    for block in re.findall(r"^```bash\n(.*?)^```", text, flags=re.S | re.M):
        # Sent as a here-document (-d @- <<'JSON') or inline (-d '{"name": ...}').
        for body in re.findall(r"<<'JSON'[^\n]*\n(.*?)\nJSON\n", block, flags=re.S):
            found.append(json.loads(body))
        for body in re.findall(r"-d '(\{\s*\"name\".*?\})'", block, flags=re.S):
            found.append(json.loads(body))
    return found


def test_every_readme_workflow_is_an_example() -> None:
    readme = readme_workflows()
    assert len(readme) >= 5, "the README's workflows were not found"
    examples = {path.name: yaml.safe_load(path.read_text()) for path in EXAMPLES}
    for workflow in readme:
        same = [name for name, example in examples.items() if example == workflow]
        assert same, f"README's workflow {workflow['name']!r} has no identical file in examples/"


@pytest.mark.parametrize("path", EXAMPLES, ids=[path.name for path in EXAMPLES])
def test_each_example_is_a_valid_definition(path: Path) -> None:
    example = yaml.safe_load(path.read_text())
    assert set(example) <= {"name", "description", "definition"}
    definition, problems = validate_definition(example["definition"], default_registry())
    assert definition is not None and problems == [], problems
