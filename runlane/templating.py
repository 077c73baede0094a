"""Templates of API.md: `{{ref}}` references rendered without `eval`.

A string that is exactly one `{{ref}}` keeps the referenced value's JSON type; a reference
inside a longer string is interpolated as text. `ref` is `node_id[.path]` (the first dot ends
the node id; list items by index), `$run.id`, `$run.workflow_id`, `$vars.name[.path]` or
`$secrets.name`; inside a `map` node's `node` config also `$item[.path]` and `$index`
(ITEM_ROOTS). Pure functions only: the workflow sandbox imports this module.

A secret's value is only ever in the context of the activity that sends it (activities/
secret_scope.py); rendered anywhere else, `{{$secrets.name}}` reads `***`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

_REF = r"\s*([^{}\s]+)\s*"
_WHOLE = re.compile(r"^\{\{" + _REF + r"\}\}$")
_INNER = re.compile(r"\{\{" + _REF + r"\}\}")

RUN_FIELDS = ("id", "workflow_id")
# References a map's inline node resolves per item (the element and its position).
ITEM_ROOTS = ("$item", "$index")
SECRETS = "$secrets"
# What a secret's value reads as wherever it is not being sent (API.md "Secrets").
MASK = "***"
SECRET_NAME_PATTERN = r"^[A-Za-z0-9_]{1,64}$"
_SECRET_NAME_RE = re.compile(SECRET_NAME_PATTERN)


def is_secret_name(name: str) -> bool:
    return _SECRET_NAME_RE.fullmatch(name) is not None


@dataclass(frozen=True)
class Reference:
    """One parsed `{{...}}`: `root` is a node id, `$run`, `$vars` or `$secrets`."""

    raw: str
    root: str
    path: tuple[str, ...]

    @property
    def node_id(self) -> str | None:
        return None if self.root.startswith("$") else self.root


@dataclass(frozen=True)
class TemplateContext:
    outputs: Mapping[str, Any]
    run: Mapping[str, Any] = field(default_factory=dict)
    vars: Mapping[str, Any] = field(default_factory=dict)
    # Per-item values of a map's inline node ($item, $index); empty elsewhere.
    item: Mapping[str, Any] = field(default_factory=dict)
    # The values of the secrets this rendering may send, by name; None (everywhere but inside
    # the activity that sends them) renders every secret as MASK.
    secrets: Mapping[str, str] | None = None


class _Missing:
    pass


MISSING = _Missing()


def parse_reference(raw: str) -> Reference:
    root, _, rest = raw.partition(".")
    path = tuple(rest.split(".")) if rest else ()
    return Reference(raw=raw, root=root, path=path)


def is_whole_reference(template: str) -> bool:
    """A string that is exactly one `{{ref}}`: it renders to the referenced value itself."""
    return _WHOLE.match(template) is not None


def references(template: Any) -> Iterator[Reference]:
    """Every reference in a template (any JSON value), in document order."""
    if isinstance(template, str):
        for match in _INNER.finditer(template):
            yield parse_reference(match.group(1))
    elif isinstance(template, Mapping):
        for value in template.values():
            yield from references(value)
    elif isinstance(template, list):
        for item in template:
            yield from references(item)


def reference_problem(ref: Reference, *, item_scope: bool = False) -> str | None:
    """What is wrong with a reference on its own (ancestry is the validator's business).
    `item_scope`: inside a map's inline node, where $item and $index resolve."""
    if ref.root in ITEM_ROOTS:
        if not item_scope:
            return f"'{{{{{ref.raw}}}}}': {ref.root} exists only inside a map's node config"
        if ref.root == "$index" and ref.path:
            return f"'{{{{{ref.raw}}}}}': $index is a number, it has no fields"
        return None
    if ref.root == "$run":
        if len(ref.path) != 1 or ref.path[0] not in RUN_FIELDS:
            return f"'{{{{{ref.raw}}}}}': $run has only {', '.join(RUN_FIELDS)}"
    elif ref.root == "$vars":
        if not ref.path:
            return f"'{{{{{ref.raw}}}}}': name a variable, as $vars.name"
    elif ref.root == SECRETS:
        if len(ref.path) != 1 or not is_secret_name(ref.path[0]):
            return (
                f"'{{{{{ref.raw}}}}}': name a secret, as $secrets.name "
                "(a name is 1-64 letters, digits or '_')"
            )
    elif ref.root.startswith("$"):
        return f"'{{{{{ref.raw}}}}}': unknown reference {ref.root} (use $run, $vars or $secrets)"
    return None


def secret_names(template: Any) -> list[str]:
    """The secrets a template references, each once, in document order."""
    if not _mentions(template, SECRETS):
        return []  # most templates: a plain scan, no parsing (every http_request call asks)
    names = (ref.path[0] for ref in references(template) if ref.root == SECRETS and ref.path)
    return list(dict.fromkeys(names))


def _mentions(template: Any, text: str) -> bool:
    """Whether any string value in a template contains `text` (keys are literal)."""
    stack = [template]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if text in item:
                return True
        elif isinstance(item, dict | Mapping):  # dict first: the ABC check is slower
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


_SCHEME_START = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")
# What urlsplit drops before reading a URL (leading C0 controls and spaces; tabs, newlines).
_URL_LEADING = "".join(chr(code) for code in range(0x21))
_URL_DROPPED = str.maketrans("", "", "\t\r\n")
_URL_SCHEMES = ("http", "https")


def literal_url_problem(template: str) -> str | None:
    """What is already wrong with an http(s) URL template before it is rendered, or None.

    Only the text before the first reference is known: `ftp://{{host}}` has a wrong scheme and
    `https:///{{path}}` no host, while `{{base}}/x` or `https://{{host}}/x` can only be judged
    once rendered. The URL is read the way urlsplit reads it at run time."""
    first = _INNER.search(template)
    literal = (template if first is None else template[: first.start()]).translate(_URL_DROPPED)
    literal = literal.lstrip(_URL_LEADING)
    if first is None:
        try:
            parts = urlsplit(literal)
            host, _ = parts.hostname, parts.port
        except ValueError as exc:
            return f"url is not a valid URL: {exc}"
        scheme = parts.scheme
    else:
        match = _SCHEME.match(literal)
        if match is None:
            # Either the scheme is still being spelled when a reference starts, or it never
            # can be (`example.com/{{x}}`).
            if literal and not _SCHEME_START.fullmatch(literal):
                return "url has no scheme; use http:// or https://"
            return None
        scheme, rest = match.group(1).lower(), literal[match.end() :]
        host = None
        if scheme in _URL_SCHEMES:
            if not rest.startswith("//"):
                return None if rest in ("", "/") else "url has no host"
            end = re.search(r"[/?#]", rest[2:])
            if end is None:
                return None  # the host continues into a reference
            try:
                parts = urlsplit(f"{scheme}:{rest[: 2 + end.start()]}")
                host, _ = parts.hostname, parts.port
            except ValueError as exc:
                return f"url is not a valid URL: {exc}"
    if not scheme:
        return "url has no scheme; use http:// or https://"
    if scheme not in _URL_SCHEMES:
        return f"url scheme '{scheme}' is not allowed; use http or https"
    if not host:
        return "url has no host"
    return None


def lookup(value: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        if isinstance(value, Mapping):
            if part not in value:
                return MISSING
            value = value[part]
        elif isinstance(value, list):
            if not part.isdigit() or int(part) >= len(value):
                return MISSING
            value = value[int(part)]
        else:
            return MISSING
    return value


def resolve(ref: Reference, context: TemplateContext) -> Any:
    if ref.root in ITEM_ROOTS:
        if ref.root not in context.item:
            return MISSING
        return lookup(context.item[ref.root], ref.path)
    if ref.root == "$run":
        return lookup(context.run, ref.path)
    if ref.root == "$vars":
        return lookup(context.vars, ref.path)
    if ref.root == SECRETS:
        if context.secrets is None:
            return MASK
        return lookup(context.secrets, ref.path)
    if ref.root not in context.outputs:
        return MISSING
    return lookup(context.outputs[ref.root], ref.path)


def _as_text(value: Any) -> str:
    if value is MISSING or value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


# What one rendering may produce, in characters of JSON: a node's output is at most 4 MiB of
# JSON (activities/evaluation.py), like a run's inputs. Counted while rendering, so that a
# template interpolating a large value thousands of times, or a chain of transforms doubling
# their input, stops at the limit instead of building gigabytes first.
MAX_RENDERED_CHARS = 4 * 1024 * 1024


class RenderedTooLarge(ValueError):
    """The rendered template would be larger than the limit it was rendered with."""


class _Budget:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        # Sizes of referenced values already measured (one value is often referenced twice).
        self._sizes: dict[int, int] = {}

    def spend(self, chars: int) -> None:
        self.used += chars
        if self.used > self.limit:
            raise RenderedTooLarge(f"the rendered output is over {self.limit:,} characters of JSON")

    def spend_value(self, value: Any) -> None:
        if isinstance(value, str):
            self.spend(len(value) + 2)
        elif isinstance(value, dict | list):
            size = self._sizes.get(id(value))
            if size is None:
                size = self._sizes[id(value)] = len(_as_text(value))
            self.spend(size)
        else:
            self.spend(8)


def render(template: Any, context: TemplateContext, max_chars: int = MAX_RENDERED_CHARS) -> Any:
    """Render a template; keys of objects are literal, values are rendered recursively.
    Raises RenderedTooLarge past `max_chars` characters of JSON."""
    return _render(template, context, _Budget(max_chars))


def _render(template: Any, context: TemplateContext, budget: _Budget) -> Any:
    if isinstance(template, str):
        whole = _WHOLE.match(template)
        if whole:
            value = resolve(parse_reference(whole.group(1)), context)
            if value is MISSING:
                return None
            budget.spend_value(value)
            return value
        budget.spend(len(template) + 2)

        def text(match: re.Match[str]) -> str:
            rendered = _as_text(resolve(parse_reference(match.group(1)), context))
            budget.spend(len(rendered))
            return rendered

        return _INNER.sub(text, template)
    if isinstance(template, Mapping):
        rendered = {}
        for key, value in template.items():
            budget.spend(len(key) + 4)
            rendered[key] = _render(value, context, budget)
        return rendered
    if isinstance(template, list):
        budget.spend(len(template) + 2)
        return [_render(item, context, budget) for item in template]
    budget.spend(8)
    return template
