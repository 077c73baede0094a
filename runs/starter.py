"""Starting a run's Temporal execution: the definition it runs, its input, the start call."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from temporalio.client import Client
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)

from activities.registry import NodeRegistry
from runlane import search_attributes, templating
from runlane.definition import Definition, validate_definition
from runlane.errors import Conflict, invalid, not_found
from store.secrets import SecretRepository
from store.workflows import WorkflowRepository
from workflows.models import FrozenWorkflow, RunInput, RunInputs, Trigger, WorkflowRef
from workflows.run_workflow import RunWorkflow

ConfigSource = Literal["published", "draft"]


def checked_definition(raw: dict[str, Any], registry: NodeRegistry) -> Definition:
    """A stored definition, re-checked: a node type it uses may have been uninstalled."""
    definition, problems = validate_definition(raw, registry)
    if definition is None:
        raise Conflict(
            "definition_invalid",
            "The workflow's definition is no longer valid; fix the draft and publish again.",
            {"errors": [p.model_dump() for p in problems]},
        )
    return definition


def secret_users(
    definition: Definition, nodes: Collection[str] | None = None
) -> dict[str, list[str]]:
    """The secrets the definition's nodes (those in `nodes`, when given) reference, each with
    the nodes that reference it."""
    users: dict[str, list[str]] = {}
    for node in definition.nodes:
        if nodes is not None and node.id not in nodes:
            continue
        for name in templating.secret_names(node.config):
            users.setdefault(name, []).append(node.id)
    return users


async def check_secrets(
    org: str, users: Mapping[str, Sequence[str]], secrets: SecretRepository
) -> None:
    """Every secret in `users` (secret_users) exists in the organization, or InvalidInput
    (422 `unknown_secret`) naming each missing one and the nodes that reference it. Checked
    when a run starts, restarts, reruns or is retried; a secret deleted while the run is in
    flight fails the node that resolves it (UnknownSecret)."""
    if not users:
        return
    missing = await secrets.missing(org, users)
    if not missing:
        return
    errors = [
        {
            "loc": ["definition", "nodes", node_id, "config"],
            "node_id": node_id,
            "secret": name,
            "message": f"secret '{name}' does not exist in this organization",
        }
        for name in missing
        for node_id in users[name]
    ]
    if len(missing) == 1:
        message = (
            f"Unknown secret '{missing[0]}': the workflow references it but this organization "
            f"has none by that name (create it with PUT /v1/secrets/{missing[0]})."
        )
    else:
        named = ", ".join(f"'{name}'" for name in missing)
        message = (
            f"Unknown secrets {named}: the workflow references them but this organization "
            "has none by those names (create each with PUT /v1/secrets/<name>)."
        )
    raise invalid("unknown_secret", message, errors)


class PublishedDefinitions:
    """Checked definitions of published snapshots, by snapshot id. A snapshot never changes
    once published, so this is safe across API replicas (whichever snapshot is published now
    is still read from the store on every start). Bounded: least recently used go first."""

    def __init__(self, capacity: int = 256) -> None:
        self._capacity = capacity
        self._definitions: OrderedDict[str, Definition] = OrderedDict()
        # The secrets each cached definition references, found once: scanning every template
        # of a large definition on each start costs milliseconds (10,000 nodes: 14 ms).
        self._secret_users: dict[str, dict[str, list[str]]] = {}

    def get(self, snapshot_id: str) -> Definition | None:
        definition = self._definitions.get(snapshot_id)
        if definition is not None:
            self._definitions.move_to_end(snapshot_id)
        return definition

    def put(self, snapshot_id: str, definition: Definition) -> None:
        self._definitions[snapshot_id] = definition
        self._definitions.move_to_end(snapshot_id)
        self._secret_users[snapshot_id] = secret_users(definition)
        while len(self._definitions) > self._capacity:
            evicted, _ = self._definitions.popitem(last=False)
            self._secret_users.pop(evicted, None)

    def secret_users(self, snapshot_id: str | None, definition: Definition) -> dict[str, list[str]]:
        """secret_users(definition), from the cache when it is this snapshot's definition."""
        cached = self._secret_users.get(snapshot_id) if snapshot_id is not None else None
        if cached is not None and self._definitions.get(snapshot_id or "") is definition:
            return cached
        return secret_users(definition)


