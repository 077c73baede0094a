"""The worker's check that the workflow sandbox will not compile the workflow module per run."""

from __future__ import annotations

import py_compile
from pathlib import Path
from types import ModuleType

from runlane.bytecode import compiled_for_source


def load(path: Path) -> ModuleType:
    """A module loaded from `path` as far as the check can tell. Not imported for real: an
    import would write the .pyc itself wherever PYTHONDONTWRITEBYTECODE is unset."""
    module = ModuleType(f"probe_{path.stem}")
    module.__file__ = str(path)
    return module


def test_a_module_without_bytecode_is_reported(tmp_path: Path) -> None:
    source = tmp_path / "plain.py"
    source.write_text("VALUE = 1\n")
    assert not compiled_for_source(load(source))


def test_precompiled_module_passes_until_its_source_changes(tmp_path: Path) -> None:
    source = tmp_path / "compiled.py"
    source.write_text("VALUE = 1\n")
    py_compile.compile(str(source))
    module = load(source)
    assert compiled_for_source(module)

    source.write_text("VALUE = 22\n")  # another size; a stale pyc is compiled over again
    assert not compiled_for_source(module)


def test_a_pyc_from_another_python_is_not_used(tmp_path: Path) -> None:
    source = tmp_path / "foreign.py"
    source.write_text("VALUE = 1\n")
    cached = Path(py_compile.compile(str(source)))
    cached.write_bytes(b"\x00\x00\r\n" + cached.read_bytes()[4:])
    assert not compiled_for_source(load(source))
