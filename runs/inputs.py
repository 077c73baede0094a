"""A run's inputs, checked against its start nodes before anything is stored.

Every problem is collected into one `InvalidInput` naming the nodes; only when there are none
are inline documents stored, so a refused request leaves nothing behind. Documents become file
references: their bytes never enter Temporal history.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any

from activities.inputs import StartConfig, StartJsonConfig, mime_accepted, schema_problems
from activities.node_type import RunInputKind
from activities.registry import NodeRegistry
from runlane.definition import Definition, Node
from runlane.errors import TooLarge, invalid
from store.files import FileRecord, FileRepository
from workflows.models import FileRef, RunInputs

# JSON and text inputs of one run together, as JSON text (API.md "Request limits").
MAX_INPUTS_JSON_BYTES = 4 * 1024 * 1024
# Which request field feeds each kind of run input a start node receives (its node type's
# `behaviour.run_input`).
INPUT_FIELD: dict[RunInputKind, str] = {
    "document": "documents",
    "json": "json_inputs",
    "text": "text_inputs",
}


@dataclass(frozen=True)
class DocumentRequest:
    """Inline (filename, mime_type, base64 content) or a reference to an uploaded file."""

    file_id: str | None = None
    filename: str | None = None
    mime_type: str | None = None
    content: str | None = None


@dataclass(frozen=True)
class RequestedInputs:
    documents: dict[str, DocumentRequest] = field(default_factory=dict)
    json_inputs: dict[str, Any] = field(default_factory=dict)
    text_inputs: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of_run(cls, inputs: RunInputs) -> RequestedInputs:
        """A run's inputs as a new request: documents by reference, never re-uploaded."""
        return cls(
            documents={
                n: DocumentRequest(file_id=ref.file_id) for n, ref in inputs.documents.items()
            },
            json_inputs=dict(inputs.json_data),
            text_inputs=dict(inputs.text_data),
        )

    def overridden_by(self, other: RequestedInputs) -> RequestedInputs:
        return RequestedInputs(
            documents={**self.documents, **other.documents},
            json_inputs={**self.json_inputs, **other.json_inputs},
            text_inputs={**self.text_inputs, **other.text_inputs},
        )


def _file_ref(record: FileRecord) -> FileRef:
    return FileRef(
        file_id=record.id,
        filename=record.filename,
        mime_type=record.mime_type,
        size_bytes=record.size_bytes,
        sha256=record.sha256,
    )


class InputResolver:
    def __init__(
        self, files: FileRepository, registry: NodeRegistry, max_upload_bytes: int
    ) -> None:
        self._files = files
        self._registry = registry
        self._max_upload_bytes = max_upload_bytes

    def _start_nodes(self, definition: Definition) -> dict[str, tuple[Node, RunInputKind]]:
        starts = {}
        for node in definition.nodes:
            node_type = self._registry.get(node.type)
            kind = node_type.behaviour.run_input if node_type is not None else None
            if kind is not None:
                starts[node.id] = (node, kind)
        return starts

    async def resolve(
        self, org: str, definition: Definition, requested: RequestedInputs
    ) -> RunInputs:
        """Validate every input against its start node, then store inline documents."""
        _check_size(requested)
        errors: list[dict[str, Any]] = []
        starts = self._start_nodes(definition)
        given: dict[str, dict[str, Any]] = {
            "documents": requested.documents,
            "json_inputs": requested.json_inputs,
            "text_inputs": requested.text_inputs,
        }

        def problem(where: str, node_id: str, message: str) -> None:
            errors.append({"loc": ["body", where, node_id], "node_id": node_id, "message": message})

        for where, values in given.items():
            for node_id in values:
                start = starts.get(node_id)
                if start is None:
                    problem(where, node_id, f"'{node_id}' is not a start node of this workflow")
                elif INPUT_FIELD[start[1]] != where:
                    problem(
                        where,
                        node_id,
                        f"'{node_id}' is a {start[0].type} node: send it in "
                        f"{INPUT_FIELD[start[1]]}",
                    )
        for node_id, (node, kind) in starts.items():
            where = INPUT_FIELD[kind]
            if node_id not in given[where]:
                problem(where, node_id, f"missing input for start node '{node_id}' ({node.type})")

        decoded: dict[str, bytes] = {}
        referenced: dict[str, FileRef] = {}
        for node_id, document in requested.documents.items():
            start = starts.get(node_id)
            if start is None or start[1] != "document":
                continue
            node = start[0]
            accept = StartConfig.model_validate(node.config).accept
            if document.file_id is not None:
                record = await self._files.get(org, document.file_id)
                if record is None:
                    problem(
                        "documents", node_id, f"no file {document.file_id} in this organization"
                    )
                    continue
                mime_type = record.mime_type
                referenced[node_id] = _file_ref(record)
            else:
                assert document.content is not None and document.mime_type is not None
                try:
                    content = base64.b64decode(document.content, validate=True)
                except (binascii.Error, ValueError):
                    problem("documents", node_id, "content is not valid base64")
                    continue
                if len(content) > self._max_upload_bytes:
                    raise TooLarge(
                        "document_too_large",
                        f"document '{node_id}' is {len(content)} bytes; the limit is "
                        f"{self._max_upload_bytes}.",
                    )
                decoded[node_id] = content
                mime_type = document.mime_type
            if not mime_accepted(mime_type, accept):
                problem("documents", node_id, f"{mime_type} is not accepted (accept: {accept})")

        for node_id, value in requested.json_inputs.items():
            start = starts.get(node_id)
            if start is not None and start[1] == "json":
                node = start[0]
                for message in _schema_problems(node, value):
                    problem("json_inputs", node_id, message)

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
                max_bytes=self._max_upload_bytes,
            )
            documents[node_id] = _file_ref(record)
        return RunInputs(
            documents={n: documents[n] for n in requested.documents if n in documents},
            json_data=dict(requested.json_inputs),
            text_data=dict(requested.text_inputs),
        )


def _check_size(requested: RequestedInputs) -> None:
    size = len(_json_text(requested.json_inputs)) + len(_json_text(requested.text_inputs))
    if size > MAX_INPUTS_JSON_BYTES:
        raise TooLarge(
            "run_too_large",
            f"json_inputs and text_inputs hold {size} bytes of JSON together; the limit is "
            f"{MAX_INPUTS_JSON_BYTES}. Pass large data as documents.",
            {"size_bytes": size, "limit_bytes": MAX_INPUTS_JSON_BYTES},
        )


def _json_text(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def _schema_problems(node: Node, value: Any) -> list[str]:
    return schema_problems(StartJsonConfig.model_validate(node.config).json_schema, value)


def _summary(errors: list[dict[str, Any]]) -> str:
    shown = "; ".join(f"{e['node_id']}: {e['message']}" for e in errors[:5])
    more = f" (+{len(errors) - 5} more)" if len(errors) > 5 else ""
    return f"Invalid run inputs: {shown}{more}"