async def definition_for(
    org: str,
    workflow_id: str,
    config_source: ConfigSource,
    repo: WorkflowRepository,
    registry: NodeRegistry,
    published: PublishedDefinitions,
) -> tuple[Definition, WorkflowRef]:
    """The definition a new run executes: the published snapshot, or the current draft."""
    if config_source == "draft":
        workflow = await repo.get(org, workflow_id)
        if workflow is None:
            raise not_found("workflow", workflow_id)
        ref = WorkflowRef(
            workflow_id=workflow.id, snapshot_id=None, version=None, name_at_run_time=workflow.name
        )
        return checked_definition(workflow.draft_definition, registry), ref
    head = await repo.published_head(org, workflow_id)
    if head is None:
        raise not_found("workflow", workflow_id)
    if head.snapshot_id is None:
        raise Conflict(
            "workflow_not_published",
            f"Workflow {head.workflow_id} has no published snapshot; publish it or run the "
            'draft with "config_source": "draft".',
        )
    definition = published.get(head.snapshot_id)
    if definition is None:
        snapshot = await repo.get_snapshot(org, head.snapshot_id)
        if snapshot is None:  # pragma: no cover - snapshots are never deleted
            raise not_found("workflow", workflow_id)
        definition = checked_definition(snapshot.definition, registry)
        published.put(head.snapshot_id, definition)
    ref = WorkflowRef(
        workflow_id=head.workflow_id,
        snapshot_id=head.snapshot_id,
        version=head.version,
        name_at_run_time=head.name,
    )
    return definition, ref


class RunStarter:
    def __init__(self, client: Client, registry: NodeRegistry, task_queue: str) -> None:
        self._client = client
        self._registry = registry
        self._task_queue = task_queue

    def run_input(
        self,
        *,
        run_id: str,
        org: str,
        workflow: WorkflowRef,
        definition: Definition,
        inputs: RunInputs,
        trigger: Trigger,
        subworkflows: dict[str, FrozenWorkflow] | None = None,
        events: list[str] | None = None,
        started_by: str | None = None,
    ) -> RunInput:
        return RunInput(
            run_id=run_id,
            organization_id=org,
            workflow=workflow,
            definition=definition,
            plans=self._registry.plans(definition),
            inputs=inputs,
            trigger=trigger,
            created_at=datetime.now(UTC),
            subworkflows=subworkflows or {},
            events=events or [],
            started_by=started_by,
        )

    async def start(
        self, run_input: RunInput, *, attach_to_existing: bool = False, reuse_ended_id: bool = False
    ) -> str | None:
        """Start the run's workflow. With `attach_to_existing` (idempotent replays) an
        execution already started under the same id is reused instead of failing; with
        `reuse_ended_id` (retry from the start) an ended run's id gets a new execution."""
        version = run_input.workflow.version
        handle = await self._client.start_workflow(
            RunWorkflow.run,
            run_input,
            id=run_input.run_id,
            task_queue=self._task_queue,
            id_reuse_policy=(
                WorkflowIDReusePolicy.ALLOW_DUPLICATE
                if reuse_ended_id
                else WorkflowIDReusePolicy.REJECT_DUPLICATE
            ),
            id_conflict_policy=(
                WorkflowIDConflictPolicy.USE_EXISTING
                if attach_to_existing
                else WorkflowIDConflictPolicy.FAIL
            ),
            search_attributes=TypedSearchAttributes(run_search_attributes(run_input)),
            static_summary=(
                f"{run_input.workflow.name_at_run_time} "
                f"({'v' + str(version) if version else 'draft'}, {run_input.trigger.type})"
            ),
        )
        return handle.result_run_id


def run_search_attributes(run_input: RunInput) -> list[SearchAttributePair]:
    """What every run started from its input carries: the REST start, and the runs a
    schedule's launcher starts as its child (triggers/schedule_workflow.py)."""
    pairs: list[SearchAttributePair] = [
        SearchAttributePair(search_attributes.ORGANIZATION, run_input.organization_id),
        SearchAttributePair(search_attributes.WORKFLOW_ID, run_input.workflow.workflow_id),
        SearchAttributePair(search_attributes.TRIGGER_TYPE, run_input.trigger.type),
        SearchAttributePair(search_attributes.RUN_STATUS, "pending"),
        SearchAttributePair(
            search_attributes.CREATED_AT_US, search_attributes.microseconds(run_input.created_at)
        ),
    ]
    if run_input.trigger.schedule_id:
        pairs.append(
            SearchAttributePair(search_attributes.SCHEDULE_ID, run_input.trigger.schedule_id)
        )
    if run_input.trigger.source_run_id:
        pairs.append(
            SearchAttributePair(search_attributes.SOURCE_RUN_ID, run_input.trigger.source_run_id)
        )
    return pairs
