"""REST request and response schemas (API.md). Separate from the workflow's wire models."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    computed_field,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

from runlane.json_values import json_value_problem
from runlane.unicode import NOT_UNICODE, has_lone_surrogate

# The run record's models live with the code that renders them (event webhooks send it too);
# re-exported here, where routes and clients have always found them.
from runs.records import (  # noqa: F401
    AttemptOut,
    DocumentOut,
    InputDocumentOut,
    Lifecycle,
    RunErrorOut,
    RunInputsOut,
    RunOut,
    RunWorkflowOut,
    TemporalOut,
    TimingOut,
    TriggerOut,
    UsageOut,
)
from workflows.events import EventType

T = TypeVar("T")


def _no_nul(value: str | None) -> str | None:
    # PostgreSQL text cannot hold NUL; refusing it everywhere keeps both stores alike.
    if value is not None and "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


class _StoredText:
    """Text without NUL: checked by `_no_nul`, and said in the JSON schema (a pattern), so that
    what the schema allows the API accepts."""

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(_no_nul, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {**handler(schema), "pattern": "^[^\\x00]*$"}


StoredText = _StoredText()

# RFC 3339's date-time: a date, a time and an offset. Pydantic alone would also read a bare
# date, a time without offset (then compared with aware ones: a 500) and numbers as Unix times.
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")


def _rfc3339_text(value: Any) -> Any:
    if isinstance(value, str) and not _RFC3339.fullmatch(value):
        raise ValueError(
            "must be an RFC 3339 date-time with a timezone offset, such as "
            "2024-05-01T12:00:00Z (in a query string, write '+' as %2B)"
        )
    return value


Rfc3339 = Annotated[AwareDatetime, BeforeValidator(_rfc3339_text)]

CommandId = Annotated[
    str | None,
    Field(
        min_length=1,
        max_length=200,
        description="Idempotency key: replays return the first result (200) and enqueue nothing",
    ),
    StoredText,
]
FileName = Annotated[str, Field(min_length=1, max_length=500), StoredText]
MimeType = Annotated[str, Field(min_length=1, max_length=200), StoredText]


def _plain_json(value: Any) -> Any:
    problem = json_value_problem(value)
    if problem is None and has_lone_surrogate(value):
        problem = NOT_UNICODE
    if problem is not None:
        raise ValueError(problem)
    return value


PlainJson = AfterValidator(_plain_json)


def _unicode_text(value: Any) -> Any:
    if has_lone_surrogate(value):
        raise ValueError(NOT_UNICODE)
    return value


# For text pydantic passes unchecked: plain `str`, and the keys and values of mappings.
UnicodeText = AfterValidator(_unicode_text)


class ListMetadata(BaseModel):
    before: None = Field(
        default=None, description="Always null: pages are only followed forwards, with `after`"
    )
    after: str | None = Field(
        description="The next page's cursor, the same as `next_cursor`; null on the last page"
    )


class Page(BaseModel, Generic[T]):
    data: list[T]
    next_cursor: str | None = Field(
        default=None,
        description="Pass as `cursor` (or `after`) for the next page; null on the last page",
    )

    @computed_field(  # type: ignore[prop-decorator]
        description="Seed compatibility (Retab): `{before: null, after: next_cursor}`"
    )
    @property
    def list_metadata(self) -> ListMetadata:
        return ListMetadata(after=self.next_cursor)


class DataList(BaseModel, Generic[T]):
    data: list[T]


# ------------------------------------------------------------------ definitions


class WorkflowCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=200), StoredText]
    description: Annotated[str, Field(max_length=5000), StoredText] = ""
    definition: dict[str, Any] = Field(description="Nodes and edges; see API.md 'Definition'")


class DraftReplace(BaseModel):
    model_config = ConfigDict(extra="forbid")

    definition: dict[str, Any]


class ValidateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    definition: Any


class DefinitionProblem(BaseModel):
    node_id: str | None = None
    message: str


class ValidateResult(BaseModel):
    valid: bool
    errors: list[DefinitionProblem]


class Draft(BaseModel):
    definition: dict[str, Any]
    updated_at: datetime


class WorkflowOut(BaseModel):
    id: str
    organization_id: str
    name: str
    description: str
    draft: Draft
    published_snapshot_id: str | None
    created_at: datetime
    updated_at: datetime


class SnapshotOut(BaseModel):
    id: str
    workflow_id: str
    version: int
    definition: dict[str, Any]
    created_at: datetime


# ------------------------------------------------------------------ files


class FileOut(BaseModel):
    id: str
    filename: str
    mime_type: str
    size_bytes: int
    sha256: str
    created_at: datetime


# ------------------------------------------------------------------ secrets

MAX_SECRET_CHARS = 65_536


class SecretPut(BaseModel):
    model_config = ConfigDict(extra="forbid")

    value: Annotated[
        str,
        Field(
            min_length=1,
            max_length=MAX_SECRET_CHARS,
            description="The secret's value: stored encrypted, never answered back",
            json_schema_extra={"writeOnly": True, "format": "password"},
        ),
        UnicodeText,
    ]


class SecretOut(BaseModel):
    """A secret as the API shows it: its name and times, never its value."""

    name: str
    created_at: datetime
    updated_at: datetime


# ------------------------------------------------------------------ runs


def _given(*names: str) -> dict[str, Any]:
    return {"required": list(names), "properties": {n: {"type": "string"} for n in names}}


def _absent(*names: str) -> dict[str, Any]:
    return {"properties": {n: {"type": "null"} for n in names}}


class DocumentInput(BaseModel):
    """Inline (filename, mime_type, base64 content) or a reference to an uploaded file."""

    # The OpenAPI document says what `_one_form` checks, so that clients (and schema
    # fuzzers) see the same two forms the API accepts.
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "oneOf": [
                {"allOf": [_given("file_id"), _absent("filename", "mime_type", "content")]},
                {"allOf": [_given("filename", "mime_type", "content"), _absent("file_id")]},
            ]
        },
    )

    filename: FileName | None = None
    mime_type: MimeType | None = None
    content: str | None = Field(default=None, description="base64")
    file_id: Annotated[str | None, UnicodeText] = None

    @model_validator(mode="after")
    def _one_form(self) -> DocumentInput:
        inline = (self.filename, self.mime_type, self.content)
        if self.file_id is not None:
            if any(v is not None for v in inline):
                raise ValueError("give either file_id or filename/mime_type/content, not both")
        elif any(v is None for v in inline):
            raise ValueError("an inline document needs filename, mime_type and content (base64)")
        return self


class RunCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    documents: Annotated[dict[str, DocumentInput], UnicodeText] = Field(default_factory=dict)
    json_inputs: Annotated[dict[str, Any], PlainJson] = Field(default_factory=dict)
    text_inputs: Annotated[dict[str, str], UnicodeText] = Field(default_factory=dict)
    config_source: Literal["published", "draft"] = "published"
    command_id: CommandId = None


class CommandBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    command_id: CommandId = None


class ReviewOut(BaseModel):
    decision: str
    reviewer: str | None
    comment: str | None
    decided_at: datetime


class ApprovalOut(BaseModel):
    reviewer: str | None
    comment: str | None
    data: Any = None
    approved_at: datetime


class StepErrorOut(BaseModel):
    type: str
    message: str


class MapProgressOut(BaseModel):
    total: int
    completed: int
    failed: int
    running: int


class MapItemOut(BaseModel):
    index: int
    status: Literal["pending", "running", "completed", "error", "cancelled"]
    attempt: int = Field(description="The map execution that produced it (one more per retry)")
    output: Any
    error: StepErrorOut | None
    child_run_id: str | None = Field(
        default=None, description="workflow_id maps: the item's child run (null until it starts)"
    )


class StepOut(BaseModel):
    node_id: str
    node_type: str
    label: str
    status: str
    attempt: int
    started_at: datetime | None
    completed_at: datetime | None
    duration_ms: int | None
    output: Any
    error: StepErrorOut | None
    review: ReviewOut | None
    child_run_id: str | None = Field(
        default=None,
        description="A subworkflow node: the child run it started (its latest, after a retry)",
    )
    progress: MapProgressOut | None = Field(
        default=None, description="map nodes: items total, completed, failed and running"
    )
    approvals: list[ApprovalOut] = Field(
        default_factory=list,
        description="human_review nodes that need several approvals: the approvals so far",
    )
    escalated_at: datetime | None = Field(
        default=None,
        description="human_review nodes: when the review escalated (escalate_after_s passed "
        "without a decision)",
    )
    effects: list[EffectOut] | None = Field(
        default=None,
        description="Side-effecting nodes: every request the node actually sent, across "
        "activity retries and run retries, oldest first (secrets as `***`). Left out for "
        "other nodes and in Server-Sent Events",
        exclude_if=lambda value: value is None,
    )
    usage: UsageOut | None = Field(
        default=None,
        description="What this node did, across every attempt. Left out in Server-Sent Events",
        exclude_if=lambda value: value is None,
    )

    # Seed compatibility: the names Retab's SDK (0.0.130) reads a step by.
    @computed_field(description="Seed compatibility (Retab SDK): `node_id`")  # type: ignore[prop-decorator]
    @property
    def block_id(self) -> str:
        return self.node_id

    @computed_field(description="Seed compatibility (Retab SDK): `node_type`")  # type: ignore[prop-decorator]
    @property
    def block_type(self) -> str:
        return self.node_type

    @computed_field(description="Seed compatibility (Retab SDK): `label`")  # type: ignore[prop-decorator]
    @property
    def block_label(self) -> str:
        return self.label


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    temporal: Literal["ok", "unreachable"]


# ------------------------------------------------------------------ recovery


class RestartBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    config_source: Literal["published", "draft"] = "published"
    command_id: CommandId = None


class RetryBody(BaseModel):
    # As `_consistent` checks: where from, and which inputs go with it (a plan_id names both,
    # and the run service checks the rest against its plan).
    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        json_schema_extra={
            "anyOf": [
                {
                    "required": ["from"],
                    "properties": {"from": {"const": "start"}, "node_id": {"type": "null"}},
                },
                {
                    "required": ["from", "node_id"],
                    "properties": {
                        "from": {"const": "node"},
                        "node_id": {"type": "string"},
                        "documents": {"type": "null"},
                    },
                },
                {
                    "required": ["plan_id"],
                    "properties": {"from": {"type": "null"}, "plan_id": {"type": "string"}},
                },
                {
                    "allOf": [
                        {"properties": {"from": {"enum": ["failure_point", None]}}},
                        _absent("documents", "json_inputs", "text_inputs", "node_id"),
                    ]
                },
            ]
        },
    )

    command_id: CommandId = None
    from_: Literal["failure_point", "start", "node"] | None = Field(
        default=None,
        alias="from",
        description="Where the retry resumes: `failure_point` (the default), `start`, or `node` "
        "(with `node_id`: that node and everything downstream of it run again, the rest keeps "
        "its recorded outputs; allowed on any ended run). With `plan_id`: the plan's",
    )
    node_id: str | None = Field(
        default=None, max_length=200, description='The node to retry from (`"from": "node"`)'
    )
    plan_id: str | None = Field(
        default=None,
        max_length=2000,
        pattern=r"^plan_[A-Za-z0-9_-]+\.[0-9a-f]{32}$",
        description="A plan's `plan_id` (GET .../retry-plan): do exactly what that plan said, "
        "or 409 `plan_stale` when the run changed since",
    )
    documents: Annotated[dict[str, DocumentInput] | None, UnicodeText] = Field(
        default=None, description='Overriding documents (`"from": "start"` only)'
    )
    json_inputs: Annotated[dict[str, Any] | None, PlainJson] = Field(
        default=None,
        description='Overriding JSON inputs (`"from": "start"` or `"node"`; with `node`, the '
        "start nodes named run again with them)",
    )
    text_inputs: Annotated[dict[str, str] | None, UnicodeText] = Field(
        default=None, description='Overriding text inputs (`"from": "start"` or `"node"`)'
    )

    @model_validator(mode="after")
    def _consistent(self) -> RetryBody:
        planned = self.plan_id is not None and self.from_ is None
        if self.from_ == "node" and self.node_id is None:
            raise ValueError('"from": "node" needs node_id')
        if self.node_id is not None and self.from_ != "node" and not planned:
            raise ValueError('node_id goes with "from": "node"')
        if self.documents is not None and self.from_ != "start" and not planned:
            raise ValueError('document overrides need "from": "start"')
        inputs = (self.json_inputs, self.text_inputs)
        if any(i is not None for i in inputs) and self.from_ not in ("start", "node"):
            if not planned:
                raise ValueError('input overrides need "from": "start" or "node"')
        return self


class RetryPlanOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    plan_id: str = Field(
        description="Give it to POST .../retry to do exactly this, or be told `409 plan_stale` "
        "if the run changed since"
    )
    from_: Literal["failure_point", "start", "node"] = Field(serialization_alias="from")
    node_id: str | None = Field(default=None, description='With `"from": "node"`: the node')
    allowed: bool
    reason: str | None = None
    reuse: list[str] = Field(description="Steps that keep their recorded outcome")
    rerun: list[str] = Field(description="Steps that run again")
    repeated_side_effects: list[str] = Field(
        description="Side-effecting steps that had run and run again"
    )


# ------------------------------------------------------------------ reviews


class ReviewDecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision: Literal["approve", "reject"]
    data: Annotated[dict[str, Any] | None, PlainJson] = Field(
        default=None, description="approve: the edited data the node outputs (a JSON object)"
    )
    comment: str | None = Field(default=None, max_length=5000)
    reviewer: str | None = Field(default=None, max_length=200)
    command_id: CommandId = None


class PendingReviewOut(BaseModel):
    run_id: str
    node_id: str
    label: str
    instructions: str
    payload: Any
    waiting_since: datetime
    workflow: RunWorkflowOut
    data_schema: dict[str, Any] | None = Field(
        default=None, description="The JSON Schema an approval's `data` must match"
    )
    assignees: list[str] = Field(
        default_factory=list,
        description="Who is asked to review (with `escalate_to` once escalated)",
    )
    approvals_required: int = 1
    approvals: list[ApprovalOut] = Field(default_factory=list, description="Approvals so far")
    escalated_at: datetime | None = None
    escalate_to: list[str] = Field(default_factory=list)


# ------------------------------------------------------------------ node types


class NodeTypeOut(BaseModel):
    type: str
    description: str
    role: str
    execution: Literal["batch", "local", "remote", "workflow"]
    side_effecting: bool
    branches: list[str]
    secret_fields: list[str] = Field(
        default_factory=list,
        description="Config fields that may reference `{{$secrets.name}}` (API.md 'Secrets')",
    )
    config_schema: dict[str, Any]


# OpenAPI: commands with a command_id answer 200 with the earlier result when replayed.
class ErrorDetail(BaseModel):
    type: Literal[
        "invalid_request",
        "authentication",
        "permission",
        "not_found",
        "conflict",
        "payload_too_large",
        "rate_limited",
        "server_error",
    ]
    code: str = Field(description="stable machine-readable name, e.g. `run_not_found`")
    message: str
    details: dict[str, Any] = Field(
        default_factory=dict,
        description="validation problems in `errors`: `[{loc, message}]` or `[{node_id, message}]`",
    )


class ErrorBody(BaseModel):
    """Every non-2xx answer (API.md "Errors")."""

    error: ErrorDetail


# Listed on every /v1 operation, so clients generated from the OpenAPI document know them.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": description}
    for status, description in (
        (401, "Missing or unknown API key"),
        (403, "The key's role may not do this"),
        (404, "Not found in this organization"),
        (409, "The target's state does not allow it"),
        (413, "A body, document or run's inputs over the limits"),
        (415, "A body sent as another type than JSON"),
        (422, "Invalid request; every problem in `details.errors`"),
        (429, "Over the organization's request rate; see Retry-After"),
        (503, "Temporal cannot be reached right now"),
    )
}

REPLAY_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": RunOut, "description": "Replay of an earlier command_id: the first result"}
}


# ------------------------------------------------------------------ codec

# Temporal's codec-server protocol (api/routes/codec.py reads it by hand, as proto3 JSON):
# bytes are base64, standard alphabet and padded as Temporal writes them. The API also reads
# what proto3 JSON allows beyond this (URL-safe or unpadded base64, `externalPayloads`).
_BASE64 = r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"
Base64Bytes = Annotated[
    str, Field(pattern=_BASE64, json_schema_extra={"contentEncoding": "base64"})
]


class CodecPayload(BaseModel):
    """One Temporal payload (`temporal.api.common.v1.Payload`) in proto3 JSON."""

    model_config = ConfigDict(extra="forbid")

    metadata: dict[str, Base64Bytes] = Field(
        default_factory=dict,
        description="Metadata values base64: `encoding` says how `data` is encoded, "
        "e.g. `json/plain`, `binary/zlib`, `binary/encrypted`",
    )
    data: Base64Bytes = Field(default="", description="The payload's bytes, base64")


class CodecPayloads(BaseModel):
    """`temporal.api.common.v1.Payloads` in proto3 JSON: what the codec server reads and answers
    (`payloads` absent is none)."""

    model_config = ConfigDict(extra="forbid")

    payloads: list[CodecPayload] = Field(default_factory=list)


class CodecSignIn(BaseModel):
    """`POST /codec/session`'s body, as JSON or as an HTML form's fields."""

    api_key: str = Field(description="An API key of the organization whose runs to read")


class CodecSessionOut(BaseModel):
    organization: str
    expires_at: datetime = Field(description="When the session cookie expires (12 hours on)")
    codec_endpoint: str = Field(description="The URL to set as the Temporal UI's codec endpoint")


# ------------------------------------------------------------------ inbound webhooks


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input_node: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="The start_json node the calls' JSON body feeds; default: the workflow's "
        "only start_json node",
    )
    config_source: Literal["published", "draft"] = Field(
        default="published",
        description="`published`: each call runs the snapshot published when it arrives; "
        "`draft`: the draft as it is then",
    )


class WebhookOut(BaseModel):
    """An inbound webhook as every answer but its creation shows it: never its secret."""

    id: str
    workflow_id: str
    input_node: str
    config_source: Literal["published", "draft"]
    url: str = Field(description="Where to send signed calls: `POST` to it, no API key")
    created_at: datetime


class WebhookCreated(WebhookOut):
    secret: str = Field(
        description="The signing secret (`whsec_` + base64 of 32 random bytes, Standard "
        "Webhooks). Shown only in this answer: keep it; it is stored encrypted and never "
        "answered again",
        json_schema_extra={"format": "password"},
    )


class WebhookRunOut(BaseModel):
    """What a webhook call answers: the run it started (or, for a `webhook-id` sent before,
    the run the first call started)."""

    run_id: str
    status: str = Field(description="The run's status when answered (`pending` when just started)")


# ------------------------------------------------------------------ schedules

# Ten years, in seconds: the longest interval or jitter a schedule takes.
MAX_SCHEDULE_SECONDS = 315_360_000
ScheduleText = Annotated[str, StoredText, UnicodeText]


def _moment_text(value: Any) -> Any:
    # In a JSON body a number would otherwise be read as a Unix time.
    if not isinstance(value, str):
        raise ValueError("must be an RFC 3339 date-time string, such as 2024-05-01T12:00:00Z")
    return _rfc3339_text(value)


Moment = Annotated[AwareDatetime, BeforeValidator(_moment_text)]


def _json_integer(value: Any) -> Any:
    # A JSON integer (87.0 is one too); never the text "87" or a boolean.
    if isinstance(value, str | bool):
        raise ValueError("must be a JSON integer")
    return value


# Whole seconds up to ten years, with the bounds said in the JSON schema.
IntervalSeconds = Annotated[
    int, Field(ge=1, le=MAX_SCHEDULE_SECONDS), BeforeValidator(_json_integer)
]
JitterSeconds = Annotated[int, Field(ge=0, le=MAX_SCHEDULE_SECONDS), BeforeValidator(_json_integer)]


class ScheduleSpecIn(BaseModel):
    """When the schedule fires: the times of `cron` and of `interval_s` together (at least one
    of them), read in `timezone`."""

    model_config = ConfigDict(extra="forbid")

    cron: (
        Annotated[
            list[Annotated[ScheduleText, Field(min_length=1, max_length=200)]],
            Field(max_length=20),
        ]
        | None
    ) = Field(
        default=None,
        description='Cron expressions, e.g. "0 9 * * MON-FRI" (5 fields; optionally seconds '
        'first and years last; "@daily" and the like). A bad one → 422',
    )
    interval_s: IntervalSeconds | None = Field(
        default=None,
        description="Fire every this many seconds",
    )
    timezone: Annotated[ScheduleText, Field(min_length=1, max_length=64)] | None = Field(
        default=None,
        description="IANA time zone the cron expressions are read in (default UTC); an "
        "unknown one → 422",
    )
    jitter_s: JitterSeconds | None = Field(
        default=None,
        description="Delay each fire by a random 0..jitter_s seconds",
    )
    start_at: Moment | None = Field(default=None, description="No fire before this time")
    end_at: Moment | None = Field(
        default=None, description="No fire after this time (later than start_at)"
    )


def _omitted_if_none(value: Any) -> bool:
    return value is None


class ScheduleSpecOut(BaseModel):
    """The spec as it was given (fields not given are left out)."""

    cron: list[str] | None = Field(default=None, exclude_if=_omitted_if_none)
    interval_s: int | None = Field(default=None, exclude_if=_omitted_if_none)
    timezone: str | None = Field(default=None, exclude_if=_omitted_if_none)
    jitter_s: int | None = Field(default=None, exclude_if=_omitted_if_none)
    start_at: datetime | None = Field(default=None, exclude_if=_omitted_if_none)
    end_at: datetime | None = Field(default=None, exclude_if=_omitted_if_none)


class ScheduleDocument(BaseModel):
    """A document input of every run: an uploaded file (`POST /v1/files`), by id."""

    model_config = ConfigDict(extra="forbid")

    file_id: Annotated[ScheduleText, Field(min_length=1, max_length=200)]


class ScheduleInputs(BaseModel):
    """The inputs of every run the schedule starts, keyed by start node id, checked like a
    run start's (`422` naming the node)."""

    model_config = ConfigDict(extra="forbid")

    json_inputs: Annotated[dict[str, Any], PlainJson] = Field(default_factory=dict)
    text_inputs: Annotated[dict[str, str], UnicodeText] = Field(default_factory=dict)
    documents: Annotated[dict[str, ScheduleDocument], UnicodeText] = Field(
        default_factory=dict,
        description="Documents by reference only (`{node: {file_id}}`): upload them first",
    )


