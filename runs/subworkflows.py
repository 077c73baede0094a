"""Subworkflow targets: checked when a workflow is published and resolved when a run starts.

A `subworkflow` node names another workflow of the same organization, run from its published
snapshot (default) or its draft. Publishing checks that every target exists and, unless it runs
the draft, is published; starting a run checks again and freezes each target's definition and
plans, its own targets' too (recursively, at most `MAX_DEPTH` levels, no workflow twice on one
path), into the run's input: the run workflow reads no store, so a child run starts from data
recorded in the parent's history. Problems are `422`s naming the node of the definition at hand.
"""

from __future__ import annotations

from activities.maps import MapConfig
from activities.registry import NodeRegistry
from activities.subworkflow import MAX_DEPTH, SubworkflowConfig, target_key
from runlane.definition import Definition
from runlane.errors import Conflict, InvalidInput, NotFound, invalid
from runs.starter import PublishedDefinitions, definition_for
from store.workflows import WorkflowRepository
from workflows.maps import input_node_problem
from workflows.models import FrozenWorkflow, node_behaviour


class _Problem(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class SubworkflowTargets:
    def __init__(
        self,
        workflows: WorkflowRepository,
        registry: NodeRegistry,
        published: PublishedDefinitions | None = None,
    ) -> None:
        self._workflows = workflows
        self._registry = registry
        self._published = published or PublishedDefinitions()

    def _targets(self, definition: Definition) -> list[tuple[str, SubworkflowConfig]]:
        """The nodes that run child runs of another workflow: subworkflow nodes, and maps
        with a `workflow_id` (a child run per item)."""
        return [(node_id, config) for node_id, config, _ in self._runs(definition)]

    def _runs(
        self, definition: Definition
    ) -> list[tuple[str, SubworkflowConfig, MapConfig | None]]:
        found: list[tuple[str, SubworkflowConfig, MapConfig | None]] = []
        for node in definition.nodes:
            spec = self._registry.get(node.type)
            if spec is None:
                continue
            if spec.behaviour.child_run:
                found.append((node.id, SubworkflowConfig.model_validate(node.config), None))
            elif spec.behaviour.map:
                config = MapConfig.model_validate(node.config)
                if config.workflow_id is not None:
                    target = SubworkflowConfig(
                        workflow_id=config.workflow_id, config_source=config.config_source
                    )
                    found.append((node.id, target, config))
        return found

    async def resolve(
        self, org: str, workflow_id: str, definition: Definition
    ) -> dict[str, FrozenWorkflow]:
        """Every target a run of `definition` (of workflow `workflow_id`) needs, frozen; an
        InvalidInput naming each node whose target is missing, unpublished, nested too deep
        or leads back to a workflow on its own path."""
        resolved: dict[str, FrozenWorkflow] = {}
        errors: list[dict[str, str]] = []
        for node_id, config, map_config in self._runs(definition):
            try:
                await self._resolve(org, config, (workflow_id,), 1, resolved)
                if map_config is not None:
                    _check_input_node(map_config, resolved[target_key(config)])
            except _Problem as problem:
                errors.append({"node_id": node_id, "message": problem.message})
        if errors:
            shown = "; ".join(f"{e['node_id']}: {e['message']}" for e in errors[:5])
            raise invalid("invalid_subworkflow", f"Invalid subworkflow: {shown}", errors)
        return resolved

    async def _resolve(
        self,
        org: str,
        config: SubworkflowConfig,
        path: tuple[str, ...],
        depth: int,
        resolved: dict[str, FrozenWorkflow],
    ) -> None:
        target_id = config.workflow_id
        if target_id in path:
            chain = " -> ".join((*path, target_id))
            raise _Problem(f"subworkflow {target_id} leads back to itself ({chain})")
        if depth > MAX_DEPTH:
            raise _Problem(
                f"subworkflows nest more than {MAX_DEPTH} levels deep ({' -> '.join(path)})"
            )
        key = target_key(config)
        frozen = resolved.get(key)
        if frozen is None:
            try:
                definition, ref = await definition_for(
                    org,
                    target_id,
                    config.config_source,
                    self._workflows,
                    self._registry,
                    self._published,
                )
            except NotFound:
                raise _Problem(f"no workflow {target_id} in this organization") from None
            except (Conflict, InvalidInput) as err:
                raise _Problem(f"workflow {target_id}: {err.message}") from None
            frozen = FrozenWorkflow(
                workflow=ref, definition=definition, plans=self._registry.plans(definition)
            )
            resolved[key] = frozen
        for _, nested in self._targets(frozen.definition):
            try:
                await self._resolve(org, nested, (*path, target_id), depth + 1, resolved)
            except _Problem as problem:
                raise _Problem(f"in workflow {target_id}: {problem.message}") from None


def _check_input_node(config: MapConfig, target: FrozenWorkflow) -> None:
    """A map's target takes each item in one start_json node: `input_node`, or its only one."""
    json_starts = [
        node.id
        for node in target.definition.nodes
        if (plan := target.plans.get(node.id)) is not None
        and node_behaviour(plan, node.type).run_input == "json"
    ]
    if config.input_node is None and len(json_starts) == 1:
        return
    if config.input_node is not None and config.input_node in json_starts:
        return
    raise _Problem(
        f"workflow {config.workflow_id}: {input_node_problem(config.input_node, json_starts)}"
    )
