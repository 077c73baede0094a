"""Starting runs: check the inputs against the start nodes, store documents, start the
workflow. Every input problem is found before anything is stored, so a rejected request
leaves nothing behind."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from jsonschema import Draft202012Validator
from jsonschema.validators import validator_for
from temporalio.client import Client
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError

from activities.inputs import StartConfig, StartJsonConfig, mime_accepted
from activities.registry import NodeRegistry
from api.errors import ApiError, conflict, invalid, not_found
from api.idempotency import Command, claim, previous_result
from api.run_reader import RunReader, RunView
from api.schemas import DocumentInput
from api.store.files import FileRepository
from api.store.idempotency import IdempotencyRepository
from api.store.workflows import WorkflowRepository
from runlane import ids, search_attributes
from runlane.definition import Definition, validate_definition
from runlane.settings import Settings
from workflows.models import (
    FileRef,
    RunInput,
    RunInputs,
    Trigger,
    WorkflowRef,
    initial_state,
)
from workflows.run_workflow import RunWorkflow


@dataclass(frozen=True)
class RequestedInputs:
    documents: dict[str, DocumentInput]
    json_inputs: dict[str, Any]
    text_inputs: dict[str, str]


def checked_definition(raw: dict[str, Any], registry: NodeRegistry) -> Definition:
    """A stored definition, re-checked: a node type it uses may have been uninstalled."""
    definition, problems = validate_definition(raw, registry)
    if definition is None:
        raise ApiError(
            409,
            "definition_invalid",
            "The workflow's definition is no longer valid; fix the draft and publish again.",
            {"errors": [p.model_dump() for p in problems]},
        )
    return definition


async def definition_for(
    org: str,
    workflow_id: str,
    config_source: Literal["published", "draft"],
    repo: WorkflowRepository,
    registry: NodeRegistry,
) -> tuple[Definition, WorkflowRef]:
    """The definition a new run executes: the published snapshot, or the current draft."""
    found = await repo.get_with_published(org, workflow_id)
    if found is None:
        raise not_found("workflow", workflow_id)
    workflow, snapshot = found
    if config_source == "draft":
        ref = WorkflowRef(
            workflow_id=workflow.id, snapshot_id=None, version=None, name_at_run_time=workflow.name
        )
        return checked_definition(workflow.draft_definition, registry), ref
    if snapshot is None:
        raise conflict(
            "workflow_not_published",
            f"Workflow {workflow.id} has no published snapshot; publish it or run the draft "
            'with "config_source": "draft".',
        )
    ref = WorkflowRef(
        workflow_id=workflow.id,
        snapshot_id=snapshot.id,
        version=snapshot.version,
        name_at_run_time=workflow.name,
    )
    return checked_definition(snapshot.definition, registry), ref


@dataclass(frozen=True)
class Launched:
    """A started (or, for a replayed command, the earlier) run; `replayed` answers 200."""

    view: RunView
    replayed: bool


class RunStarter:
    def __init__(
        self,
        client: Client,
        settings: Settings,
        files: FileRepository,
        registry: NodeRegistry,
        idempotency: IdempotencyRepository,
        reader: RunReader,
    ) -> None:
        self._client = client
        self._settings = settings
        self._files = files
        self._registry = registry
        self._idempotency = idempotency
        self._reader = reader

    async def launch(
        self, command: Command, prepare: Callable[[str], Awaitable[RunInput]]
    ) -> Launched:
        """The one way new runs start (start, restart, rerun): a replayed command returns
        the run it started; otherwise `prepare(run_id)` validates and builds the input
        (raising before anything is recorded), the command is claimed, the workflow starts.

        With a command_id the run id is derived from it, so concurrent replays all start,
        or attach to, the same workflow id (Temporal's USE_EXISTING conflict policy).
        """
        org = command.organization_id
        previous = await previous_result(self._idempotency, command)
        if previous is not None and await self._reader.exists(org, previous):
            return Launched(await self._reader.get(org, previous), replayed=True)
        run_id = (
            ids.derived_id(ids.RUN, org, command.command_id)
            if command.command_id
            else ids.new_id(ids.RUN)
        )
        run_input = await prepare(run_id)
        _, replayed = await claim(self._idempotency, command, run_id)
        try:
            temporal_run_id = await self.start(
                run_input, attach_to_existing=command.command_id is not None
            )
        except WorkflowAlreadyStartedError:
            if command.command_id is None:
                raise
            # A concurrent identical call started it and it has already ended: same run.
            return Launched(await self._reader.get(org, run_id), replayed=True)
        if replayed:
            return Launched(await self._reader.get(org, run_id), replayed=True)
        view = RunView(state=initial_state(run_input), temporal_run_id=temporal_run_id)
        return Launched(view, replayed=False)

    async def resolve_inputs(
        self, org: str, definition: Definition, requested: RequestedInputs
    ) -> RunInputs:
        """Validate every input against its start node (422 naming the nodes), then store
        inline documents. Documents become file references: bytes never enter history."""
        errors: list[dict[str, Any]] = []
        starts = {
            n.id: n for n in definition.nodes if n.type in ("start", "start_json", "start_text")
        }
        field_by_type = {
            "start": "documents",
            "start_json": "json_inputs",
            "start_text": "text_inputs",
        }
        given = {
            "documents": requested.documents,
            "json_inputs": requested.json_inputs,
            "text_inputs": requested.text_inputs,
        }

        def problem(field: str, node_id: str, message: str) -> None:
            errors.append({"loc": ["body", field, node_id], "node_id": node_id, "message": message})

        for field, values in given.items():
            for node_id in values:
                node = starts.get(node_id)
                if node is None:
                    problem(field, node_id, f"'{node_id}' is not a start node of this workflow")
                elif field_by_type[node.type] != field:
                    problem(
                        field,
                        node_id,
                        f"'{node_id}' is a {node.type} node: send it in {field_by_type[node.type]}",
                    )
        for node_id, node in starts.items():
            field = field_by_type[node.type]
            if node_id not in given[field]:
                problem(field, node_id, f"missing input for start node '{node_id}' ({node.type})")

        decoded: dict[str, bytes] = {}
        referenced: dict[str, FileRef] = {}
        for node_id, document in requested.documents.items():
            node = starts.get(node_id)
            if node is None or node.type != "start":
                continue
            accept = StartConfig.model_validate(node.config).accept
            if document.file_id is not None:
                record = await self._files.get(org, document.file_id)
                if record is None:
                    problem(
                        "documents", node_id, f"no file {document.file_id} in this organization"
                    )
                    continue
                mime_type = record.mime_type
                referenced[node_id] = FileRef(
                    file_id=record.id,
                    filename=record.filename,
                    mime_type=record.mime_type,
                    size_bytes=record.size_bytes,
                    sha256=record.sha256,
                )
            else:
                assert document.content is not None and document.mime_type is not None
                try:
                    content = base64.b64decode(document.content, validate=True)
                except (binascii.Error, ValueError):
                    problem("documents", node_id, "content is not valid base64")
                    continue
                if len(content) > self._settings.max_upload_bytes:
                    raise ApiError(
                        413,
                        "document_too_large",
                        f"document '{node_id}' is {len(content)} bytes; the limit is "
                        f"{self._settings.max_upload_bytes}.",
                    )
                decoded[node_id] = content
                mime_type = document.mime_type
            if not mime_accepted(mime_type, accept):
                problem("documents", node_id, f"{mime_type} is not accepted (accept: {accept})")

        for node_id, value in requested.json_inputs.items():
            node = starts.get(node_id)
            if node is None or node.type != "start_json":
                continue
            schema = StartJsonConfig.model_validate(node.config).json_schema
            if schema is None:
                continue
            validator = validator_for(schema, default=Draft202012Validator)(schema)
            for error in sorted(validator.iter_errors(value), key=lambda e: list(e.path)):
                where = "/".join(str(p) for p in error.path) or "(root)"
                problem("json_inputs", node_id, f"{where}: {error.message}")

        if errors:
            raise invalid("invalid_inputs", _summary(errors), errors)

        documents = dict(referenced)
        for node_id, content in decoded.items():
            document = requested.documents[node_id]
            assert document.filename is not None and document.mime_type is not None
            record = await self._files.store_bytes(
                org,
                filename=document.filename,
                mime_type=document.mime_type,
                content=content,
                max_bytes=self._settings.max_upload_bytes,
            )
            documents[node_id] = FileRef(
                file_id=record.id,
                filename=record.filename,
                mime_type=record.mime_type,
                size_bytes=record.size_bytes,
                sha256=record.sha256,
            )
        return RunInputs(
            documents={n: documents[n] for n in requested.documents if n in documents},
            json_data=dict(requested.json_inputs),
            text_data=dict(requested.text_inputs),
        )

    def run_input(
        self,
        *,
        run_id: str,
        org: str,
        workflow: WorkflowRef,
        definition: Definition,
        inputs: RunInputs,
        trigger: Trigger,
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
            task_queue=self._settings.task_queue,
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
            search_attributes=TypedSearchAttributes(_search_attributes(run_input)),
            static_summary=(
                f"{run_input.workflow.name_at_run_time} "
                f"({'v' + str(version) if version else 'draft'}, {run_input.trigger.type})"
            ),
        )
        return handle.result_run_id


def _search_attributes(run_input: RunInput) -> list[SearchAttributePair]:
    pairs: list[SearchAttributePair] = [
        SearchAttributePair(search_attributes.ORGANIZATION, run_input.organization_id),
        SearchAttributePair(search_attributes.WORKFLOW_ID, run_input.workflow.workflow_id),
        SearchAttributePair(search_attributes.TRIGGER_TYPE, run_input.trigger.type),
        SearchAttributePair(search_attributes.RUN_STATUS, "pending"),
    ]
    if run_input.trigger.source_run_id:
        pairs.append(
            SearchAttributePair(search_attributes.SOURCE_RUN_ID, run_input.trigger.source_run_id)
        )
    return pairs


def _summary(errors: list[dict[str, Any]]) -> str:
    shown = "; ".join(f"{e['node_id']}: {e['message']}" for e in errors[:5])
    more = f" (+{len(errors) - 5} more)" if len(errors) > 5 else ""
    return f"Invalid run inputs: {shown}{more}"
