"""Secrets inside the one activity that sends them (API.md "Secrets").

A node's config holds `{{$secrets.name}}`, never a value, so the run's definition and the
activity's input in Temporal's history hold only the template. The activity resolves the
names its secret-capable fields reference (`NodeType.secret_fields`), in the run's own
organization, when it runs, and renders with the values only what it sends. Everything it
produces — its result, its error messages and details, the HTTP libraries' log lines while it
runs — is masked (`***`) before it leaves: rendered with the mask where Runlane builds it,
scanned for the values (runlane/redaction.py) where a peer or a library did.

Node types from plugins use it the same way: `SecretScope.open(task, fields, deps.secrets)`,
then render with `scope.context`, show with `scope.shown`, and run their work in
`with scope.guarded():` returning `scope.redactor.value(output)`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

from temporalio.exceptions import ApplicationError

from activities.models import NodeTaskInput
from runlane import templating
from runlane.redaction import Redactor, masking
from runlane.secret_box import SecretDecryptError


class SecretResolver(Protocol):
    """Where an activity reads secrets' values: the store's SecretRepository in worker.py."""

    async def values(self, org: str, names: Iterable[str]) -> dict[str, str]: ...


@dataclass(frozen=True)
class SecretScope:
    # What to send: the templates' context with the secrets' values.
    context: templating.TemplateContext
    # What to show (messages): the same context, every secret read as `***`.
    shown: templating.TemplateContext
    redactor: Redactor

    @classmethod
    async def open(
        cls, task: NodeTaskInput, fields: Iterable[str], resolver: SecretResolver | None
    ) -> SecretScope:
        """The secrets the node's `fields` reference, resolved in the run's organization.
        A node that references none reads nothing (no store access at all)."""
        base = task.template_context()
        names = templating.secret_names([task.node.config.get(field) for field in fields])
        if not names:
            return cls(base, base, Redactor(()))
        if resolver is None or not task.organization_id:
            # A worker wired without a store, or a task from a run older than secrets: no
            # value could be found, and trying again does not change that.
            raise ApplicationError(
                "this worker cannot resolve secrets (no secret store, or no organization in "
                "the node's input)",
                type="SecretsUnavailable",
                non_retryable=True,
            )
        try:
            values = await resolver.values(task.organization_id, names)
        except SecretDecryptError as err:
            # The worker holds another RUNLANE_SECRETS_KEY than the API that stored it: a
            # configuration to fix, after which a retry succeeds.
            raise ApplicationError(str(err), type="SecretUnreadable") from None
        missing = [name for name in names if name not in values]
        if missing:
            shown = ", ".join(f"'{name}'" for name in missing)
            raise ApplicationError(
                f"secret {shown} does not exist in the run's organization (deleted after the "
                "run started?); create it with PUT /v1/secrets/{name}, then retry the run",
                {"secrets": missing},
                type="UnknownSecret",
                non_retryable=True,
            )
        return cls(dataclasses.replace(base, secrets=values), base, Redactor(values.values()))

    def masked_error(self, err: ApplicationError) -> ApplicationError:
        return ApplicationError(
            self.redactor.text(err.message),
            *(self.redactor.value(detail) for detail in err.details),
            type=err.type,
            non_retryable=err.non_retryable,
            next_retry_delay=err.next_retry_delay,
            category=err.category,
        )

    @contextmanager
    def guarded(self) -> Iterator[None]:
        """Whatever leaves this block holds no secret: an error is masked (and chained to
        nothing, since Temporal records a cause's message too); the HTTP libraries' log lines
        written inside it are masked. Without secrets it changes nothing."""
        if not self.redactor:
            yield
            return
        with masking(self.redactor):
            try:
                yield
            except ApplicationError as err:
                raise self.masked_error(err) from None
            except Exception as err:  # noqa: BLE001 - any error's text may hold a value
                # Retryable, as the unexpected error it stands for would have been.
                raise ApplicationError(
                    self.redactor.text(str(err)), type=type(err).__name__
                ) from None
