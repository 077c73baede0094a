"""Secrets without a server: the key and the box (runlane/secret_box.py), `{{$secrets.name}}`
in templates and in the validator, and the masking of values (runlane/redaction.py)."""

from __future__ import annotations

import base64
import json
import logging
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from activities.registry import default_registry
from runlane import templating
from runlane.definition import validate_definition
from runlane.redaction import Redactor, install_log_masking, masking
from runlane.secret_box import (
    SecretDecryptError,
    SecretsKeyError,
    ensure_secrets_key,
    generate_key,
    parse_secret_keys,
)
from runlane.settings import Settings

RAW = base64.b64encode(os.urandom(32)).decode()


# ------------------------------------------------------------------------------ the key


def test_a_key_is_one_or_more_ids_with_32_bytes_and_the_first_encrypts() -> None:
    assert parse_secret_keys(f"k1:{RAW}").current_id == "k1"
    old, new = generate_key("old"), generate_key("new")
    sealed = parse_secret_keys(old).seal("org", "token", "v1")
    rotated = parse_secret_keys(f"{new},{old}")
    assert rotated.current_id == "new"
    assert rotated.open("org", "token", sealed) == "v1"  # the old key still decrypts
    assert rotated.seal("org", "token", "v2").key_id == "new"
    with pytest.raises(SecretDecryptError, match="key id 'old'"):
        parse_secret_keys(new).open("org", "token", sealed)
    # URL-safe alphabet and missing padding are read too.
    urlsafe = base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")
    assert parse_secret_keys(f"u:{urlsafe}").current_id == "u"


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ("", "is not set"),
        (" , ", "is not set"),
        ("k1:not*base64", "not base64"),
        (f"k1:{base64.b64encode(b'short').decode()}", "is 5 bytes"),
        (f"bad id:{RAW}", "no valid key id"),
        (RAW, "no valid key id"),  # a key without its id
        (f"k1:{RAW},k1:{RAW}", "twice"),
    ],
)
def test_a_bad_key_is_refused_without_echoing_it(raw: str, says: str) -> None:
    with pytest.raises(SecretsKeyError, match=says) as refused:
        parse_secret_keys(raw)
    assert RAW not in str(refused.value)


def test_settings_require_the_key_and_say_how_to_get_one(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, secrets_key=SecretStr(""))
    with pytest.raises(SecretsKeyError) as refused:
        settings.secret_keys()
    message = str(refused.value)
    assert "RUNLANE_SECRETS_KEY is not set" in message
    assert "make run" in message and str(tmp_path / "secrets-key") in message
    assert Settings(secrets_key=SecretStr(f"k1:{RAW}")).secret_keys().current_id == "k1"
    # The payload key is another setting: setting it does not give secrets a key.
    with pytest.raises(SecretsKeyError):
        Settings(
            data_dir=tmp_path, payload_key=SecretStr(f"k1:{RAW}"), secrets_key=SecretStr("")
        ).secret_keys()


def test_make_runs_key_is_generated_once_and_private(tmp_path: Path) -> None:
    path = tmp_path / "data" / "secrets-key"
    key = ensure_secrets_key(path)
    assert parse_secret_keys(key).current_id == "k1"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ensure_secrets_key(path) == key


def test_a_sealed_value_is_bound_to_organization_and_name() -> None:
    keys = parse_secret_keys(generate_key())
    sealed = keys.seal("org_a", "token", "canary")
    assert b"canary" not in sealed.data
    assert keys.open("org_a", "token", sealed) == "canary"
    for org, name in (("org_b", "token"), ("org_a", "token2"), ("org_at", "oken")):
        with pytest.raises(SecretDecryptError):
            keys.open(org, name, sealed)
    tampered = type(sealed)(sealed.key_id, sealed.data[:-1] + bytes([sealed.data[-1] ^ 1]))
    with pytest.raises(SecretDecryptError, match="changed"):
        keys.open("org_a", "token", tampered)
    # Two seals of one value differ (a fresh nonce each time).
    assert keys.seal("org_a", "token", "canary").data != sealed.data


# ------------------------------------------------------------------------------ templates


def test_secrets_read_as_the_mask_unless_the_context_holds_them() -> None:
    template = {"auth": "Bearer {{$secrets.token}}", "whole": "{{ $secrets.token }}"}
    shown = templating.render(template, templating.TemplateContext(outputs={}))
    assert shown == {"auth": "Bearer ***", "whole": "***"}
    sent = templating.render(
        template, templating.TemplateContext(outputs={}, secrets={"token": "s3cr3t"})
    )
    assert sent == {"auth": "Bearer s3cr3t", "whole": "s3cr3t"}
    assert templating.secret_names([template, "{{$secrets.b}}{{$secrets.token}}"]) == [
        "token",
        "b",
    ]


