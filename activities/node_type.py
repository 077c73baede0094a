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
from pydantic import BaseModel

from runlane.definition import NodeRole
from runlane.settings import Settings

if TYPE_CHECKING:
    from activities.models import NodeTaskInput

# batch: a pure node (needs `evaluate`): evaluated with the other ready pure work in one local
#   activity whose result records its outcome in the run's history;
# remote: a regular activity (I/O, retried by the server);
# local: a local activity of its own (short work that needs no server round trip);
# workflow: a durable timer or a signal, handled by the workflow itself.
# Runs started earlier froze "workflow" (pure nodes evaluated in the workflow, unrecorded) or
# "local" for pure nodes; they finish that way.
Execution = Literal["batch", "local", "remote", "workflow"]


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


@dataclass(frozen=True)
class ActivityDeps:
    """What activity factories may need; built once in worker.py."""

    settings: Settings
    http_client: httpx.AsyncClient


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
