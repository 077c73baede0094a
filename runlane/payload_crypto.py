"""AES-256-GCM for the payloads Runlane writes to Temporal (`RUNLANE_PAYLOAD_KEY`).

`RUNLANE_PAYLOAD_KEY` holds one or more keys, `"<id>:<base64 of 32 bytes>"` separated by
commas: the first encrypts, every one decrypts, so a key is rotated by putting a new one first
and dropping the old one once no history that needs it is kept. An encrypted payload names its
key id in its metadata (`encryption-key-id`).

What a payload is bound to is in its metadata too, and is the AES-GCM associated data, so it
cannot be changed without the decryption failing:

- `runlane-workflow-id`: the run (workflow) it belongs to, from the SDK's serialization context.
  The codec endpoint decodes it only for that run's organization, and a worker decoding in
  another workflow's context refuses it (a ciphertext copied into another run's history).
- `runlane-organization`: written by the codec endpoint's encode (what an operator typed in
  the Temporal UI, which names no workflow): decoded only for that organization.
- neither: a payload encoded with no workflow context (no Runlane path does so). Workers
  decode it; the codec endpoint decodes it for nobody.

Decryption never hands back ciphertext as data: an unknown key id, a missing key or tampered
bytes raise :class:`PayloadDecryptError`.

The same keys sign codec sessions (:class:`CodecSessions`): the cookie the Temporal UI sends to
the codec endpoint, since it cannot send an API key. Its HMAC key is derived from a payload key
with HKDF (never the AES key itself), so every API process with the same RUNLANE_PAYLOAD_KEY
accepts a session another issued, and rotating the keys ends the sessions signed with a dropped
one.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import json
import os
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from temporalio.api.common.v1 import Payload

from runlane.keyring import parse_keys

ENCRYPTED_ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"
WORKFLOW_ID = "runlane-workflow-id"
ORGANIZATION = "runlane-organization"
_NONCE_BYTES = 12


class PayloadDecryptError(ValueError):
    """An encrypted payload that cannot be decrypted with the keys at hand."""


@dataclass(frozen=True)
class Binding:
    """What an encrypted payload belongs to: a run, an organization, or nothing."""

    workflow_id: str | None = None
    organization: str | None = None


@dataclass(frozen=True)
class PayloadKeys:
    current_id: str
    # One AESGCM per key, built once: the codec runs for every payload.
    ciphers: dict[str, AESGCM]
    # Per key id, the HMAC key of codec sessions (HKDF of the payload key).
    session_secrets: dict[str, bytes] = field(default_factory=dict, repr=False)

    def encrypt(self, payload: Payload, binding: Binding) -> Payload:
        metadata = {"encoding": ENCRYPTED_ENCODING, KEY_ID: self.current_id.encode()}
        if binding.workflow_id is not None:
            metadata[WORKFLOW_ID] = binding.workflow_id.encode()
        if binding.organization is not None:
            metadata[ORGANIZATION] = binding.organization.encode()
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self.ciphers[self.current_id].encrypt(
            nonce, payload.SerializeToString(), _associated_data(self.current_id, binding)
        )
        return Payload(metadata=metadata, data=nonce + sealed)

    def decrypt(self, payload: Payload) -> Payload:
        key_id = payload.metadata[KEY_ID].decode(errors="replace")
        cipher = self.ciphers.get(key_id)
        if cipher is None:
            raise PayloadDecryptError(
                f"the payload is encrypted with key id {key_id!r}, which RUNLANE_PAYLOAD_KEY "
                f"does not hold (it holds {', '.join(sorted(self.ciphers))})"
            )
        data = payload.data
        try:
            plain = cipher.decrypt(
                data[:_NONCE_BYTES],
                data[_NONCE_BYTES:],
                _associated_data(key_id, binding_of(payload)),
            )
        except InvalidTag:
            raise PayloadDecryptError(
                f"the payload does not decrypt with key {key_id!r}: its bytes or its "
                "metadata (key id, run or organization) were changed"
            ) from None
        return Payload.FromString(plain)


def is_encrypted(payload: Payload) -> bool:
    return payload.metadata.get("encoding") == ENCRYPTED_ENCODING


def binding_of(payload: Payload) -> Binding:
    """What an encrypted payload's metadata says it belongs to (authentic once decrypted)."""
    workflow_id = payload.metadata.get(WORKFLOW_ID)
    organization = payload.metadata.get(ORGANIZATION)
    return Binding(
        workflow_id=workflow_id.decode(errors="replace") if workflow_id is not None else None,
        organization=organization.decode(errors="replace") if organization is not None else None,
    )


def decrypt(payload: Payload, keys: PayloadKeys | None) -> Payload:
    """The payload as encrypted; anything not encrypted by us passes through unchanged."""
    if not is_encrypted(payload):
        return payload
    if keys is None:
        raise PayloadDecryptError(
            "the payload is encrypted (binary/encrypted) but RUNLANE_PAYLOAD_KEY is not set"
        )
    if KEY_ID not in payload.metadata:
        raise PayloadDecryptError("the encrypted payload names no key id")
    return keys.decrypt(payload)