ScheduleOverlap = Literal["skip", "buffer_one", "allow_all", "cancel_other"]
_OVERLAP_DESCRIPTION = (
    "What a fire does while the schedule's previous run still runs: `skip` it (default), "
    "`buffer_one` (start it when the previous ends, at most one waiting), `allow_all` (start "
    "it beside), `cancel_other` (cancel the previous run, then start)"
)
ScheduleNote = Annotated[ScheduleText, Field(max_length=2000)]


class ScheduleCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    spec: ScheduleSpecIn
    inputs: ScheduleInputs = Field(default_factory=ScheduleInputs)
    config_source: Literal["published", "draft"] = Field(
        default="published",
        description="`published`: each run runs the snapshot published when it fires "
        "(`409 workflow_not_published` now if none is); `draft`: the draft then",
    )
    overlap: ScheduleOverlap = Field(default="skip", description=_OVERLAP_DESCRIPTION)
    paused: bool = Field(default=False, strict=True)
    note: ScheduleNote = Field(default="", description="For people; shown in the Temporal UI too")


class SchedulePatch(BaseModel):
    """What to change; what is left out (or null) stays as it is."""

    model_config = ConfigDict(extra="forbid")

    spec: ScheduleSpecIn | None = Field(default=None, description="Replaces the whole spec")
    inputs: ScheduleInputs | None = Field(default=None, description="Replaces all the inputs")
    overlap: ScheduleOverlap | None = Field(default=None, description=_OVERLAP_DESCRIPTION)
    paused: bool | None = Field(default=None, strict=True)
    note: ScheduleNote | None = None


