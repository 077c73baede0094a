"""What a node type is, and how a node of one is planned to execute.

Node-type modules (inputs, pure, http, control, plugins) build `NodeType`s from this module;
`activities.registry` assembles them. This module imports no node module, so the registry can
import every node module without either importing the other back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, SerializerFunctionWrapHandler, model_serializer

from runlane.definition import NodeRole
from runlane.settings import Settings

if TYPE_CHECKING:
    from activities.models import NodeTaskInput
    from activities.secret_scope import SecretResolver
    from activities.usage import Ledger
    from runlane.blobs import BlobStore

# batch: a pure node (needs `evaluate`): evaluated with the other ready pure work in one local
#   activity whose result records its outcome in the run's history;
# remote: a regular activity (I/O, retried by the server);
# local: a local activity of its own (short work that needs no server round trip);
# workflow: a durable timer or a signal, handled by the workflow itself.
# Runs started earlier froze "workflow" (pure nodes evaluated in the workflow, unrecorded) or
# "local" for pure nodes; they finish that way.
Execution = Literal["batch", "local", "remote", "workflow"]

# Which of the run's inputs a start node receives: a document (`inputs.documents`, as its file
# reference), a JSON value (`inputs.json_data`) or a text (`inputs.text_data`).
RunInputKind = Literal["document", "json", "text"]


class NodeBehaviour(BaseModel):
    """What the run workflow does for a node beyond executing it as planned, as its node type
    says: the workflow reads this, never the node type's name."""

    model_config = ConfigDict(frozen=True)

    # Waits `config.seconds` on a durable timer (execution "workflow"): no activity.
    timer: bool = False
    # A start node: the run input it receives.
    run_input: RunInputKind | None = None
    # A config field holding a JMESPath expression over ancestors' outputs: the ancestors it
    # names are sent to the node, with those its templates reference.
    expression_field: str | None = None
    # Runs as a child run of another workflow (workflows/children.py), its definition frozen
    # into the run's input when the run started.
    child_run: bool = False
    # A map: runs its inline node once per item in a child workflow (workflows/maps.py).
    map: bool = False

    @model_serializer(mode="wrap")
    def _without_defaults(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Frozen into every node's plan, in the run's input: most nodes need none of it.
        data: dict[str, Any] = handler(self)
        return {k: v for k, v in data.items() if v != type(self).model_fields[k].default}


class NodePlan(BaseModel):
    """How a node executes, frozen when the run starts (not read from the registry inside the
    workflow): in-flight runs replay the same way even if a node type changes later. Part of
    the run workflow's input (recorded in history): add fields with defaults only."""

    role: NodeRole
    # batch: a pure node, evaluated with the other ready pure work in one local activity
    #   whose result records its outcome (runs started since outcomes are recorded);
    # remote: a regular activity; local: a local activity of its own (a plugin's short work;
    #   pure nodes of the first runs); workflow: a timer or a signal (delay, human_review)
    #   and, in runs started before recording, a pure node evaluated by the workflow itself.
    execution: Execution
    timeout_s: float
    # None in plans frozen before behaviours were: the workflow then derives them from the
    # node type's name, as it did then (workflows.models.node_behaviour).
    behaviour: NodeBehaviour | None = None


@dataclass(frozen=True)
class ActivityDeps:
    """What activity factories may need; built once in worker.py."""

    settings: Settings
    http_client: httpx.AsyncClient
    # Where activities read secrets' values (the store, in worker.py); None: a worker that
    # cannot run nodes that reference secrets (they fail with SecretsUnavailable).
    secrets: SecretResolver | None = None
    # Where node activities record the requests they send and what they consume
    # (activities/usage.py); None: nothing is recorded (runs show no effects or usage).
    ledger: Ledger | None = None
    # Where activities read documents' bytes (`activities.documents.read_document`): the
    # store RUNLANE_BLOB_URL names, shared with the API; None: a worker that reads none.
    blobs: BlobStore | None = None


@dataclass(frozen=True)
class NodeType:
    name: str
    role: NodeRole
    config_model: type[BaseModel]
    execution: Execution
    description: str
    default_timeout_s: float = 30.0
    allowed_branches: frozenset[str] = frozenset()
    # Returns the activity callable registered under `name`; None for workflow-handled types.
    make_activity: Callable[[ActivityDeps], Callable[..., Any]] | None = None
    # Pure evaluation (deterministic, no I/O, no clock) for execution "batch"; runs started
    # before outcomes were recorded call it inside the workflow.
    evaluate: Callable[[NodeTaskInput], Any] | None = None
    # Re-running it repeats an effect outside Runlane (shown by the retry plan).
    side_effecting: bool = False
    # Frozen into each node's plan.
    behaviour: NodeBehaviour = NodeBehaviour()
    # A config field holding an inline node ({type, config, retry?, timeout_s?}) that the
    # validator checks against its own type (a map's `node`); its templates may use $item.
    inline_node_field: str | None = None
    # Top-level config fields that may reference `{{$secrets.name}}`: the node's activity
    # resolves them itself (activities/secret_scope.py). Anywhere else the validator refuses
    # a secret, since it would be rendered where it reads `***`.
    secret_fields: frozenset[str] = frozenset()
