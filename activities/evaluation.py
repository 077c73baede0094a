"""The batch of pure work the run workflow hands to one local activity (`runlane.evaluate`).

Given the ready nodes and the part of the graph below them, the batch evaluates pure nodes
(their node type's `evaluate`), skips nodes none of whose incoming edges was taken, renders the
payload of reviews about to wait, and follows the join rule (runlane/frontier.py) to the nodes
that become ready without I/O. Its result is each node's outcome, recorded in the run's history
as the activity's marker: the workflow applies it and a replay never evaluates again.

It stops at the first node error (the run fails there); at a byte budget, so that its result
stays one Temporal payload (a single output over MAX_OUTPUT_BYTES, compressed as the payload
codec would, is that node's error); and at a time budget, so that one batch never holds the
run's workflow task for long (past 8 s the SDK splits the task, which a retry cannot reset
to). What it leaves goes to the next batch.
"""

from __future__ import annotations

import asyncio
import json
import time
import zlib
from collections import deque
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from temporalio import activity

from activities import control, workflow_support
from activities.models import (
    BatchNode,
    NodeError,
    NodeOutcome,
    NodeTaskInput,
    OutcomeError,
    PureBatchInput,
    PureBatchResult,
)
from activities.recorded import RecordedOutcomes
from activities.registry import NodeRegistry
from activities.usage import Ledger, batch_records
from runlane import templating
from runlane.frontier import Frontier, taken_edges

# Temporal refuses a payload over 2 MB: one node's output, and a batch's outcomes together,
# stay well under it (the payload codec compresses what is over 256 KiB on top).
MAX_OUTPUT_BYTES = 1024 * 1024
# However well it compresses, an output is at most this much JSON, like a run's inputs: the
# API answers a run's steps whole, and 14 doubling transforms of a 1 KB input used to make
# 16 MB of output and a 49 MB steps response. Templates stop rendering at the same size.
MAX_OUTPUT_JSON_BYTES = templating.MAX_RENDERED_CHARS
BATCH_BUDGET_BYTES = 1536 * 1024
BATCH_BUDGET_SECONDS = 2.0
_MESSAGE_CHARS = 2000

Evaluate = Callable[[NodeTaskInput], Any]


def _now() -> datetime:
    return datetime.now(UTC)


