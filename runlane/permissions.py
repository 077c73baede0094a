"""Access control: what each API key's role may do (API.md "Access control").

Every API route declares the one permission it needs, `dependencies=[require(Permission.X)]`
(api/deps.py), and that dependency alone enforces it: `403` with `type: "permission"` for a
role without it. The table below is the whole policy; the README's role table is rendered from
it and the routes (`role_table`), and tests/api/test_roles.py calls every route with every
role against it and fails for a route that declares no permission.

Routes that take no API key (health, the signed inbound webhooks, the reviewers' page, the
codec endpoints with their own credential) are listed in `PUBLIC` instead.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import Literal

from runlane.settings import ROLES, Role


class Permission(StrEnum):
    # Read what the organization has: workflows, runs and their plans, files, schedules,
    # webhooks (never a secret's value), the inbox; and check what a change would do without
    # making it (validate, dry run).
    READ = "read"
    # Read one run: its record, steps, items and events.
    READ_RUN = "read_run"
    # The reviewers' inbox.
    READ_REVIEWS = "read_reviews"
    # Take a review decision.
    DECIDE_REVIEW = "decide_review"
    # Start runs and act on them (cancel, restart, rerun, retry, bulk), upload files.
    RUN = "run"
    # Change the organization's configuration: workflows, schedules, webhooks, event
    # endpoints, secrets.
    MANAGE = "manage"


# "yes"; "no"; or, for a reviewer reading a run, "when the run waits for them": a pending
# review assigned to the key's subject, or to nobody.
Access = Literal["yes", "no", "waiting"]

ACCESS: dict[Permission, dict[Role, Access]] = {
    Permission.READ: {"admin": "yes", "runner": "yes", "reviewer": "no", "viewer": "yes"},
    Permission.READ_RUN: {"admin": "yes", "runner": "yes", "reviewer": "waiting", "viewer": "yes"},
    Permission.READ_REVIEWS: {"admin": "yes", "runner": "yes", "reviewer": "yes", "viewer": "yes"},
    Permission.DECIDE_REVIEW: {"admin": "yes", "runner": "no", "reviewer": "yes", "viewer": "no"},
    Permission.RUN: {"admin": "yes", "runner": "yes", "reviewer": "no", "viewer": "no"},
    Permission.MANAGE: {"admin": "yes", "runner": "no", "reviewer": "no", "viewer": "no"},
}

# Routes without an API key, by (method, path): how each authenticates instead.
PUBLIC: dict[tuple[str, str], str] = {
    ("GET", "/healthz"): "none",
    ("GET", "/metrics"): "none (Prometheus text; `RUNLANE_API_METRICS=false` switches it off)",
    ("POST", "/hooks/{webhook_id}"): "the webhook's signature",
    ("GET", "/reviews"): "none (the page calls the API with the reviewer's key)",
    ("POST", "/codec/decode"): "any key of the organization, or a codec session",
    ("POST", "/codec/encode"): "any key of the organization, or a codec session",
    ("OPTIONS", "/codec/decode"): "none (CORS preflight)",
    ("OPTIONS", "/codec/encode"): "none (CORS preflight)",
    ("GET", "/codec/session"): "none (the sign-in page)",
    ("POST", "/codec/session"): "any key of the organization",
    ("DELETE", "/codec/session"): "the session cookie",
    ("POST", "/codec/session/logout"): "the session cookie",
}


_MARK = {"yes": "yes", "no": "—", "waiting": "runs waiting for them"}


def role_table(routes: Iterable[tuple[str, str, Permission | None]]) -> str:
    """The README's table, from every (method, path, permission) the API answers: which role
    may call which endpoint."""
    lines = [
        "| endpoint | " + " | ".join(f"`{role}`" for role in ROLES) + " |",
        "|---|" + "---|" * len(ROLES),
    ]
    for method, path, permission in routes:
        if permission is None:
            continue
        marks = [_MARK[ACCESS[permission][role]] for role in ROLES]
        lines.append(f"| `{method} {path}` | " + " | ".join(marks) + " |")
    return "\n".join(lines) + "\n"