class ScheduleFireErrorOut(BaseModel):
    code: str = Field(
        description="The error a run start would have answered, e.g. "
        "`workflow_not_published`, `invalid_inputs`, `unknown_secret`"
    )
    message: str


class ScheduleRunOut(BaseModel):
    """One fire of the schedule: the run it started, or why it could not start one."""

    run_id: str | None = Field(
        description="The run; null when the fire could not start one (then `error` says why)"
    )
    scheduled_at: datetime | None = Field(description="The time the fire was due")
    status: str = Field(
        description="The run's status; `error` with `run_id` null for a fire that could not "
        "start a run (workflow deleted or unpublished, inputs no longer valid, a secret "
        "missing)"
    )
    error: ScheduleFireErrorOut | None = Field(
        default=None,
        description="Only for a fire that could not start a run",
        exclude_if=_omitted_if_none,
    )


class ScheduleOut(BaseModel):
    id: str
    organization_id: str
    workflow_id: str
    spec: ScheduleSpecOut
    inputs: ScheduleInputs
    config_source: Literal["published", "draft"]
    overlap: Literal[
        "skip", "buffer_one", "allow_all", "cancel_other", "buffer_all", "terminate_other"
    ] = Field(
        description="The Temporal Schedule's overlap policy: one of the four this API sets, or "
        "`buffer_all` / `terminate_other` when an operator chose one in the Temporal UI"
    )
    paused: bool = Field(description="Paused here or in the Temporal UI")
    note: str
    next_run_times: list[datetime] = Field(description="The next (up to) 5 fires")
    recent_runs: list[ScheduleRunOut] = Field(
        description="The newest (up to) 10 fires, newest first: runs this schedule started "
        "(also by `trigger` and `backfill`) and fires that could not start one"
    )
    created_at: datetime
    updated_at: datetime


class BackfillIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start_at: Moment = Field(description="From this time (exclusive)")
    end_at: Moment = Field(description="To this time (inclusive); not in the future")


class BackfillOut(BaseModel):
    scheduled: int = Field(
        description="Runs started: one per time the schedule matches in the range"
    )


# ------------------------------------------------------------------ event webhooks

# The events a run emits (workflows/events.py): the OpenAPI document lists them.
WebhookEventType = EventType
EndpointUrl = Annotated[
    str,
    Field(
        min_length=1,
        max_length=2048,
        description="Absolute http(s) URL the events are POSTed to. A host that is, or resolves "
        "to, a loopback/private address is refused unless RUNLANE_HTTP_ALLOW_PRIVATE=true",
        json_schema_extra={"format": "uri"},
    ),
    StoredText,
    UnicodeText,
]
EndpointEvents = Annotated[
    list[WebhookEventType],
    Field(min_length=1, max_length=100, description="The event types to receive (at least one)"),
]
EndpointDescription = Annotated[str, Field(max_length=5000), StoredText, UnicodeText]


class WebhookEndpointCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: EndpointUrl
    events: EndpointEvents
    description: EndpointDescription = ""


class WebhookEndpointPatch(BaseModel):
    """The fields to change; a field left out (or null) stays as it is."""

    model_config = ConfigDict(extra="forbid")

    url: EndpointUrl | None = None
    events: EndpointEvents | None = None
    disabled: bool | None = Field(
        default=None, description="A disabled endpoint receives nothing, retries included"
    )
    description: EndpointDescription | None = None