@pytest.mark.parametrize(
    "ref", ["$secrets", "$secrets.a.b", "$secrets.with-dash", "$secrets." + "a" * 65]
)
def test_a_secret_reference_names_one_secret(ref: str) -> None:
    problem = templating.reference_problem(templating.parse_reference(ref))
    assert problem is not None and "$secrets.name" in problem


def _calling(config: dict[str, Any], **extra_nodes: dict[str, Any]) -> dict[str, Any]:
    nodes = [
        {"id": "in", "type": "start_text"},
        {"id": "call", "type": "http_request", "config": config},
        *({"id": node_id, **node} for node_id, node in extra_nodes.items()),
        {"id": "out", "type": "end", "config": {"outputs": {"status": "{{call.status}}"}}},
    ]
    chain = [node["id"] for node in nodes]
    edges = [{"source": a, "target": b} for a, b in zip(chain, chain[1:], strict=False)]
    return {"nodes": nodes, "edges": edges}


def test_the_validator_takes_secrets_only_in_http_request_url_headers_and_body() -> None:
    token = "{{$secrets.token}}"
    accepted = _calling(
        {
            "method": "POST",
            "url": f"https://api.example.com/v1?key={token}",
            "headers": {"Authorization": f"Bearer {token}"},
            "body": {"nested": [{"key": token}]},
        }
    )
    definition, problems = validate_definition(accepted, default_registry())
    assert problems == [] and definition is not None

    refused = _calling(
        {"url": "https://api.example.com", "timeout_s": 5},
        shape={"type": "transform", "config": {"output": {"t": token}}},
        check={"type": "condition", "config": {"expression": "`true`", "note": token}},
    )
    refused["nodes"][-1]["config"]["outputs"]["leak"] = "{{$secrets.other}}"
    _, problems = validate_definition(refused, default_registry())
    by_node = {(p.node_id, p.message) for p in problems}
    assert (
        "shape",
        "config.output: '{{$secrets.token}}' is not allowed here: a transform node takes no "
        "secrets (secrets are resolved only inside the activity that sends them)",
    ) in by_node
    assert any(n == "out" and "$secrets.other" in m for n, m in by_node)
    # A malformed secret reference is reported like other references.
    bad = _calling({"url": "https://api.example.com/{{$secrets.a.b}}"})
    _, problems = validate_definition(bad, default_registry())
    assert any("name a secret" in p.message for p in problems)


# ------------------------------------------------------------------------------ masking


def test_the_redactor_masks_every_form_a_value_is_sent_in() -> None:
    value = 'p@ss w/"rd"é'
    redactor = Redactor([value, "short"])
    assert redactor.text(f"a {value} b") == "a *** b"
    assert redactor.text("https://x/?k=p%40ss%20w%2F%22rd%22%C3%A9") == "https://x/?k=***"
    assert redactor.text("k=p%40ss+w%2F%22rd%22%C3%A9") == "k=***"
    assert redactor.text('{"k": "p@ss w/\\"rd\\"\\u00e9"}') == '{"k": "***"}'
    output = {"body": {"short": ["x short y", {"k": 1}], "n": 2}, "t": ("short",)}
    assert redactor.value(output) == {"body": {"***": ["x *** y", {"k": 1}], "n": 2}, "t": ["***"]}
    assert output["body"]["short"] == ["x short y", {"k": 1}], "the input is not changed"
    assert not Redactor(["", ""]) and Redactor([""]).value({"a": "b"}) == {"a": "b"}


def test_the_http_libraries_log_lines_are_masked_in_the_context_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    install_log_masking()
    caplog.set_level(logging.DEBUG)
    log = logging.getLogger("httpx")
    with masking(Redactor(["canary-1"])):
        log.info("HTTP Request: %s %s", "GET", "http://x/?t=canary-1")
    log.info("outside: %s", "canary-1")
    assert [r.getMessage() for r in caplog.records] == [
        "HTTP Request: GET http://x/?t=***",
        "outside: canary-1",
    ]


# ------------------------------------------------------------------------------ history

HISTORY = Path(__file__).parent / "histories" / "secret_request_recorded.json"


def _payload_texts(node: Any) -> list[str]:
    if isinstance(node, dict):
        if isinstance(node.get("metadata"), dict) and isinstance(node.get("data"), str):
            return [base64.b64decode(node["data"]).decode(errors="replace")]
        return [text for value in node.values() for text in _payload_texts(value)]
    if isinstance(node, list):
        return [text for value in node for text in _payload_texts(value)]
    return []


def test_the_recorded_history_of_a_secret_request_holds_templates_only() -> None:
    # Recorded by scripts/record_histories.py (replayed by tests/test_replay.py).
    raw = HISTORY.read_text()
    texts = "\n".join([raw, *_payload_texts(json.loads(raw))])
    assert "recorded-secret-0b5e7d" not in texts
    assert "Bearer {{$secrets.token}}" in texts  # the activity's input: the template
    assert '"path":"/charge?sig=***"' in texts  # its result: the peer's echo, masked
