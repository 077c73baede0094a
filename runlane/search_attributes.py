"""Custom search attributes: the run workflow upserts them, the API lists runs with them.

They are registered when the dev server starts (`make run`, tests) and ensured through the
operator service by the worker at start-up, so a fresh cluster works too.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from temporalio.common import SearchAttributeKey

ORGANIZATION = SearchAttributeKey.for_keyword("RunlaneOrganization")
RUN_STATUS = SearchAttributeKey.for_keyword("RunlaneStatus")
WORKFLOW_ID = SearchAttributeKey.for_keyword("RunlaneWorkflowId")
TRIGGER_TYPE = SearchAttributeKey.for_keyword("RunlaneTriggerType")
# Restarted and rerun runs name their source: the source's record lists them from visibility.
SOURCE_RUN_ID = SearchAttributeKey.for_keyword("RunlaneSourceRunId")
# Child runs (subworkflow nodes) name the run that started them: `?parent_run_id=` lists them.
PARENT_RUN_ID = SearchAttributeKey.for_keyword("RunlaneParentRunId")
# Runs a schedule fired, and the schedule's launcher workflows: `?schedule_id=` lists them.
SCHEDULE_ID = SearchAttributeKey.for_keyword("RunlaneScheduleId")
# Node ids of human_review nodes waiting right now (the reviewers' inbox lists by it).
WAITING_NODES = SearchAttributeKey.for_keyword_list("RunlaneWaitingNodes")
# The run's creation time (API.md `timing.created_at`) in microseconds since the epoch, set at
# start and kept by resets and retries: lists are ordered by it. An integer, not a Datetime:
# the SQL visibility stores may compare datetimes as text, which misorders fractions.
CREATED_AT_US = SearchAttributeKey.for_int("RunlaneCreatedAtUs")

ALL: tuple[SearchAttributeKey, ...] = (
    ORGANIZATION,
    RUN_STATUS,
    WORKFLOW_ID,
    TRIGGER_TYPE,
    SOURCE_RUN_ID,
    WAITING_NODES,
    PARENT_RUN_ID,
    CREATED_AT_US,
    SCHEDULE_ID,
)

_DEV_SERVER_KINDS = {"KEYWORD": "Keyword", "KEYWORD_LIST": "KeywordList", "INT": "Int"}


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def microseconds(moment: datetime) -> int:
    """`CREATED_AT_US`'s value for a moment (timezone-aware). Exact integer arithmetic: through
    a float timestamp a moment before 1970 with a fraction was a second late (int() rounds
    towards zero), and one near year 9999 could be rounded to the next second."""
    return (moment - _EPOCH) // timedelta(microseconds=1)


def dev_server_flags() -> list[str]:
    """`temporal server start-dev` flags that register every attribute at start."""
    flags: list[str] = []
    for key in ALL:
        kind = _DEV_SERVER_KINDS[key.indexed_value_type.name.removeprefix("INDEXED_VALUE_TYPE_")]
        flags += ["--search-attribute", f"{key.name}={kind}"]
    return flags
