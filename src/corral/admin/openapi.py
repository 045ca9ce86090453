"""The admin API's OpenAPI 3.1 document, written from the operations table and pydantic models."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from corral.admin.operations import Operation
from corral.admin.schemas import ErrorEnvelope

_REF = "#/components/schemas/{model}"
_PATH_PARAM = re.compile(r"{(\w+)}")
_ERRORS = {
    "400": "Invalid request: the message says what is wrong and `param` names the field",
    "401": "No API key, or not a valid one",
    "403": "The key's role may not do this here",
    "404": "No such team, user or key",
    "409": "Conflicts with the current state (name taken, already revoked, ...)",
    "503": "The store is unavailable; retry after Retry-After seconds",
}


def openapi_document(operations: Sequence[Operation[Any]], version: str) -> dict[str, Any]:
    """The document served at ``/admin/v1/openapi.json``."""
    refs, schemas = _schemas(operations)
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op, refs)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Corral admin API",
            "version": version,
            "description": "Teams, users, API keys and the audit log. Authenticate with "
            "'Authorization: Bearer <key>'; errors use OpenAI's envelope.",
        },
        "servers": [{"url": "/admin/v1"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def _schemas(operations: Sequence[Operation[Any]]) -> tuple[dict[Any, Any], dict[str, Any]]:
    wanted: dict[tuple[type[BaseModel], JsonSchemaMode], None] = {
        (ErrorEnvelope, "serialization"): None
    }
    for op in operations:
        if not op.reads_query:
            wanted[(op.input, "validation")] = None
        if op.output is not None:
            wanted[(op.output, "serialization")] = None
    refs, top = models_json_schema(list(wanted), ref_template=_REF)
    defs: dict[str, Any] = top.get("$defs", {})
    return dict(refs.items()), defs


def _operation(op: Operation[Any], refs: dict[Any, Any]) -> dict[str, Any]:
    params = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _PATH_PARAM.findall(op.path)
    ]
    doc: dict[str, Any] = {
        "operationId": _operation_id(op),
        "summary": op.summary,
        "tags": [op.path.split("/")[1]],
        "x-corral-action": op.action.value,
        "responses": {str(op.status): _success(op, refs), **_error_responses()},
    }
    if op.reads_query:
        params.extend(_query_parameters(op.input))
    else:
        schema = refs[(op.input, "validation")]
        doc["requestBody"] = {
            "required": False,
            "content": {"application/json": {"schema": schema}},
        }
    if params:
        doc["parameters"] = params
    return doc


def _query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    schema = model.model_json_schema(ref_template=_REF)
    required = set(schema.get("required", []))
    found = []
    for name, prop in schema.get("properties", {}).items():
        param = {"name": name, "in": "query", "required": name in required, "schema": prop}
        if "description" in prop:
            param["description"] = prop["description"]
        found.append(param)
    return found


def _success(op: Operation[Any], refs: dict[Any, Any]) -> dict[str, Any]:
    if op.output is None:
        return {
            "description": "One AuditOut JSON object per line",
            "content": {op.media_type: {"schema": {"type": "string"}}},
        }
    schema = refs[(op.output, "serialization")]
    return {"description": op.summary, "content": {"application/json": {"schema": schema}}}


def _error_responses() -> dict[str, Any]:
    envelope = {"$ref": _REF.format(model="ErrorEnvelope")}
    return {
        status: {"description": text, "content": {"application/json": {"schema": envelope}}}
        for status, text in _ERRORS.items()
    }


def _operation_id(op: Operation[Any]) -> str:
    """Unique per operation: the action, plus what tells two operations of one action apart."""
    base = op.action.value.replace(".", "_") + ("_export" if op.output is None else "")
    if op.path == "/limits/me":
        return base + "_own"
    if op.method == "PATCH" and op.path.endswith("/limits"):
        return base + "_some"  # beside POST's replace-all on the same action
    return base
