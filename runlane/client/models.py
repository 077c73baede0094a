"""The API's request and response models, GENERATED from its OpenAPI document
(api.main.create_app().openapi()) by datamodel-code-generator: do not edit by hand.

Regenerate with `make client-models` (python -m scripts.client_models);
tests/client/test_models_current.py fails when this file is out of date.
Unknown fields are kept (extra="allow"), so an older client reads a newer API's answers.
"""

# The descriptions are the API's, on one line each.
# ruff: noqa: E501

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AnyUrl,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    RootModel,
    SecretStr,
)
from typing_extensions import TypeAliasType


class ApprovalOut(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    reviewer: Annotated[str | None, Field(title="Reviewer")]
    comment: Annotated[str | None, Field(title="Comment")]
    data: Annotated[Any | None, Field(title="Data")] = None
    approved_at: Annotated[AwareDatetime, Field(title="Approved At")]


class AttemptOut(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    attempt: Annotated[int, Field(title="Attempt")]
    temporal_run_id: Annotated[str, Field(title="Temporal Run Id")]
    started_at: Annotated[AwareDatetime, Field(title="Started At")]
    ended_at: Annotated[AwareDatetime | None, Field(title="Ended At")]
    status: Annotated[str, Field(title="Status")]
    resumed_from_node_id: Annotated[str | None, Field(title="Resumed From Node Id")]


class BackfillIn(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    start_at: Annotated[
        AwareDatetime, Field(description="From this time (exclusive)", title="Start At")
    ]
    end_at: Annotated[
        AwareDatetime,
        Field(description="To this time (inclusive); not in the future", title="End At"),
    ]


class BackfillOut(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    scheduled: Annotated[
        int,
        Field(
            description="Runs started: one per time the schedule matches in the range",
            title="Scheduled",
        ),
    ]


class BodyUploadFileV1FilesPost(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    file: Annotated[
        str,
        Field(
            json_schema_extra={"contentMediaType": "application/octet-stream"},
            title="File",
        ),
    ]


class CommandId(RootModel[str]):
    root: Annotated[
        str,
        Field(
            description="Idempotency key: replays return the first result (200) and enqueue nothing",
            max_length=200,
            min_length=1,
            pattern="^[^\\x00]*$",
            title="Command Id",
        ),
    ]


class WorkflowId(RootModel[str]):
    root: Annotated[
        str,
        Field(
            description="Runs of this workflow",
            pattern="^[A-Za-z0-9_.:-]{1,128}$",
            title="Workflow Id",
        ),
    ]


class RunId(RootModel[str]):
    root: Annotated[str, Field(max_length=64, pattern="^run_[0-9a-f]{24,32}$")]


class RunIds(RootModel[list[RunId]]):
    root: Annotated[
        list[RunId],
        Field(
            description="These runs (each of the organization, else 422); with other criteria, those of them that also pass",
            max_length=10000,
            min_length=1,
            title="Run Ids",
        ),
    ]


class BulkFilterIn(BaseModel):
    """
    Which runs: every criterion given must hold (at least one is required).
    """

    model_config = ConfigDict(
        extra="allow",
    )
    workflow_id: Annotated[
        WorkflowId | None,
        Field(description="Runs of this workflow", title="Workflow Id"),
    ] = None
    status: Annotated[
        Literal["pending", "running", "waiting_for_human", "completed", "error", "cancelled"]
        | None,
        Field(title="Status"),
    ] = None
    trigger_type: Annotated[
        Literal["api", "restart", "rerun", "schedule", "webhook", "parent"] | None,
        Field(title="Trigger Type"),
    ] = None
    created_after: Annotated[
        AwareDatetime | None,
        Field(description="Created at or after it", title="Created After"),
    ] = None
    created_before: Annotated[
        AwareDatetime | None,
        Field(description="Created before it", title="Created Before"),
    ] = None
    run_ids: Annotated[
        RunIds | None,
        Field(
            description="These runs (each of the organization, else 422); with other criteria, those of them that also pass",
            title="Run Ids",
        ),
    ] = None


class BulkOutcomeOut(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    run_id: Annotated[str, Field(title="Run Id")]
    status: Annotated[Literal["succeeded", "failed", "skipped"], Field(title="Status")]
    error: Annotated[
        dict[str, str] | None,
        Field(
            description="`{type, code, message}`, as the run's own command answers",
            title="Error",
        ),
    ] = None
    result_run_id: Annotated[
        str | None,
        Field(description="restart and rerun: the new run's id", title="Result Run Id"),
    ] = None
    finished_at: Annotated[AwareDatetime, Field(title="Finished At")]


class BulkPlanOut(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    allowed: Annotated[bool, Field(title="Allowed")]
    reason: Annotated[str | None, Field(title="Reason")] = None
    rerun: Annotated[list[str], Field(title="Rerun")]
    reuse: Annotated[list[str], Field(title="Reuse")]


class BulkProgressOut(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    done: Annotated[int, Field(title="Done")]
    succeeded: Annotated[int, Field(title="Succeeded")]
    failed: Annotated[int, Field(title="Failed")]
    skipped: Annotated[
        int,
        Field(
            description="Runs gone (deleted by retention) when their turn came",
            title="Skipped",
        ),
    ]


MetadataAdditionalProperty = TypeAliasType(
    "MetadataAdditionalProperty",
    Annotated[
        str,
        Field(
            json_schema_extra={"contentEncoding": "base64"},
            pattern="^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$",
        ),
    ],
)


class CodecPayload(BaseModel):
    """
    One Temporal payload (`temporal.api.common.v1.Payload`) in proto3 JSON.
    """

    model_config = ConfigDict(
        extra="allow",
    )
    metadata: Annotated[
        dict[str, MetadataAdditionalProperty] | None,
        Field(
            description="Metadata values base64: `encoding` says how `data` is encoded, e.g. `json/plain`, `binary/zlib`, `binary/encrypted`",
            title="Metadata",
        ),
    ] = None
    data: Annotated[
        str | None,
        Field(
            description="The payload's bytes, base64",
            json_schema_extra={"contentEncoding": "base64"},
            pattern="^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$",
            title="Data",
        ),
    ] = ""


class CodecPayloads(BaseModel):
    """
    `temporal.api.common.v1.Payloads` in proto3 JSON: what the codec server reads and answers
    (`payloads` absent is none).
    """

    model_config = ConfigDict(
        extra="allow",
    )
    payloads: Annotated[list[CodecPayload] | None, Field(title="Payloads")] = None


class CodecSessionOut(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    organization: Annotated[str, Field(title="Organization")]
    expires_at: Annotated[
        AwareDatetime,
        Field(
            description="When the session cookie expires (12 hours on)",
            title="Expires At",
        ),
    ]
    codec_endpoint: Annotated[
        str,
        Field(
            description="The URL to set as the Temporal UI's codec endpoint",
            title="Codec Endpoint",
        ),
    ]


class CommandId2(RootModel[str]):
    root: Annotated[
        str,
        Field(
            description="Idempotency key: replays return the first result (200) and enqueue nothing",
            max_length=200,
            min_length=1,
            pattern="^[^\\x00]*$",
            title="Command Id",
        ),
    ]


class CommandBody(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    command_id: Annotated[
        CommandId2 | None,
        Field(
            description="Idempotency key: replays return the first result (200) and enqueue nothing",
            title="Command Id",
        ),
    ] = None


class CompareNodeOut(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    node_id: Annotated[str, Field(title="Node Id")]
    status: Annotated[
        list[str | None],
        Field(
            description="[a, b]: each run's step status; null without the node",
            max_length=2,
            min_length=2,
            title="Status",
        ),
    ]
    output_changed: Annotated[
        bool,
        Field(
            description="The recorded outputs differ (as JSON values)",
            title="Output Changed",
        ),
    ]
    branch: Annotated[
        list[str | None],
        Field(
            description='[a, b]: a condition\'s "true"/"false", a human review\'s "approved"/"rejected"; null for nodes that do not route or have not decided',
            max_length=2,
            min_length=2,
            title="Branch",
        ),
    ]


class DefinitionProblem(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    node_id: Annotated[str | None, Field(title="Node Id")] = None
    message: Annotated[str, Field(title="Message")]


class Filename(RootModel[str]):
    root: Annotated[
        str,
        Field(max_length=500, min_length=1, pattern="^[^\\x00]*$", title="Filename"),
    ]


class MimeType(RootModel[str]):
    root: Annotated[
        str,
        Field(max_length=200, min_length=1, pattern="^[^\\x00]*$", title="Mime Type"),
    ]


class DocumentInput1(BaseModel):
    """
    Inline (filename, mime_type, base64 content) or a reference to an uploaded file.
    """

    model_config = ConfigDict(
        extra="allow",
    )
    file_id: str
    filename: Annotated[None, Field(None)] = None
    mime_type: Annotated[None, Field(None)] = None
    content: Annotated[None, Field(None)] = None


class DocumentInput2(BaseModel):
    """
    Inline (filename, mime_type, base64 content) or a reference to an uploaded file.
    """

    model_config = ConfigDict(
        extra="allow",
    )
    filename: str
    mime_type: str
    content: str
    file_id: Annotated[None, Field(None)] = None


class DocumentOut(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    id: Annotated[str, Field(title="Id")]
    filename: Annotated[str, Field(title="Filename")]
    mime_type: Annotated[str, Field(title="Mime Type")]


class Draft(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    definition: Annotated[dict[str, Any], Field(title="Definition")]
    updated_at: Annotated[AwareDatetime, Field(title="Updated At")]


class DraftReplace(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    definition: Annotated[dict[str, Any], Field(title="Definition")]


class DryRunErrorOut(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    type: Annotated[str, Field(title="Type")]
    message: Annotated[str, Field(title="Message")]


class DryRunIn(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    run_id: Annotated[
        str,
        Field(
            description="A recorded run of this workflow",
            max_length=200,
            min_length=1,
            title="Run Id",
        ),
    ]
    config_source: Annotated[
        Literal["draft", "published"] | None,
        Field(
            description="The definition the run's inputs are evaluated against",
            title="Config Source",
        ),
    ] = "draft"


class DryRunNodeOut(BaseModel):
    """
    `output`, `error` and `blocked_by` are present only where they apply (the route answers
    with unset fields left out): a null `output` is always a node that output null.
    """

    model_config = ConfigDict(
        extra="allow",
    )
    node_id: Annotated[str, Field(title="Node Id")]
    node_type: Annotated[str, Field(title="Node Type")]
    status: Annotated[
        Literal["completed", "skipped", "error", "would_call", "blocked"],
        Field(
            description="would_call: a node with effects the run would execute again (no output); blocked: needs the output or routing of a would_call or failed node (`blocked_by`)",
            title="Status",
        ),
    ]
    output: Annotated[
        Any | None,
        Field(description="Only when completed: evaluated or reused", title="Output"),
    ] = None
    error: Annotated[DryRunErrorOut | None, Field(description="Only when error")] = None
    differs_from_recorded: Annotated[bool, Field(title="Differs From Recorded")]
    would_call: Annotated[bool, Field(title="Would Call")]
    reused: Annotated[
        bool,
        Field(
            description="The recorded outcome, taken as it is (nothing changed)",
            title="Reused",
        ),
    ]
    blocked_by: Annotated[
        list[str] | None,
        Field(description="Only when blocked: the nodes it waits on", title="Blocked By"),
    ] = None


class DryRunOut(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    run_id: Annotated[str, Field(title="Run Id")]
    workflow_id: Annotated[str, Field(title="Workflow Id")]
    config_source: Annotated[Literal["draft", "published"], Field(title="Config Source")]
    nodes: Annotated[
        list[DryRunNodeOut],
        Field(description="The definition's nodes, topological order", title="Nodes"),
    ]


class EffectOut(BaseModel):
    """
    One request a side-effecting node actually sent (the side-effect ledger).
    """

    model_config = ConfigDict(
        extra="allow",
    )
    attempt: Annotated[
        int,
        Field(
            description="The run attempt that sent it (one more per retry)",
            title="Attempt",
        ),
    ]
    activity_attempt: Annotated[
        int,
        Field(
            description="Temporal's attempt of the node's activity within that run attempt",
            title="Activity Attempt",
        ),
    ]
    method: Annotated[str, Field(title="Method")]
    url: Annotated[
        str,
        Field(
            description="The URL as sent, with every secret's value as `***`",
            title="Url",
        ),
    ]
    idempotency_key: Annotated[
        str | None,
        Field(description="The `Idempotency-Key` header sent", title="Idempotency Key"),
    ]
    status_code: Annotated[
        int | None,
        Field(
            description="The answer's HTTP status; null: no answer came",
            title="Status Code",
        ),
    ]
    at: Annotated[
        AwareDatetime,
        Field(description="When the answer came, or the request failed", title="At"),
    ]


class ErrorDetail(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    type: Annotated[
        Literal[
            "invalid_request",
            "authentication",
            "permission",
            "not_found",
            "conflict",
            "payload_too_large",
            "rate_limited",
            "server_error",
        ],
        Field(title="Type"),
    ]
    code: Annotated[
        str,
        Field(
            description="stable machine-readable name, e.g. `run_not_found`",
            title="Code",
        ),
    ]
    message: Annotated[str, Field(title="Message")]
    details: Annotated[
        dict[str, Any] | None,
        Field(
            description="validation problems in `errors`: `[{loc, message}]` or `[{node_id, message}]`",
            title="Details",
        ),
    ] = None


class FileOut(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    id: Annotated[str, Field(title="Id")]
    filename: Annotated[str, Field(title="Filename")]
    mime_type: Annotated[str, Field(title="Mime Type")]
    size_bytes: Annotated[int, Field(title="Size Bytes")]
    sha256: Annotated[str, Field(title="Sha256")]
    created_at: Annotated[AwareDatetime, Field(title="Created At")]


class Health(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    status: Annotated[Literal["ok", "degraded"], Field(title="Status")]
    temporal: Annotated[Literal["ok", "unreachable"], Field(title="Temporal")]


class InputDocumentOut(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    file_id: Annotated[
        str,
        Field(description="The stored file (`GET /v1/files/{file_id}`)", title="File Id"),
    ]
    id: Annotated[
        str,
        Field(
            description="The same file id, under the name `inputs.documents` and the Retab SDK use",
            title="Id",
        ),
    ]
    filename: Annotated[str, Field(title="Filename")]
    mime_type: Annotated[str, Field(title="Mime Type")]


class Lifecycle(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    kind: Annotated[str, Field(title="Kind")]


class ListMetadata(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    before: Annotated[
        None,
        Field(
            description="Always null: pages are only followed forwards, with `after`",
            title="Before",
        ),
    ] = None
    after: Annotated[
        str | None,
        Field(
            description="The next page's cursor, the same as `next_cursor`; null on the last page",
            title="After",
        ),
    ]


class MapProgressOut(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    total: Annotated[int, Field(title="Total")]
    completed: Annotated[int, Field(title="Completed")]
    failed: Annotated[int, Field(title="Failed")]
    running: Annotated[int, Field(title="Running")]


class NodeTypeOut(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    type: Annotated[str, Field(title="Type")]
    description: Annotated[str, Field(title="Description")]
    role: Annotated[str, Field(title="Role")]
    execution: Annotated[Literal["batch", "local", "remote", "workflow"], Field(title="Execution")]
    side_effecting: Annotated[bool, Field(title="Side Effecting")]
    branches: Annotated[list[str], Field(title="Branches")]
    secret_fields: Annotated[
        list[str] | None,
        Field(
            description="Config fields that may reference `{{$secrets.name}}` (API.md 'Secrets')",
            title="Secret Fields",
        ),
    ] = None
    config_schema: Annotated[dict[str, Any], Field(title="Config Schema")]


class PageBulkOutcomeOut(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    data: Annotated[list[BulkOutcomeOut], Field(title="Data")]
    next_cursor: Annotated[
        str | None,
        Field(
            description="Pass as `cursor` (or `after`) for the next page; null on the last page",
            title="Next Cursor",
        ),
    ] = None
    list_metadata: Annotated[
        ListMetadata,
        Field(description="Seed compatibility (Retab): `{before: null, after: next_cursor}`"),
    ]


class CommandId4(RootModel[str]):
    root: Annotated[
        str,
        Field(
            description="Idempotency key: replays return the first result (200) and enqueue nothing",
            max_length=200,
            min_length=1,
            pattern="^[^\\x00]*$",
            title="Command Id",
        ),
    ]


class RestartBody(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    config_source: Annotated[Literal["published", "draft"] | None, Field(title="Config Source")] = (
        "published"
    )
    command_id: Annotated[
        CommandId4 | None,
        Field(
            description="Idempotency key: replays return the first result (200) and enqueue nothing",
            title="Command Id",
        ),
    ] = None


class CommandId6(RootModel[str]):
    root: Annotated[
        str,
        Field(
            description="Idempotency key: replays return the first result (200) and enqueue nothing",
            max_length=200,
            min_length=1,
            pattern="^[^\\x00]*$",
            title="Command Id",
        ),
    ]


class NodeId(RootModel[str]):
    root: Annotated[
        str,
        Field(
            description='The node to retry from (`"from": "node"`)',
            max_length=200,
            title="Node Id",
        ),
    ]


class PlanId(RootModel[str]):
    root: Annotated[
        str,
        Field(
            description="A plan's `plan_id` (GET .../retry-plan): do exactly what that plan said, or 409 `plan_stale` when the run changed since",
            max_length=2000,
            pattern="^plan_[A-Za-z0-9_-]+\\.[0-9a-f]{32}$",
            title="Plan Id",
        ),
    ]


class RetryBody1(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    command_id: Annotated[
        CommandId6 | None,
        Field(
            description="Idempotency key: replays return the first result (200) and enqueue nothing",
            title="Command Id",
        ),
    ] = None
    from_: Annotated[
        Literal["start"],
        Field(
            alias="from",
            description="Where the retry resumes: `failure_point` (the default), `start`, or `node` (with `node_id`: that node and everything downstream of it run again, the rest keeps its recorded outputs; allowed on any ended run). With `plan_id`: the plan's",
            title="From",
        ),
    ]
    node_id: Annotated[
        NodeId | None,
        Field(description='The node to retry from (`"from": "node"`)', title="Node Id"),
    ] = None
    plan_id: Annotated[
        PlanId | None,
        Field(
            description="A plan's `plan_id` (GET .../retry-plan): do exactly what that plan said, or 409 `plan_stale` when the run changed since",
            title="Plan Id",
        ),
    ] = None
    documents: Annotated[
        dict[str, DocumentInput1 | DocumentInput2] | None,
        Field(
            description='Overriding documents (`"from": "start"` only)',
            title="Documents",
        ),
    ] = None
    json_inputs: Annotated[
        dict[str, Any] | None,
        Field(
            description='Overriding JSON inputs (`"from": "start"` or `"node"`; with `node`, the start nodes named run again with them)',
            title="Json Inputs",
        ),
    ] = None
    text_inputs: Annotated[
        dict[str, str] | None,
        Field(
            description='Overriding text inputs (`"from": "start"` or `"node"`)',
            title="Text Inputs",
        ),
    ] = None


class CommandId8(RootModel[str]):
    root: Annotated[
        str,
        Field(
            description="Idempotency key: replays return the first result (200) and enqueue nothing",
            max_length=200,
            min_length=1,
            pattern="^[^\\x00]*$",
            title="Command Id",
        ),
    ]


class RetryBody2(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    command_id: Annotated[
        CommandId8 | None,
        Field(
            description="Idempotency key: replays return the first result (200) and enqueue nothing",
            title="Command Id",
        ),
    ] = None
    from_: Annotated[
        Literal["node"],
        Field(
            alias="from",
            description="Where the retry resumes: `failure_point` (the default), `start`, or `node` (with `node_id`: that node and everything downstream of it run again, the rest keeps its recorded outputs; allowed on any ended run). With `plan_id`: the plan's",
            title="From",
        ),
    ]
    node_id: Annotated[
        NodeId | None,
        Field(description='The node to retry from (`"from": "node"`)', title="Node Id"),
    ]
    plan_id: Annotated[
        PlanId | None,
        Field(
            description="A plan's `plan_id` (GET .../retry-plan): do exactly what that plan said, or 409 `plan_stale` when the run changed since",
            title="Plan Id",
        ),
    ] = None
    documents: Annotated[
        dict[str, DocumentInput1 | DocumentInput2] | None,
        Field(
            description='Overriding documents (`"from": "start"` only)',
            title="Documents",
        ),
    ] = None
    json_inputs: Annotated[
        dict[str, Any] | None,
        Field(
            description='Overriding JSON inputs (`"from": "start"` or `"node"`; with `node`, the start nodes named run again with them)',
            title="Json Inputs",
        ),
    ] = None
    text_inputs: Annotated[
        dict[str, str] | None,
        Field(
            description='Overriding text inputs (`"from": "start"` or `"node"`)',
            title="Text Inputs",
        ),
    ] = None


class CommandId10(RootModel[str]):
    root: Annotated[
        str,
        Field(
            description="Idempotency key: replays return the first result (200) and enqueue nothing",
            max_length=200,
            min_length=1,
            pattern="^[^\\x00]*$",
            title="Command Id",
        ),
    ]


class RetryBody3(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    command_id: Annotated[
        CommandId10 | None,
        Field(
            description="Idempotency key: replays return the first result (200) and enqueue nothing",
            title="Command Id",
        ),
    ] = None
    from_: Annotated[
        Literal["failure_point", "start", "node"] | None,
        Field(
            alias="from",
            description="Where the retry resumes: `failure_point` (the default), `start`, or `node` (with `node_id`: that node and everything downstream of it run again, the rest keeps its recorded outputs; allowed on any ended run). With `plan_id`: the plan's",
            title="From",
        ),
    ] = None
    node_id: Annotated[
        NodeId | None,
        Field(description='The node to retry from (`"from": "node"`)', title="Node Id"),
    ] = None
    plan_id: Annotated[
        PlanId | None,
        Field(
            description="A plan's `plan_id` (GET .../retry-plan): do exactly what that plan said, or 409 `plan_stale` when the run changed since",
            title="Plan Id",
        ),
    ]
    documents: Annotated[
        dict[str, DocumentInput1 | DocumentInput2] | None,
        Field(
            description='Overriding documents (`"from": "start"` only)',
            title="Documents",
        ),
    ] = None
    json_inputs: Annotated[
        dict[str, Any] | None,
        Field(
            description='Overriding JSON inputs (`"from": "start"` or `"node"`; with `node`, the start nodes named run again with them)',
            title="Json Inputs",
        ),
    ] = None
    text_inputs: Annotated[
        dict[str, str] | None,
        Field(
            description='Overriding text inputs (`"from": "start"` or `"node"`)',
            title="Text Inputs",
        ),
    ] = None


class CommandId12(RootModel[str]):
    root: Annotated[
        str,
        Field(
            description="Idempotency key: replays return the first result (200) and enqueue nothing",
            max_length=200,
            min_length=1,
            pattern="^[^\\x00]*$",
            title="Command Id",
        ),
    ]


class RetryBody4(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    from_: Annotated[Literal["failure_point"] | None, Field(alias="from")] = None
    documents: Annotated[None, Field(None)] = None
    json_inputs: Annotated[None, Field(None)] = None
    text_inputs: Annotated[None, Field(None)] = None
    node_id: Annotated[None, Field(None)] = None
    command_id: Annotated[
        CommandId12 | None,
        Field(
            description="Idempotency key: replays return the first result (200) and enqueue nothing",
            title="Command Id",
        ),
    ] = None
    plan_id: Annotated[
        PlanId | None,
        Field(
            description="A plan's `plan_id` (GET .../retry-plan): do exactly what that plan said, or 409 `plan_stale` when the run changed since",
            title="Plan Id",
        ),
    ] = None


class RetryBody(RootModel[RetryBody1 | RetryBody2 | RetryBody3 | RetryBody4]):
    root: Annotated[RetryBody1 | RetryBody2 | RetryBody3 | RetryBody4, Field(title="RetryBody")]


class RetryPlanOut(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    plan_id: Annotated[
        str,
        Field(
            description="Give it to POST .../retry to do exactly this, or be told `409 plan_stale` if the run changed since",
            title="Plan Id",
        ),
    ]
    from_: Annotated[Literal["failure_point", "start", "node"], Field(alias="from", title="From")]
    node_id: Annotated[
        str | None,
        Field(description='With `"from": "node"`: the node', title="Node Id"),
    ] = None
    allowed: Annotated[bool, Field(title="Allowed")]
    reason: Annotated[str | None, Field(title="Reason")] = None
    reuse: Annotated[
        list[str],
        Field(description="Steps that keep their recorded outcome", title="Reuse"),
    ]
    rerun: Annotated[list[str], Field(description="Steps that run again", title="Rerun")]
    repeated_side_effects: Annotated[
        list[str],
        Field(
            description="Side-effecting steps that had run and run again",
            title="Repeated Side Effects",
        ),
    ]


class Comment(RootModel[str]):
    root: Annotated[str, Field(max_length=5000, title="Comment")]


class Reviewer(RootModel[str]):
    root: Annotated[str, Field(max_length=200, title="Reviewer")]


class CommandId14(RootModel[str]):
    root: Annotated[
        str,
        Field(
            description="Idempotency key: replays return the first result (200) and enqueue nothing",
            max_length=200,
            min_length=1,
            pattern="^[^\\x00]*$",
            title="Command Id",
        ),
    ]


class ReviewDecisionIn(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    decision: Annotated[Literal["approve", "reject"], Field(title="Decision")]
    data: Annotated[
        dict[str, Any] | None,
        Field(
            description="approve: the edited data the node outputs (a JSON object)",
            title="Data",
        ),
    ] = None
    comment: Annotated[Comment | None, Field(title="Comment")] = None
    reviewer: Annotated[Reviewer | None, Field(title="Reviewer")] = None
    command_id: Annotated[
        CommandId14 | None,
        Field(
            description="Idempotency key: replays return the first result (200) and enqueue nothing",
            title="Command Id",
        ),
    ] = None


class ReviewOut(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    decision: Annotated[str, Field(title="Decision")]
    reviewer: Annotated[str | None, Field(title="Reviewer")]
    comment: Annotated[str | None, Field(title="Comment")]
    decided_at: Annotated[AwareDatetime, Field(title="Decided At")]


class CommandId16(RootModel[str]):
    root: Annotated[
        str,
        Field(
            description="Idempotency key: replays return the first result (200) and enqueue nothing",
            max_length=200,
            min_length=1,
            pattern="^[^\\x00]*$",
            title="Command Id",
        ),
    ]


class RunCreate(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    documents: Annotated[
        dict[str, DocumentInput1 | DocumentInput2] | None, Field(title="Documents")
    ] = None
    json_inputs: Annotated[dict[str, Any] | None, Field(title="Json Inputs")] = None
    text_inputs: Annotated[dict[str, str] | None, Field(title="Text Inputs")] = None
    config_source: Annotated[Literal["published", "draft"] | None, Field(title="Config Source")] = (
        "published"
    )
    command_id: Annotated[
        CommandId16 | None,
        Field(
            description="Idempotency key: replays return the first result (200) and enqueue nothing",
            title="Command Id",
        ),
    ] = None


class RunErrorOut(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    stage: Annotated[str, Field(title="Stage")]
    node_id: Annotated[str | None, Field(title="Node Id")] = None
    type: Annotated[str, Field(title="Type")]
    message: Annotated[str, Field(title="Message")]


class RunInputsOut(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    documents: Annotated[dict[str, DocumentOut], Field(title="Documents")]
    json_data: Annotated[dict[str, Any], Field(title="Json Data")]
    text_data: Annotated[dict[str, str], Field(title="Text Data")]


class RunWorkflowOut(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    workflow_id: Annotated[str, Field(title="Workflow Id")]
    snapshot_id: Annotated[str | None, Field(title="Snapshot Id")]
    version: Annotated[int | None, Field(title="Version")]
    name_at_run_time: Annotated[str, Field(title="Name At Run Time")]


class ScheduleDocument(BaseModel):
    """
    A document input of every run: an uploaded file (`POST /v1/files`), by id.
    """

    model_config = ConfigDict(
        extra="allow",
    )
    file_id: Annotated[
        str, Field(max_length=200, min_length=1, pattern="^[^\\x00]*$", title="File Id")
    ]


class ScheduleFireErrorOut(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    code: Annotated[
        str,
        Field(
            description="The error a run start would have answered, e.g. `workflow_not_published`, `invalid_inputs`, `unknown_secret`",
            title="Code",
        ),
    ]
    message: Annotated[str, Field(title="Message")]


class ScheduleInputs(BaseModel):
    """
    The inputs of every run the schedule starts, keyed by start node id, checked like a
    run start's (`422` naming the node).
    """

    model_config = ConfigDict(
        extra="allow",
    )
    json_inputs: Annotated[dict[str, Any] | None, Field(title="Json Inputs")] = None
    text_inputs: Annotated[dict[str, str] | None, Field(title="Text Inputs")] = None
    documents: Annotated[
        dict[str, ScheduleDocument] | None,
        Field(
            description="Documents by reference only (`{node: {file_id}}`): upload them first",
            title="Documents",
        ),
    ] = None


class Note(RootModel[str]):
    root: Annotated[str, Field(max_length=2000, pattern="^[^\\x00]*$", title="Note")]


class ScheduleRunOut(BaseModel):
    """
    One fire of the schedule: the run it started, or why it could not start one.
    """

    model_config = ConfigDict(
        extra="allow",
    )
    run_id: Annotated[
        str | None,
        Field(
            description="The run; null when the fire could not start one (then `error` says why)",
            title="Run Id",
        ),
    ]
    scheduled_at: Annotated[
        AwareDatetime | None,
        Field(description="The time the fire was due", title="Scheduled At"),
    ]
    status: Annotated[
        str,
        Field(
            description="The run's status; `error` with `run_id` null for a fire that could not start a run (workflow deleted or unpublished, inputs no longer valid, a secret missing)",
            title="Status",
        ),
    ]
    error: Annotated[
        ScheduleFireErrorOut | None,
        Field(description="Only for a fire that could not start a run"),
    ] = None


class CronItem(RootModel[str]):
    root: Annotated[str, Field(max_length=200, min_length=1, pattern="^[^\\x00]*$")]


class Cron(RootModel[list[CronItem]]):
    root: Annotated[
        list[CronItem],
        Field(
            description='Cron expressions, e.g. "0 9 * * MON-FRI" (5 fields; optionally seconds first and years last; "@daily" and the like). A bad one → 422',
            max_length=20,
            title="Cron",
        ),
    ]


class IntervalS(RootModel[int]):
    root: Annotated[
        int,
        Field(
            description="Fire every this many seconds",
            ge=1,
            le=315360000,
            title="Interval S",
        ),
    ]


class Timezone(RootModel[str]):
    root: Annotated[
        str,
        Field(
            description="IANA time zone the cron expressions are read in (default UTC); an unknown one → 422",
            max_length=64,
            min_length=1,
            pattern="^[^\\x00]*$",
            title="Timezone",
        ),
    ]


class JitterS(RootModel[int]):
    root: Annotated[
        int,
        Field(
            description="Delay each fire by a random 0..jitter_s seconds",
            ge=0,
            le=315360000,
            title="Jitter S",
        ),
    ]


class ScheduleSpecIn(BaseModel):
    """
    When the schedule fires: the times of `cron` and of `interval_s` together (at least one
    of them), read in `timezone`.
    """

    model_config = ConfigDict(
        extra="allow",
    )
    cron: Annotated[
        Cron | None,
        Field(
            description='Cron expressions, e.g. "0 9 * * MON-FRI" (5 fields; optionally seconds first and years last; "@daily" and the like). A bad one → 422',
            title="Cron",
        ),
    ] = None
    interval_s: Annotated[
        IntervalS | None,
        Field(description="Fire every this many seconds", title="Interval S"),
    ] = None
    timezone: Annotated[
        Timezone | None,
        Field(
            description="IANA time zone the cron expressions are read in (default UTC); an unknown one → 422",
            title="Timezone",
        ),
    ] = None
    jitter_s: Annotated[
        JitterS | None,
        Field(
            description="Delay each fire by a random 0..jitter_s seconds",
            title="Jitter S",
        ),
    ] = None
    start_at: Annotated[
        AwareDatetime | None,
        Field(description="No fire before this time", title="Start At"),
    ] = None
    end_at: Annotated[
        AwareDatetime | None,
        Field(description="No fire after this time (later than start_at)", title="End At"),
    ] = None


class ScheduleSpecOut(BaseModel):
    """
    The spec as it was given (fields not given are left out).
    """

    model_config = ConfigDict(
        extra="allow",
    )
    cron: Annotated[list[str] | None, Field(title="Cron")] = None
    interval_s: Annotated[int | None, Field(title="Interval S")] = None
    timezone: Annotated[str | None, Field(title="Timezone")] = None
    jitter_s: Annotated[int | None, Field(title="Jitter S")] = None
    start_at: Annotated[AwareDatetime | None, Field(title="Start At")] = None
    end_at: Annotated[AwareDatetime | None, Field(title="End At")] = None


class SecretOut(BaseModel):
    """
    A secret as the API shows it: its name and times, never its value.
    """

    model_config = ConfigDict(
        extra="allow",
    )
    name: Annotated[str, Field(title="Name")]
    created_at: Annotated[AwareDatetime, Field(title="Created At")]
    updated_at: Annotated[AwareDatetime, Field(title="Updated At")]


class SecretPut(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    value: Annotated[
        SecretStr,
        Field(
            description="The secret's value: stored encrypted, never answered back",
            max_length=65536,
            min_length=1,
            title="Value",
        ),
    ]


class SnapshotChangesOut(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    added: Annotated[
        list[str],
        Field(
            description="Nodes run `a`'s definition has and `b`'s has not",
            title="Added",
        ),
    ]
    removed: Annotated[
        list[str],
        Field(description="Nodes `b`'s definition has and `a`'s has not", title="Removed"),
    ]
    changed: Annotated[
        list[str],
        Field(
            description="Nodes of both whose type, config, retry, timeout_s, edges (other end and branch) or referenced `$vars` values differ; labels are not compared",
            title="Changed",
        ),
    ]


class SnapshotOut(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    id: Annotated[str, Field(title="Id")]
    workflow_id: Annotated[str, Field(title="Workflow Id")]
    version: Annotated[int, Field(title="Version")]
    definition: Annotated[dict[str, Any], Field(title="Definition")]
    created_at: Annotated[AwareDatetime, Field(title="Created At")]


class StepErrorOut(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    type: Annotated[str, Field(title="Type")]
    message: Annotated[str, Field(title="Message")]


class TemporalOut(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    namespace: Annotated[str, Field(title="Namespace")]
    workflow_id: Annotated[str, Field(title="Workflow Id")]
    run_id: Annotated[str | None, Field(title="Run Id")]
    ui_url: Annotated[str, Field(title="Ui Url")]


class TimingOut(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    created_at: Annotated[AwareDatetime, Field(title="Created At")]
    started_at: Annotated[AwareDatetime | None, Field(title="Started At")]
    completed_at: Annotated[AwareDatetime | None, Field(title="Completed At")]
    human_waiting_started_at: Annotated[
        AwareDatetime | None, Field(title="Human Waiting Started At")
    ]
    accumulated_human_waiting_ms: Annotated[int, Field(title="Accumulated Human Waiting Ms")]
    duration_ms: Annotated[int | None, Field(title="Duration Ms")]
    active_duration_ms: Annotated[int | None, Field(title="Active Duration Ms")]


class TriggerOut(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    type: Annotated[str, Field(title="Type")]
    source_run_id: Annotated[str | None, Field(title="Source Run Id")] = None
    parent_run_id: Annotated[
        str | None,
        Field(
            description='The run whose subworkflow node started this one (only when `type` is "parent")',
            title="Parent Run Id",
        ),
    ] = None
    schedule_id: Annotated[
        str | None,
        Field(
            description='The schedule that fired this run (only when `type` is "schedule")',
            title="Schedule Id",
        ),
    ] = None
    scheduled_at: Annotated[
        AwareDatetime | None,
        Field(
            description='The time the schedule was due (only when `type` is "schedule")',
            title="Scheduled At",
        ),
    ] = None
    webhook_id: Annotated[
        str | None,
        Field(
            description='The inbound webhook that started this run (only when `type` is "webhook")',
            title="Webhook Id",
        ),
    ] = None
    delivery_id: Annotated[
        str | None,
        Field(
            description='The call\'s `webhook-id` header (only when `type` is "webhook")',
            title="Delivery Id",
        ),
    ] = None


class UsageOut(BaseModel):
    """
    What nodes did, summed (runs/usage.py says how each figure counts).
    """

    model_config = ConfigDict(
        extra="allow",
    )
    nodes_executed: Annotated[
        int,
        Field(
            description="Node executions: one per node per run attempt that ran it (a map: per item); an activity's retries are attempts of the same execution",
            title="Nodes Executed",
        ),
    ]
    activity_attempts: Annotated[
        int,
        Field(
            description="Attempts of nodes' own activities, retries included (pure nodes are evaluated together in batches and count none)",
            title="Activity Attempts",
        ),
    ]
    http_requests: Annotated[
        int,
        Field(
            description="Requests actually sent, across every retry",
            title="Http Requests",
        ),
    ]
    http_bytes_sent: Annotated[
        int, Field(description="Request bodies' bytes", title="Http Bytes Sent")
    ]
    http_bytes_received: Annotated[
        int,
        Field(
            description="Response bodies' bytes, as received",
            title="Http Bytes Received",
        ),
    ]
    cost: Annotated[
        dict[str, int | float],
        Field(
            description="Cost units node types reported (e.g. `llm_tokens`), summed per unit",
            title="Cost",
        ),
    ]


class UsageReportOut(BaseModel):
    """
    `GET /v1/usage`: the organization's usage in a window of time.
    """

    model_config = ConfigDict(
        extra="allow",
    )
    from_: Annotated[
        AwareDatetime | None,
        Field(
            alias="from",
            description="Start of the window (inclusive), in UTC; null: since the beginning",
            title="From",
        ),
    ]
    to: Annotated[
        AwareDatetime,
        Field(
            description="End of the window (exclusive), in UTC: as given, or the time of the answer",
            title="To",
        ),
    ]
    workflow_id: Annotated[
        str | None,
        Field(description="Only this workflow's runs, when given", title="Workflow Id"),
    ]
    usage: Annotated[
        UsageOut,
        Field(
            description="Summed over every activity attempt that started in the window (usage counts when it happened, so a run that spans the window's edge is split across it)"
        ),
    ]


class ValidateRequest(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    definition: Annotated[Any, Field(title="Definition")]


class ValidateResult(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    valid: Annotated[bool, Field(title="Valid")]
    errors: Annotated[list[DefinitionProblem], Field(title="Errors")]


class InputNode(RootModel[str]):
    root: Annotated[
        str,
        Field(
            description="The start_json node the calls' JSON body feeds; default: the workflow's only start_json node",
            pattern="^[A-Za-z0-9_-]{1,64}$",
            title="Input Node",
        ),
    ]


class WebhookCreate(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    input_node: Annotated[
        InputNode | None,
        Field(
            description="The start_json node the calls' JSON body feeds; default: the workflow's only start_json node",
            title="Input Node",
        ),
    ] = None
    config_source: Annotated[
        Literal["published", "draft"] | None,
        Field(
            description="`published`: each call runs the snapshot published when it arrives; `draft`: the draft as it is then",
            title="Config Source",
        ),
    ] = "published"


class WebhookCreated(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    id: Annotated[str, Field(title="Id")]
    workflow_id: Annotated[str, Field(title="Workflow Id")]
    input_node: Annotated[str, Field(title="Input Node")]
    config_source: Annotated[Literal["published", "draft"], Field(title="Config Source")]
    url: Annotated[
        str,
        Field(
            description="Where to send signed calls: `POST` to it, no API key",
            title="Url",
        ),
    ]
    created_at: Annotated[AwareDatetime, Field(title="Created At")]
    secret: Annotated[
        SecretStr,
        Field(
            description="The signing secret (`whsec_` + base64 of 32 random bytes, Standard Webhooks). Shown only in this answer: keep it; it is stored encrypted and never answered again",
            title="Secret",
        ),
    ]


class WebhookDeliveryOut(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    id: Annotated[str, Field(title="Id")]
    event_id: Annotated[
        str,
        Field(
            description="The event's id, sent as `webhook-id` on every attempt",
            title="Event Id",
        ),
    ]
    event_type: Annotated[str, Field(title="Event Type")]
    run_id: Annotated[str, Field(title="Run Id")]
    status: Annotated[
        Literal["pending", "retrying", "succeeded", "failed"],
        Field(
            description="`pending`: not attempted yet; `retrying`: the last attempt failed and another follows at `next_attempt_at`; `succeeded`: the endpoint answered 2xx; `failed`: no attempt succeeded within the retry horizon, or the endpoint was disabled meanwhile",
            title="Status",
        ),
    ]
    attempts: Annotated[int, Field(title="Attempts")]
    last_status_code: Annotated[
        int | None,
        Field(
            description="The HTTP status of the last attempt (null when it got no answer)",
            title="Last Status Code",
        ),
    ]
    last_error: Annotated[
        str | None,
        Field(
            description="Why the last attempt failed (null if it did not)",
            title="Last Error",
        ),
    ]
    next_attempt_at: Annotated[AwareDatetime | None, Field(title="Next Attempt At")]
    created_at: Annotated[AwareDatetime, Field(title="Created At")]
    updated_at: Annotated[AwareDatetime, Field(title="Updated At")]


class WebhookEndpointCreate(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    url: Annotated[
        AnyUrl,
        Field(
            description="Absolute http(s) URL the events are POSTed to. A host that is, or resolves to, a loopback/private address is refused unless RUNLANE_HTTP_ALLOW_PRIVATE=true",
            title="Url",
        ),
    ]
    events: Annotated[
        list[
            Literal[
                "run.started",
                "run.waiting_for_human",
                "run.completed",
                "run.failed",
                "run.cancelled",
                "run.retried",
                "review.requested",
                "review.decided",
                "review.escalated",
            ]
        ],
        Field(
            description="The event types to receive (at least one)",
            max_length=100,
            min_length=1,
            title="Events",
        ),
    ]
    description: Annotated[
        str | None, Field(max_length=5000, pattern="^[^\\x00]*$", title="Description")
    ] = ""


class WebhookEndpointCreated(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    id: Annotated[str, Field(title="Id")]
    url: Annotated[str, Field(title="Url")]
    events: Annotated[list[str], Field(title="Events")]
    description: Annotated[str, Field(title="Description")]
    disabled: Annotated[bool, Field(title="Disabled")]
    created_at: Annotated[AwareDatetime, Field(title="Created At")]
    updated_at: Annotated[AwareDatetime, Field(title="Updated At")]
    secret: Annotated[
        str,
        Field(
            description="`whsec_` + base64 of 32 random bytes: verify the `webhook-signature` of each delivery with it (Standard Webhooks). Shown only in this answer",
            title="Secret",
        ),
    ]


class WebhookEndpointOut(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    id: Annotated[str, Field(title="Id")]
    url: Annotated[str, Field(title="Url")]
    events: Annotated[list[str], Field(title="Events")]
    description: Annotated[str, Field(title="Description")]
    disabled: Annotated[bool, Field(title="Disabled")]
    created_at: Annotated[AwareDatetime, Field(title="Created At")]
    updated_at: Annotated[AwareDatetime, Field(title="Updated At")]


class Url(RootModel[AnyUrl]):
    root: Annotated[
        AnyUrl,
        Field(
            description="Absolute http(s) URL the events are POSTed to. A host that is, or resolves to, a loopback/private address is refused unless RUNLANE_HTTP_ALLOW_PRIVATE=true",
            title="Url",
        ),
    ]


class Events(
    RootModel[
        list[
            Literal[
                "run.started",
                "run.waiting_for_human",
                "run.completed",
                "run.failed",
                "run.cancelled",
                "run.retried",
                "review.requested",
                "review.decided",
                "review.escalated",
            ]
        ]
    ]
):
    root: Annotated[
        list[
            Literal[
                "run.started",
                "run.waiting_for_human",
                "run.completed",
                "run.failed",
                "run.cancelled",
                "run.retried",
                "review.requested",
                "review.decided",
                "review.escalated",
            ]
        ],
        Field(
            description="The event types to receive (at least one)",
            max_length=100,
            min_length=1,
            title="Events",
        ),
    ]


class Description(RootModel[str]):
    root: Annotated[str, Field(max_length=5000, pattern="^[^\\x00]*$", title="Description")]


class WebhookEndpointPatch(BaseModel):
    """
    The fields to change; a field left out (or null) stays as it is.
    """

    model_config = ConfigDict(
        extra="allow",
    )
    url: Annotated[Url | None, Field(title="Url")] = None
    events: Annotated[Events | None, Field(title="Events")] = None
    disabled: Annotated[
        bool | None,
        Field(
            description="A disabled endpoint receives nothing, retries included",
            title="Disabled",
        ),
    ] = None
    description: Annotated[Description | None, Field(title="Description")] = None


class WebhookOut(BaseModel):
    """
    An inbound webhook as every answer but its creation shows it: never its secret.
    """

    model_config = ConfigDict(
        extra="allow",
    )
    id: Annotated[str, Field(title="Id")]
    workflow_id: Annotated[str, Field(title="Workflow Id")]
    input_node: Annotated[str, Field(title="Input Node")]
    config_source: Annotated[Literal["published", "draft"], Field(title="Config Source")]
    url: Annotated[
        str,
        Field(
            description="Where to send signed calls: `POST` to it, no API key",
            title="Url",
        ),
    ]
    created_at: Annotated[AwareDatetime, Field(title="Created At")]


class WebhookRunOut(BaseModel):
    """
    What a webhook call answers: the run it started (or, for a `webhook-id` sent before,
    the run the first call started).
    """

    model_config = ConfigDict(
        extra="allow",
    )
    run_id: Annotated[str, Field(title="Run Id")]
    status: Annotated[
        str,
        Field(
            description="The run's status when answered (`pending` when just started)",
            title="Status",
        ),
    ]


class WorkflowCreate(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    name: Annotated[str, Field(max_length=200, min_length=1, pattern="^[^\\x00]*$", title="Name")]
    description: Annotated[
        str | None, Field(max_length=5000, pattern="^[^\\x00]*$", title="Description")
    ] = ""
    definition: Annotated[
        dict[str, Any],
        Field(description="Nodes and edges; see API.md 'Definition'", title="Definition"),
    ]


class WorkflowOut(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    id: Annotated[str, Field(title="Id")]
    organization_id: Annotated[str, Field(title="Organization Id")]
    name: Annotated[str, Field(title="Name")]
    description: Annotated[str, Field(title="Description")]
    draft: Draft
    published_snapshot_id: Annotated[str | None, Field(title="Published Snapshot Id")]
    created_at: Annotated[AwareDatetime, Field(title="Created At")]
    updated_at: Annotated[AwareDatetime, Field(title="Updated At")]


class BulkBody(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    action: Annotated[Literal["retry", "cancel", "restart", "rerun"], Field(title="Action")]
    filter: Annotated[
        BulkFilterIn,
        Field(
            description="At least one criterion: an empty filter is refused (422), never read as every run of the organization"
        ),
    ]
    dry_run: Annotated[
        bool | None,
        Field(
            description="Only say which runs would be touched (200); start nothing",
            title="Dry Run",
        ),
    ] = False
    command_id: Annotated[
        CommandId | None,
        Field(
            description="Idempotency key: replays return the first result (200) and enqueue nothing",
            title="Command Id",
        ),
    ] = None


class BulkDryRunEntry(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    run_id: Annotated[str, Field(title="Run Id")]
    status: Annotated[str, Field(title="Status")]
    plan: Annotated[BulkPlanOut | None, Field(description="retry only: what it would do")] = None


class BulkDryRunOut(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    dry_run: Annotated[Literal[True], Field(title="Dry Run")] = True
    action: Annotated[str, Field(title="Action")]
    matched: Annotated[int, Field(title="Matched")]
    runs: Annotated[list[BulkDryRunEntry], Field(title="Runs")]


class BulkOperationDetailOut(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    id: Annotated[str, Field(title="Id")]
    organization_id: Annotated[str, Field(title="Organization Id")]
    action: Annotated[str, Field(title="Action")]
    filter: Annotated[dict[str, Any], Field(title="Filter")]
    status: Annotated[Literal["running", "completed", "cancelled", "failed"], Field(title="Status")]
    matched: Annotated[
        int,
        Field(
            description="Runs the filter matched when the operation started",
            title="Matched",
        ),
    ]
    progress: BulkProgressOut
    created_at: Annotated[AwareDatetime, Field(title="Created At")]
    temporal: Annotated[
        dict[str, str],
        Field(description="`workflow_id` and `ui_url` of its workflow", title="Temporal"),
    ]
    outcomes: Annotated[
        PageBulkOutcomeOut,
        Field(
            description="Per-run outcomes so far, paged with `limit` and `cursor` (the last taken first; `order=asc`: in the operation's order)"
        ),
    ]


class BulkOperationOut(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    id: Annotated[str, Field(title="Id")]
    organization_id: Annotated[str, Field(title="Organization Id")]
    action: Annotated[str, Field(title="Action")]
    filter: Annotated[dict[str, Any], Field(title="Filter")]
    status: Annotated[Literal["running", "completed", "cancelled", "failed"], Field(title="Status")]
    matched: Annotated[
        int,
        Field(
            description="Runs the filter matched when the operation started",
            title="Matched",
        ),
    ]
    progress: BulkProgressOut
    created_at: Annotated[AwareDatetime, Field(title="Created At")]
    temporal: Annotated[
        dict[str, str],
        Field(description="`workflow_id` and `ui_url` of its workflow", title="Temporal"),
    ]


class CompareOut(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    runs: Annotated[
        list[str],
        Field(
            description="[a, b]: the run in the path, then the one it is compared with",
            title="Runs",
        ),
    ]
    snapshot_changes: SnapshotChangesOut
    nodes: Annotated[
        list[CompareNodeOut],
        Field(
            description="Every node of either run: a's in topological order, then b's others",
            title="Nodes",
        ),
    ]


class DataListNodeTypeOut(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    data: Annotated[list[NodeTypeOut], Field(title="Data")]


class ErrorBody(BaseModel):
    """
    Every non-2xx answer (API.md "Errors").
    """

    model_config = ConfigDict(
        extra="allow",
    )
    error: ErrorDetail


class MapItemOut(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    index: Annotated[int, Field(title="Index")]
    status: Annotated[
        Literal["pending", "running", "completed", "error", "cancelled"],
        Field(title="Status"),
    ]
    attempt: Annotated[
        int,
        Field(
            description="The map execution that produced it (one more per retry)",
            title="Attempt",
        ),
    ]
    output: Annotated[Any, Field(title="Output")]
    error: StepErrorOut | None
    child_run_id: Annotated[
        str | None,
        Field(
            description="workflow_id maps: the item's child run (null until it starts)",
            title="Child Run Id",
        ),
    ] = None


class PageMapItemOut(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    data: Annotated[list[MapItemOut], Field(title="Data")]
    next_cursor: Annotated[
        str | None,
        Field(
            description="Pass as `cursor` (or `after`) for the next page; null on the last page",
            title="Next Cursor",
        ),
    ] = None
    list_metadata: Annotated[
        ListMetadata,
        Field(description="Seed compatibility (Retab): `{before: null, after: next_cursor}`"),
    ]


class PageSecretOut(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    data: Annotated[list[SecretOut], Field(title="Data")]
    next_cursor: Annotated[
        str | None,
        Field(
            description="Pass as `cursor` (or `after`) for the next page; null on the last page",
            title="Next Cursor",
        ),
    ] = None
    list_metadata: Annotated[
        ListMetadata,
        Field(description="Seed compatibility (Retab): `{before: null, after: next_cursor}`"),
    ]


class PageSnapshotOut(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    data: Annotated[list[SnapshotOut], Field(title="Data")]
    next_cursor: Annotated[
        str | None,
        Field(
            description="Pass as `cursor` (or `after`) for the next page; null on the last page",
            title="Next Cursor",
        ),
    ] = None
    list_metadata: Annotated[
        ListMetadata,
        Field(description="Seed compatibility (Retab): `{before: null, after: next_cursor}`"),
    ]


class PageWebhookDeliveryOut(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    data: Annotated[list[WebhookDeliveryOut], Field(title="Data")]
    next_cursor: Annotated[
        str | None,
        Field(
            description="Pass as `cursor` (or `after`) for the next page; null on the last page",
            title="Next Cursor",
        ),
    ] = None
    list_metadata: Annotated[
        ListMetadata,
        Field(description="Seed compatibility (Retab): `{before: null, after: next_cursor}`"),
    ]


class PageWebhookEndpointOut(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    data: Annotated[list[WebhookEndpointOut], Field(title="Data")]
    next_cursor: Annotated[
        str | None,
        Field(
            description="Pass as `cursor` (or `after`) for the next page; null on the last page",
            title="Next Cursor",
        ),
    ] = None
    list_metadata: Annotated[
        ListMetadata,
        Field(description="Seed compatibility (Retab): `{before: null, after: next_cursor}`"),
    ]


class PageWebhookOut(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    data: Annotated[list[WebhookOut], Field(title="Data")]
    next_cursor: Annotated[
        str | None,
        Field(
            description="Pass as `cursor` (or `after`) for the next page; null on the last page",
            title="Next Cursor",
        ),
    ] = None
    list_metadata: Annotated[
        ListMetadata,
        Field(description="Seed compatibility (Retab): `{before: null, after: next_cursor}`"),
    ]


class PageWorkflowOut(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    data: Annotated[list[WorkflowOut], Field(title="Data")]
    next_cursor: Annotated[
        str | None,
        Field(
            description="Pass as `cursor` (or `after`) for the next page; null on the last page",
            title="Next Cursor",
        ),
    ] = None
    list_metadata: Annotated[
        ListMetadata,
        Field(description="Seed compatibility (Retab): `{before: null, after: next_cursor}`"),
    ]


class PendingReviewOut(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    run_id: Annotated[str, Field(title="Run Id")]
    node_id: Annotated[str, Field(title="Node Id")]
    label: Annotated[str, Field(title="Label")]
    instructions: Annotated[str, Field(title="Instructions")]
    payload: Annotated[Any, Field(title="Payload")]
    waiting_since: Annotated[AwareDatetime, Field(title="Waiting Since")]
    workflow: RunWorkflowOut
    data_schema: Annotated[
        dict[str, Any] | None,
        Field(
            description="The JSON Schema an approval's `data` must match",
            title="Data Schema",
        ),
    ] = None
    assignees: Annotated[
        list[str] | None,
        Field(
            description="Who is asked to review (with `escalate_to` once escalated)",
            title="Assignees",
        ),
    ] = None
    approvals_required: Annotated[int | None, Field(title="Approvals Required")] = 1
    approvals: Annotated[
        list[ApprovalOut] | None,
        Field(description="Approvals so far", title="Approvals"),
    ] = None
    escalated_at: Annotated[AwareDatetime | None, Field(title="Escalated At")] = None
    escalate_to: Annotated[list[str] | None, Field(title="Escalate To")] = None


class RunOut(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    id: Annotated[str, Field(title="Id")]
    organization_id: Annotated[str, Field(title="Organization Id")]
    workflow: RunWorkflowOut
    workflow_id: Annotated[
        str,
        Field(
            description="Seed compatibility: `workflow.workflow_id`",
            title="Workflow Id",
        ),
    ]
    workflow_name: Annotated[
        str,
        Field(
            description="Seed compatibility: `workflow.name_at_run_time`",
            title="Workflow Name",
        ),
    ]
    trigger: TriggerOut
    status: Annotated[str, Field(title="Status")]
    lifecycle: Lifecycle
    timing: TimingOut
    inputs: RunInputsOut
    final_outputs: Annotated[Any, Field(title="Final Outputs")]
    error: RunErrorOut | None
    waiting_for_node_ids: Annotated[list[str], Field(title="Waiting For Node Ids")]
    attempt: Annotated[int, Field(title="Attempt")]
    attempts: Annotated[list[AttemptOut], Field(title="Attempts")]
    derived_run_ids: Annotated[list[str] | None, Field(title="Derived Run Ids")] = None
    temporal: TemporalOut
    created_at: Annotated[
        AwareDatetime,
        Field(description="Seed compatibility: `timing.created_at`", title="Created At"),
    ]
    started_at: Annotated[
        AwareDatetime,
        Field(
            description="Seed compatibility: `timing.started_at`; while the run has not started yet (`pending`), its creation time, so it is never null (`timing.started_at` is)",
            title="Started At",
        ),
    ]
    completed_at: Annotated[
        AwareDatetime | None,
        Field(
            description="Seed compatibility: `timing.completed_at` (null until the run ends)",
            title="Completed At",
        ),
    ]
    duration_ms: Annotated[
        int | None,
        Field(
            description="Seed compatibility: `timing.duration_ms` (null until the run ends)",
            title="Duration Ms",
        ),
    ]
    updated_at: Annotated[
        AwareDatetime,
        Field(
            description="When the run's state last changed: the latest moment it records (created, started, ended, a step started or ended, a review waited or was decided, an attempt started or ended)",
            title="Updated At",
        ),
    ]
    input_documents: Annotated[
        dict[str, InputDocumentOut],
        Field(
            description="Seed compatibility: the documents of `inputs.documents` by start node id, each `{file_id, id, filename, mime_type}`",
            title="Input Documents",
        ),
    ]
    usage: Annotated[
        UsageOut | None,
        Field(
            description="What the run's nodes did, across every attempt: the sum of its steps' `usage`. Left out of Server-Sent Events and event webhooks' `data.run`"
        ),
    ] = None


class ScheduleCreate(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    spec: ScheduleSpecIn
    inputs: ScheduleInputs | None = None
    config_source: Annotated[
        Literal["published", "draft"] | None,
        Field(
            description="`published`: each run runs the snapshot published when it fires (`409 workflow_not_published` now if none is); `draft`: the draft then",
            title="Config Source",
        ),
    ] = "published"
    overlap: Annotated[
        Literal["skip", "buffer_one", "allow_all", "cancel_other"] | None,
        Field(
            description="What a fire does while the schedule's previous run still runs: `skip` it (default), `buffer_one` (start it when the previous ends, at most one waiting), `allow_all` (start it beside), `cancel_other` (cancel the previous run, then start)",
            title="Overlap",
        ),
    ] = "skip"
    paused: Annotated[bool | None, Field(title="Paused")] = False
    note: Annotated[
        str | None,
        Field(
            description="For people; shown in the Temporal UI too",
            max_length=2000,
            pattern="^[^\\x00]*$",
            title="Note",
        ),
    ] = ""


class ScheduleOut(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    id: Annotated[str, Field(title="Id")]
    organization_id: Annotated[str, Field(title="Organization Id")]
    workflow_id: Annotated[str, Field(title="Workflow Id")]
    spec: ScheduleSpecOut
    inputs: ScheduleInputs
    config_source: Annotated[Literal["published", "draft"], Field(title="Config Source")]
    overlap: Annotated[
        Literal[
            "skip",
            "buffer_one",
            "allow_all",
            "cancel_other",
            "buffer_all",
            "terminate_other",
        ],
        Field(
            description="The Temporal Schedule's overlap policy: one of the four this API sets, or `buffer_all` / `terminate_other` when an operator chose one in the Temporal UI",
            title="Overlap",
        ),
    ]
    paused: Annotated[bool, Field(description="Paused here or in the Temporal UI", title="Paused")]
    note: Annotated[str, Field(title="Note")]
    next_run_times: Annotated[
        list[AwareDatetime],
        Field(description="The next (up to) 5 fires", title="Next Run Times"),
    ]
    recent_runs: Annotated[
        list[ScheduleRunOut],
        Field(
            description="The newest (up to) 10 fires, newest first: runs this schedule started (also by `trigger` and `backfill`) and fires that could not start one",
            title="Recent Runs",
        ),
    ]
    created_at: Annotated[AwareDatetime, Field(title="Created At")]
    updated_at: Annotated[AwareDatetime, Field(title="Updated At")]


class SchedulePatch(BaseModel):
    """
    What to change; what is left out (or null) stays as it is.
    """

    model_config = ConfigDict(
        extra="allow",
    )
    spec: Annotated[ScheduleSpecIn | None, Field(description="Replaces the whole spec")] = None
    inputs: Annotated[ScheduleInputs | None, Field(description="Replaces all the inputs")] = None
    overlap: Annotated[
        Literal["skip", "buffer_one", "allow_all", "cancel_other"] | None,
        Field(
            description="What a fire does while the schedule's previous run still runs: `skip` it (default), `buffer_one` (start it when the previous ends, at most one waiting), `allow_all` (start it beside), `cancel_other` (cancel the previous run, then start)",
            title="Overlap",
        ),
    ] = None
    paused: Annotated[bool | None, Field(title="Paused")] = None
    note: Annotated[Note | None, Field(title="Note")] = None


class StepOut(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    node_id: Annotated[str, Field(title="Node Id")]
    node_type: Annotated[str, Field(title="Node Type")]
    label: Annotated[str, Field(title="Label")]
    status: Annotated[str, Field(title="Status")]
    attempt: Annotated[int, Field(title="Attempt")]
    started_at: Annotated[AwareDatetime | None, Field(title="Started At")]
    completed_at: Annotated[AwareDatetime | None, Field(title="Completed At")]
    duration_ms: Annotated[int | None, Field(title="Duration Ms")]
    output: Annotated[Any, Field(title="Output")]
    error: StepErrorOut | None
    review: ReviewOut | None
    child_run_id: Annotated[
        str | None,
        Field(
            description="A subworkflow node: the child run it started (its latest, after a retry)",
            title="Child Run Id",
        ),
    ] = None
    progress: Annotated[
        MapProgressOut | None,
        Field(description="map nodes: items total, completed, failed and running"),
    ] = None
    approvals: Annotated[
        list[ApprovalOut] | None,
        Field(
            description="human_review nodes that need several approvals: the approvals so far",
            title="Approvals",
        ),
    ] = None
    escalated_at: Annotated[
        AwareDatetime | None,
        Field(
            description="human_review nodes: when the review escalated (escalate_after_s passed without a decision)",
            title="Escalated At",
        ),
    ] = None
    effects: Annotated[
        list[EffectOut] | None,
        Field(
            description="Side-effecting nodes: every request the node actually sent, across activity retries and run retries, oldest first (secrets as `***`). Left out for other nodes and in Server-Sent Events",
            title="Effects",
        ),
    ] = None
    usage: Annotated[
        UsageOut | None,
        Field(
            description="What this node did, across every attempt. Left out in Server-Sent Events"
        ),
    ] = None
    block_id: Annotated[
        str,
        Field(description="Seed compatibility (Retab SDK): `node_id`", title="Block Id"),
    ]
    block_type: Annotated[
        str,
        Field(
            description="Seed compatibility (Retab SDK): `node_type`",
            title="Block Type",
        ),
    ]
    block_label: Annotated[
        str,
        Field(description="Seed compatibility (Retab SDK): `label`", title="Block Label"),
    ]


class DataListStepOut(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    data: Annotated[list[StepOut], Field(title="Data")]


class PagePendingReviewOut(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    data: Annotated[list[PendingReviewOut], Field(title="Data")]
    next_cursor: Annotated[
        str | None,
        Field(
            description="Pass as `cursor` (or `after`) for the next page; null on the last page",
            title="Next Cursor",
        ),
    ] = None
    list_metadata: Annotated[
        ListMetadata,
        Field(description="Seed compatibility (Retab): `{before: null, after: next_cursor}`"),
    ]


class PageRunOut(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    data: Annotated[list[RunOut], Field(title="Data")]
    next_cursor: Annotated[
        str | None,
        Field(
            description="Pass as `cursor` (or `after`) for the next page; null on the last page",
            title="Next Cursor",
        ),
    ] = None
    list_metadata: Annotated[
        ListMetadata,
        Field(description="Seed compatibility (Retab): `{before: null, after: next_cursor}`"),
    ]


class PageScheduleOut(BaseModel):
    model_config = ConfigDict(
        extra="allow",
    )
    data: Annotated[list[ScheduleOut], Field(title="Data")]
    next_cursor: Annotated[
        str | None,
        Field(
            description="Pass as `cursor` (or `after`) for the next page; null on the last page",
            title="Next Cursor",
        ),
    ] = None
    list_metadata: Annotated[
        ListMetadata,
        Field(description="Seed compatibility (Retab): `{before: null, after: next_cursor}`"),
    ]