def _associated_data(key_id: str, binding: Binding) -> bytes:
    # Length-prefixed fields, so no choice of ids can make two bindings read alike.
    fields = [b"runlane-payload/1", key_id.encode()]
    for value in (binding.workflow_id, binding.organization):
        fields.append(b"-" if value is None else b"+" + value.encode())
    return b"".join(len(field).to_bytes(4, "big") + field for field in fields)


@functools.lru_cache(maxsize=8)
def parse_payload_keys(raw: str) -> PayloadKeys | None:
    """RUNLANE_PAYLOAD_KEY parsed; None when it is empty. Messages never echo key material."""
    keys = parse_keys(raw, "RUNLANE_PAYLOAD_KEY")
    if not keys:
        return None
    return PayloadKeys(
        current_id=keys[0][0],
        ciphers={key_id: AESGCM(secret) for key_id, secret in keys},
        session_secrets={key_id: _derive_session_secret(secret) for key_id, secret in keys},
    )


def generate_key() -> str:
    """A new key's base64, as RUNLANE_PAYLOAD_KEY takes it."""
    return base64.b64encode(os.urandom(32)).decode()


# --- Codec sessions ---------------------------------------------------------------------------

_SESSION_INFO = b"runlane codec session/1"
_SESSION_VERSION = 1
# A cookie is at most 4 KiB; anything longer is not ours, and is refused before parsing.
_MAX_SESSION_TOKEN = 1024


def _derive_session_secret(payload_key: bytes) -> bytes:
    # HKDF with its own `info`: the session key reveals nothing of the AES key, nor the reverse.
    return HKDF(algorithm=SHA256(), length=32, salt=None, info=_SESSION_INFO).derive(payload_key)


class CodecSessionError(ValueError):
    """A codec session token that is malformed, forged, signed with no key at hand, or expired."""


@dataclass(frozen=True)
class CodecSession:
    """What a valid session token says: whose it is, until when, and which API key opened it."""

    organization: str
    expires_at: int  # Unix seconds
    key_id: str  # the payload key whose derived secret signed it
    api_key_fingerprint: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class CodecSessions:
    """Issues and checks codec session tokens: `<base64url JSON claims>.<base64url HMAC>`.

    The claims name the organization, the expiry, the key id whose derived secret signed them,
    and a fingerprint of the API key that opened the session (an HMAC of it, not the key), so a
    session ends when its API key is removed from RUNLANE_API_KEYS.
    """

    keys: PayloadKeys

    def fingerprint(self, api_key: str, key_id: str | None = None) -> str:
        """The API key's fingerprint under payload key `key_id` (default: the current one)."""
        secret = self.keys.session_secrets[key_id or self.keys.current_id]
        return _b64(hmac.new(secret, b"api-key\x00" + api_key.encode(), hashlib.sha256).digest())

    def issue(self, organization: str, api_key: str, expires_at: int) -> str:
        claims = {
            "v": _SESSION_VERSION,
            "kid": self.keys.current_id,
            "org": organization,
            "exp": expires_at,
            "akf": self.fingerprint(api_key),
        }
        body = _b64(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode())
        secret = self.keys.session_secrets[self.keys.current_id]
        return f"{body}.{_b64(_mac(secret, body))}"

    def verify(self, token: str, now: float) -> CodecSession:
        if len(token) > _MAX_SESSION_TOKEN or token.count(".") != 1:
            raise CodecSessionError("not a codec session")
        body, _, mac = token.partition(".")
        try:
            claims = json.loads(_unb64(body))
            signature = _unb64(mac)
        except (ValueError, binascii.Error, RecursionError):
            raise CodecSessionError("not a codec session") from None
        if not isinstance(claims, dict) or claims.get("v") != _SESSION_VERSION:
            raise CodecSessionError("not a codec session")
        key_id = claims.get("kid")
        secret = self.keys.session_secrets.get(key_id) if isinstance(key_id, str) else None
        # The claims are read before the signature is checked only to pick the key: nothing
        # they say is used unless the MAC over them matches.
        if secret is None or not hmac.compare_digest(_mac(secret, body), signature):
            raise CodecSessionError("the codec session's signature does not match")
        organization, expires_at = claims.get("org"), claims.get("exp")
        fingerprint = claims.get("akf")
        if not (
            isinstance(organization, str)
            and isinstance(expires_at, int)
            and isinstance(fingerprint, str)
        ):
            raise CodecSessionError("not a codec session")
        if expires_at <= now:
            raise CodecSessionError("the codec session has expired")
        return CodecSession(organization, expires_at, str(key_id), fingerprint)


def _mac(secret: bytes, body: str) -> bytes:
    return hmac.new(secret, b"runlane-codec-session\x00" + body.encode(), hashlib.sha256).digest()
