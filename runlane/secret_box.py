"""AES-256-GCM for organizations' secrets at rest (`RUNLANE_SECRETS_KEY`).

A key of its own, never the payload key (runlane/payload_crypto.py): the two protect different
things, held by different people (Temporal's history vs. Runlane's database), and are rotated
on their own schedules.

`RUNLANE_SECRETS_KEY` holds one or more keys written as the payload key's are (runlane/
keyring.py), `"<id>:<base64 of 32 bytes>"` separated by commas: the first encrypts, every one
decrypts, so a key is rotated by putting a new one first, writing every secret again (`PUT`
re-encrypts it with the first key) and dropping the old key once no secret uses it. Each
stored value names its key id.

A value is bound to its organization and name (the AES-GCM associated data): a ciphertext
copied into another row does not decrypt. Nothing here ever puts key material or a secret's
value into an exception message.

`make run` generates a key into the data dir (:func:`ensure_secrets_key`) and hands it to the
API and the worker in their environment; anywhere else they refuse to start without one.
"""

from __future__ import annotations

import base64
import functools
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from runlane.keyring import KEY_FORMAT, parse_keys

VARIABLE = "RUNLANE_SECRETS_KEY"
KEY_FILENAME = "secrets-key"
_NONCE_BYTES = 12
GENERATE_HINT = (
    "python3 -c 'import base64, os; print(\"k1:\" + base64.b64encode(os.urandom(32)).decode())'"
)


class SecretsKeyError(ValueError):
    """RUNLANE_SECRETS_KEY is missing or malformed: the API and the worker do not start."""


class SecretDecryptError(ValueError):
    """A stored value that the keys at hand cannot decrypt (unknown key id, changed bytes)."""


def missing_key_message(data_dir: Path | None = None) -> str:
    where = f" ({(data_dir / KEY_FILENAME).resolve()})" if data_dir is not None else ""
    return (
        f"{VARIABLE} is not set. It is the key that encrypts organizations' secrets at rest, "
        "and the API and the worker need the same one. Set it to "
        f'{KEY_FORMAT}, e.g. export {VARIABLE}="$({GENERATE_HINT})". '
        f"`make run` generates one into its data dir{where} and passes it on by itself; to "
        f'start the API or the worker yourself next to it, export {VARIABLE}="$(cat '
        f'{(data_dir / KEY_FILENAME) if data_dir is not None else ".data/" + KEY_FILENAME})".'
    )


@dataclass(frozen=True)
class Sealed:
    """A value as stored: the id of the key that sealed it, and nonce + ciphertext + tag."""

    key_id: str
    data: bytes


@dataclass(frozen=True)
class SecretKeys:
    current_id: str
    ciphers: dict[str, AESGCM]

    def seal(self, organization: str, name: str, value: str) -> Sealed:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self.ciphers[self.current_id].encrypt(
            nonce, value.encode(), _associated_data(self.current_id, organization, name)
        )
        return Sealed(self.current_id, nonce + sealed)

    def open(self, organization: str, name: str, sealed: Sealed) -> str:
        cipher = self.ciphers.get(sealed.key_id)
        if cipher is None:
            raise SecretDecryptError(
                f"secret '{name}' is encrypted with key id {sealed.key_id!r}, which {VARIABLE} "
                f"does not hold (it holds {', '.join(sorted(self.ciphers))})"
            )
        data = sealed.data
        try:
            plain = cipher.decrypt(
                data[:_NONCE_BYTES],
                data[_NONCE_BYTES:],
                _associated_data(sealed.key_id, organization, name),
            )
        except InvalidTag:
            raise SecretDecryptError(
                f"secret '{name}' does not decrypt with key {sealed.key_id!r}: the key is not "
                "the one it was stored with, or the stored bytes were changed"
            ) from None
        return plain.decode()


def _associated_data(key_id: str, organization: str, name: str) -> bytes:
    # Length-prefixed fields, so no choice of organization and name can read like another.
    fields = [b"runlane-secret/1", key_id.encode(), organization.encode(), name.encode()]
    return b"".join(len(field).to_bytes(4, "big") + field for field in fields)


@functools.lru_cache(maxsize=8)
def parse_secret_keys(raw: str) -> SecretKeys:
    """RUNLANE_SECRETS_KEY parsed; SecretsKeyError when it is empty or malformed. Messages
    never echo key material."""
    keys = parse_keys(raw, VARIABLE, SecretsKeyError)
    if not keys:
        raise SecretsKeyError(missing_key_message())
    return SecretKeys(
        current_id=keys[0][0], ciphers={key_id: AESGCM(secret) for key_id, secret in keys}
    )


def generate_key(key_id: str = "k1") -> str:
    """A new RUNLANE_SECRETS_KEY value with one key."""
    return f"{key_id}:{base64.b64encode(os.urandom(32)).decode()}"


def ensure_secrets_key(path: Path) -> str:
    """`make run`'s key: read from the data dir, or generated there once (mode 0600), so that
    secrets stored by one run of the stack are readable by the next."""
    if path.exists():
        key = path.read_text().strip()
        if key:
            return key
    path.parent.mkdir(parents=True, exist_ok=True)
    key = generate_key()
    tmp = path.with_suffix(".tmp")
    # Created private: the key is never readable by others, not even for a moment.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    tmp.chmod(0o600)
    tmp.replace(path)
    return key