class WebhookEndpointOut(BaseModel):
    id: str
    url: str
    events: list[str]
    description: str
    disabled: bool
    created_at: datetime
    updated_at: datetime


class WebhookEndpointCreated(WebhookEndpointOut):
    secret: str = Field(
        description="`whsec_` + base64 of 32 random bytes: verify the `webhook-signature` of "
        "each delivery with it (Standard Webhooks). Shown only in this answer"
    )


class WebhookDeliveryOut(BaseModel):
    id: str
    event_id: str = Field(description="The event's id, sent as `webhook-id` on every attempt")
    event_type: str
    run_id: str
    status: Literal["pending", "retrying", "succeeded", "failed"] = Field(
        description="`pending`: not attempted yet; `retrying`: the last attempt failed and "
        "another follows at `next_attempt_at`; `succeeded`: the endpoint answered 2xx; "
        "`failed`: no attempt succeeded within the retry horizon, or the endpoint was "
        "disabled meanwhile"
    )
    attempts: int
    last_status_code: int | None = Field(
        description="The HTTP status of the last attempt (null when it got no answer)"
    )
    last_error: str | None = Field(description="Why the last attempt failed (null if it did not)")
    next_attempt_at: datetime | None
    created_at: datetime
    updated_at: datetime


# ---------------------------------------------------------------- compare and dry run
# (runs/compare.py and runs/dry_run.py say what each figure means.)


