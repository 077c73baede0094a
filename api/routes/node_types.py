"""The node types this deployment knows (core and plugins), with their config schemas."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.openapi.utils import get_openapi

from activities.registry import NodeRegistry, NodeType, default_registry
from api import schemas
from api.deps import OrgDep, RegistryDep, require
from runlane.permissions import Permission

router = APIRouter(prefix="/v1/node-types", tags=["node types"], responses=schemas.ERROR_RESPONSES)


def node_type_out(node_type: NodeType) -> schemas.NodeTypeOut:
    return schemas.NodeTypeOut(
        type=node_type.name,
        description=node_type.description,
        role=node_type.role,
        execution=node_type.execution,
        side_effecting=node_type.side_effecting,
        branches=sorted(node_type.allowed_branches),
        secret_fields=sorted(node_type.secret_fields),
        config_schema=node_type.config_model.model_json_schema(by_alias=True),
    )


@router.get(
    "",
    response_model=schemas.DataList[schemas.NodeTypeOut],
    dependencies=[require(Permission.READ)],
)
async def list_node_types(
    org: OrgDep, registry: RegistryDep
) -> schemas.DataList[schemas.NodeTypeOut]:
    """Every node type a definition may use, with the JSON Schema of its `config`."""
    return schemas.DataList(data=[node_type_out(t) for t in registry.values()])


def openapi_with_node_configs(app: FastAPI, registry: NodeRegistry | None = None) -> dict[str, Any]:
    """The OpenAPI document plus one `NodeConfig.<type>` schema per registered node type."""
    if app.openapi_schema:
        return app.openapi_schema
    document = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    components = document.setdefault("components", {}).setdefault("schemas", {})
    for node_type in (registry or default_registry()).values():
        schema = node_type.config_model.model_json_schema(
            by_alias=True,
            ref_template=f"#/components/schemas/NodeConfig.{node_type.name}.{{model}}",
        )
        for name, definition in schema.pop("$defs", {}).items():
            components[f"NodeConfig.{node_type.name}.{name}"] = definition
        schema["description"] = f"`config` of a `{node_type.name}` node: {node_type.description}"
        components[f"NodeConfig.{node_type.name}"] = schema
    app.openapi_schema = document
    return document