def _encoded(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def _size(value: Any) -> int:
    return len(_encoded(value))


def _output_too_large(size: int, limit: int, how: str) -> OutcomeError:
    return OutcomeError(
        type="OutputTooLarge",
        message=f"the output is {size:,} bytes of JSON{how}; a node's output may be at most "
        f"{limit:,} (pass large data as documents)",
    )


def _too_large(output: Any) -> OutcomeError | None:
    """Why the output is too large to record, or None: over MAX_OUTPUT_JSON_BYTES of JSON, or
    over MAX_OUTPUT_BYTES even compressed (payloads over 256 KiB travel zlib-compressed: a
    large but repetitive output is fine up to the first limit)."""
    encoded = _encoded(output)
    if len(encoded) > MAX_OUTPUT_JSON_BYTES:
        return _output_too_large(len(encoded), MAX_OUTPUT_JSON_BYTES, "")
    if len(encoded) <= MAX_OUTPUT_BYTES:
        return None
    compressed = len(zlib.compress(encoded, 1))
    if compressed > MAX_OUTPUT_BYTES:
        return _output_too_large(compressed, MAX_OUTPUT_BYTES, " even compressed")
    return None


def evaluate_batch(
    batch: PureBatchInput,
    evaluators: Mapping[str, Evaluate],
    recorded: Mapping[str, NodeOutcome] | None = None,
) -> list[NodeOutcome]:
    """The outcomes of the batch, in the order produced. `recorded` holds outcomes the run
    recorded before a reset: they are taken as they are instead of evaluating again."""
    recorded = recorded or {}
    nodes = {spec.node.id: spec for spec in batch.nodes}
    outgoing: dict[str, list[Any]] = {node_id: [] for node_id in nodes}
    for edge in batch.edges:
        outgoing[edge.source].append(edge)
    frontier = Frontier(
        outgoing,
        unresolved={n: spec.unresolved for n, spec in nodes.items()},
        taken={n: spec.taken for n, spec in nodes.items()},
        has_incoming=[n for n, spec in nodes.items() if spec.has_incoming],
    )
    outputs = dict(batch.outputs)
    outcomes: list[NodeOutcome] = []
    used = 0
    deadline = time.monotonic() + BATCH_BUDGET_SECONDS
    queue = deque(batch.ready)
    while queue and (not outcomes or time.monotonic() < deadline):
        spec = nodes[queue.popleft()]
        node_id = spec.node.id
        if node_id in recorded:
            outcome = recorded[node_id]
        elif frontier.skips(node_id):
            outcome = NodeOutcome(
                node_id=node_id, label=spec.node.label, status="skipped", attempt=batch.attempt
            )
        elif spec.kind == "other":
            continue  # runs as an activity, timer... of its own once the workflow sees it ready
        else:
            outcome = _evaluate(batch, spec, outputs, evaluators)
        size = _size(outcome.output)
        if outcomes and used + size > BATCH_BUDGET_BYTES:
            break  # this node and what follows go in the next batch
        used += size
        outcomes.append(outcome)
        if outcome.status == "error":
            break  # the run fails at this node
        if outcome.status == "completed":
            outputs[node_id] = outcome.output
            edges = taken_edges(spec.role, outgoing[node_id], outcome.output)
            queue.extend(frontier.resolve(node_id, edges))
        elif outcome.status == "skipped":
            queue.extend(frontier.resolve(node_id, []))
        # A prepared review waits for its decision in the workflow: nothing below it is ready.
    return outcomes


def _evaluate(
    batch: PureBatchInput,
    spec: BatchNode,
    outputs: Mapping[str, Any],
    evaluators: Mapping[str, Evaluate],
) -> NodeOutcome:
    node = spec.node
    task = NodeTaskInput(
        run_id=batch.run_id,
        workflow_id=batch.workflow_id,
        node=node,
        outputs={name: outputs[name] for name in spec.reads if name in outputs},
        vars=batch.vars,
        input=spec.input,
    )
    started_at = _now()
    error: OutcomeError | None = None
    output: Any = None
    try:
        evaluate = control.review_payload if spec.kind == "review" else evaluators[node.type]
        output = evaluate(task)
        error = _too_large(output)
        if error is not None:
            output = None
    except NodeError as err:
        error = OutcomeError(type=err.type, message=err.message)
    except templating.RenderedTooLarge as err:
        output, error = (
            None,
            OutcomeError(type="OutputTooLarge", message=f"{err} (pass large data as documents)"),
        )
    except RecursionError:
        output = None
        error = OutcomeError(
            type="RecursionError", message="the node nests values too deeply to evaluate"
        )
    except Exception as err:  # noqa: BLE001 - any evaluator failure is this node's error
        # (MemoryError included: the output is dropped, the run fails at this node.)
        output = None
        error = OutcomeError(type=type(err).__name__, message=str(err)[:_MESSAGE_CHARS])
    status = "error" if error else ("waiting_for_human" if spec.kind == "review" else "completed")
    return NodeOutcome(
        node_id=node.id,
        label=node.label,
        status=status,
        output=output,
        error=error,
        attempt=batch.attempt,
        started_at=started_at,
        completed_at=_now(),
    )


def evaluate_node(
    batch: PureBatchInput,
    spec: BatchNode,
    outputs: Mapping[str, Any],
    evaluators: Mapping[str, Evaluate],
) -> NodeOutcome:
    """One pure node evaluated exactly as a batch evaluates it, its failure as its outcome:
    the dry run (runs/dry_run.py) shows what the worker would compute, errors included."""
    return _evaluate(batch, spec, outputs, evaluators)


class PureBatches:
    """The `runlane.evaluate` activity; built by workflows.worker.create_worker."""

    def __init__(
        self, registry: NodeRegistry, recorded: RecordedOutcomes, ledger: Ledger | None = None
    ) -> None:
        self._evaluators = {name: t.evaluate for name, t in registry.items() if t.evaluate}
        self._recorded = recorded
        # Counts the nodes each batch evaluated (usage's nodes_executed).
        self._ledger = ledger

    @activity.defn(name=workflow_support.EVALUATE)
    async def evaluate(self, batch: PureBatchInput) -> PureBatchResult:
        reused = await self._recorded.before_reset(batch, activity.info().activity_id)
        # In a thread, however small: one slow template or expression must not stall the
        # worker's event loop (its polls, other activities, queries).
        outcomes = await asyncio.to_thread(evaluate_batch, batch, self._evaluators, reused)
        if self._ledger is not None:
            await self._ledger.record(*batch_records(batch, outcomes))
        return PureBatchResult(outcomes=outcomes)