class SnapshotChangesOut(BaseModel):
    added: list[str] = Field(description="Nodes run `a`'s definition has and `b`'s has not")
    removed: list[str] = Field(description="Nodes `b`'s definition has and `a`'s has not")
    changed: list[str] = Field(
        description="Nodes of both whose type, config, retry, timeout_s, edges (other end and "
        "branch) or referenced `$vars` values differ; labels are not compared"
    )


RunPair = Annotated[list[str | None], Field(min_length=2, max_length=2)]


class CompareNodeOut(BaseModel):
    node_id: str
    status: RunPair = Field(description="[a, b]: each run's step status; null without the node")
    output_changed: bool = Field(description="The recorded outputs differ (as JSON values)")
    branch: RunPair = Field(
        description='[a, b]: a condition\'s "true"/"false", a human review\'s '
        '"approved"/"rejected"; null for nodes that do not route or have not decided'
    )


class CompareOut(BaseModel):
    runs: list[str] = Field(
        description="[a, b]: the run in the path, then the one it is compared with"
    )
    snapshot_changes: SnapshotChangesOut
    nodes: list[CompareNodeOut] = Field(
        description="Every node of either run: a's in topological order, then b's others"
    )


class DryRunIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    run_id: str = Field(min_length=1, max_length=200, description="A recorded run of this workflow")
    config_source: Literal["draft", "published"] = Field(
        default="draft", description="The definition the run's inputs are evaluated against"
    )


