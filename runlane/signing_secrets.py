"""Standard Webhooks signing secrets, as inbound webhooks and event webhook endpoints give
them out: `whsec_` and base64 of random bytes (the standard allows 24 to 64; 32 is what its
reference libraries make)."""

from __future__ import annotations

import base64
import os

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32


def new_signing_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(os.urandom(SECRET_BYTES)).decode()
