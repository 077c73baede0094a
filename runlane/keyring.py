"""The format of Runlane's AES-256 keys in the environment (`RUNLANE_PAYLOAD_KEY`,
`RUNLANE_SECRETS_KEY`): `"<id>:<base64 of 32 bytes>"`, several separated by commas, the first
one current. Each variable holds keys of its own; only the way they are written is shared.
"""

from __future__ import annotations

import base64
import binascii
import re

KEY_ID_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
KEY_FORMAT = "'<key id>:<base64 of 32 random bytes>', several separated by commas (first encrypts)"


def parse_keys(
    raw: str, variable: str, error: type[ValueError] = ValueError
) -> list[tuple[str, bytes]]:
    """The (key id, 32 bytes) pairs of `raw`, current first; empty when `raw` holds none.
    Raises `error` naming `variable` and what is malformed; messages never echo key material."""
    keys: dict[str, bytes] = {}
    for position, item in enumerate(raw.split(","), start=1):
        item = item.strip()
        if not item:
            continue
        key_id, sep, encoded = item.partition(":")
        key_id = key_id.strip()
        if not sep or not KEY_ID_RE.match(key_id):
            raise error(
                f"{variable} entry {position} has no valid key id (letters, digits, "
                f"'_', '.', '-'; at most 64); expected {KEY_FORMAT}"
            )
        if key_id in keys:
            raise error(f"{variable} names key id {key_id!r} twice")
        # Standard or URL-safe alphabet, padding optional.
        text = encoded.strip().replace("-", "+").replace("_", "/")
        try:
            secret = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
        except (binascii.Error, ValueError):
            raise error(f"{variable} key {key_id!r} is not base64; expected {KEY_FORMAT}") from None
        if len(secret) != 32:
            raise error(
                f"{variable} key {key_id!r} is {len(secret)} bytes; AES-256 needs 32 "
                "(generate one with `openssl rand -base64 32`)"
            )
        keys[key_id] = secret
    return list(keys.items())