class DryRunErrorOut(BaseModel):
    type: str
    message: str


class DryRunNodeOut(BaseModel):
    """`output`, `error` and `blocked_by` are present only where they apply (the route answers
    with unset fields left out): a null `output` is always a node that output null."""

    node_id: str
    node_type: str
    status: Literal["completed", "skipped", "error", "would_call", "blocked"] = Field(
        description="would_call: a node with effects the run would execute again (no output); "
        "blocked: needs the output or routing of a would_call or failed node (`blocked_by`)"
    )
    output: Any = Field(default=None, description="Only when completed: evaluated or reused")
    error: DryRunErrorOut | None = Field(default=None, description="Only when error")
    differs_from_recorded: bool
    would_call: bool
    reused: bool = Field(description="The recorded outcome, taken as it is (nothing changed)")
    blocked_by: list[str] = Field(
        default_factory=list, description="Only when blocked: the nodes it waits on"
    )


class DryRunOut(BaseModel):
    run_id: str
    workflow_id: str
    config_source: Literal["draft", "published"]
    nodes: list[DryRunNodeOut] = Field(description="The definition's nodes, topological order")


# ---------------------------------------------------------------- bulk operations

# The run fields a filter names (the run listing's), and a run id's shape.
BulkRunStatus = Literal[
    "pending", "running", "waiting_for_human", "completed", "error", "cancelled"
]
BulkTrigger = Literal["api", "restart", "rerun", "schedule", "webhook", "parent"]
RunIdText = Annotated[str, Field(pattern="^run_[0-9a-f]{24,32}$", max_length=64)]


