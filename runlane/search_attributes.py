"""Custom search attributes: the run workflow upserts them, the API lists runs with them.

They are registered when the dev server starts (`make run`, tests) and ensured through the
operator service by the worker at start-up, so a fresh cluster works too.
"""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

ORGANIZATION = SearchAttributeKey.for_keyword("RunlaneOrganization")
RUN_STATUS = SearchAttributeKey.for_keyword("RunlaneStatus")
WORKFLOW_ID = SearchAttributeKey.for_keyword("RunlaneWorkflowId")
TRIGGER_TYPE = SearchAttributeKey.for_keyword("RunlaneTriggerType")
# Restarted and rerun runs name their source: the source's record lists them from visibility.
SOURCE_RUN_ID = SearchAttributeKey.for_keyword("RunlaneSourceRunId")
# Node ids of human_review nodes waiting right now (the reviewers' inbox lists by it).
WAITING_NODES = SearchAttributeKey.for_keyword_list("RunlaneWaitingNodes")

ALL: tuple[SearchAttributeKey, ...] = (
    ORGANIZATION,
    RUN_STATUS,
    WORKFLOW_ID,
    TRIGGER_TYPE,
    SOURCE_RUN_ID,
    WAITING_NODES,
)


def dev_server_flags() -> list[str]:
    """`temporal server start-dev` flags that register every attribute at start."""
    flags: list[str] = []
    for key in ALL:
        kind = "KeywordList" if key.indexed_value_type.name.endswith("LIST") else "Keyword"
        flags += ["--search-attribute", f"{key.name}={kind}"]
    return flags