class BulkFilterIn(BaseModel):
    """Which runs: every criterion given must hold (at least one is required)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"minProperties": 1})

    workflow_id: str | None = Field(
        default=None, pattern="^[A-Za-z0-9_.:-]{1,128}$", description="Runs of this workflow"
    )
    status: BulkRunStatus | None = None
    trigger_type: BulkTrigger | None = None
    created_after: Moment | None = Field(default=None, description="Created at or after it")
    created_before: Moment | None = Field(default=None, description="Created before it")
    run_ids: list[RunIdText] | None = Field(
        default=None,
        min_length=1,
        max_length=10_000,
        description="These runs (each of the organization, else 422); with other criteria, "
        "those of them that also pass",
    )


class BulkBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Literal["retry", "cancel", "restart", "rerun"]
    filter: BulkFilterIn = Field(
        description="At least one criterion: an empty filter is refused (422), never read as "
        "every run of the organization"
    )
    dry_run: bool = Field(
        default=False, description="Only say which runs would be touched (200); start nothing"
    )
    command_id: CommandId = None


class BulkProgressOut(BaseModel):
    done: int
    succeeded: int
    failed: int
    skipped: int = Field(description="Runs gone (deleted by retention) when their turn came")


class BulkOperationOut(BaseModel):
    id: str
    organization_id: str
    action: str
    filter: dict[str, Any]
    status: Literal["running", "completed", "cancelled", "failed"]
    matched: int = Field(description="Runs the filter matched when the operation started")
    progress: BulkProgressOut
    created_at: datetime
    temporal: dict[str, str] = Field(description="`workflow_id` and `ui_url` of its workflow")


class BulkOutcomeOut(BaseModel):
    run_id: str
    status: Literal["succeeded", "failed", "skipped"]
    error: dict[str, str] | None = Field(
        default=None, description="`{type, code, message}`, as the run's own command answers"
    )
    result_run_id: str | None = Field(
        default=None, description="restart and rerun: the new run's id"
    )
    finished_at: datetime


class BulkOperationDetailOut(BulkOperationOut):
    outcomes: Page[BulkOutcomeOut] = Field(
        description="Per-run outcomes so far, paged with `limit` and `cursor` (the last "
        "taken first; `order=asc`: in the operation's order)"
    )


class BulkPlanOut(BaseModel):
    allowed: bool
    reason: str | None = None
    rerun: list[str]
    reuse: list[str]


class BulkDryRunEntry(BaseModel):
    run_id: str
    status: str
    plan: BulkPlanOut | None = Field(default=None, description="retry only: what it would do")


class BulkDryRunOut(BaseModel):
    dry_run: Literal[True] = True
    action: str
    matched: int
    runs: list[BulkDryRunEntry]


# ---------------------------------------------------------------- effects and usage


class EffectOut(BaseModel):
    """One request a side-effecting node actually sent (the side-effect ledger)."""

    attempt: int = Field(description="The run attempt that sent it (one more per retry)")
    activity_attempt: int = Field(
        description="Temporal's attempt of the node's activity within that run attempt"
    )
    method: str
    url: str = Field(description="The URL as sent, with every secret's value as `***`")
    idempotency_key: str | None = Field(description="The `Idempotency-Key` header sent")
    status_code: int | None = Field(description="The answer's HTTP status; null: no answer came")
    at: datetime = Field(description="When the answer came, or the request failed")


class UsageReportOut(BaseModel):
    """`GET /v1/usage`: the organization's usage in a window of time."""

    model_config = ConfigDict(populate_by_name=True)

    from_: datetime | None = Field(
        serialization_alias="from",
        description="Start of the window (inclusive), in UTC; null: since the beginning",
    )
    to: datetime = Field(
        description="End of the window (exclusive), in UTC: as given, or the time of the answer"
    )
    workflow_id: str | None = Field(description="Only this workflow's runs, when given")
    usage: UsageOut = Field(
        description="Summed over every activity attempt that started in the window (usage "
        "counts when it happened, so a run that spans the window's edge is split across it)"
    )
