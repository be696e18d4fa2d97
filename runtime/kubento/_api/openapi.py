"""The OpenAPI 3.1 document of a service, built from its APIs' IO descriptors.

The generator takes `Operation`s, not a Service, so any API style that has IO
descriptors (today `@svc.api`) feeds it the same way.
"""

from __future__ import annotations

import inspect
import json
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from kubento import __version__, contract
from kubento._api import oip
from kubento._sdk.service import API, Service
from kubento.exceptions import (
    BadInput,
    GatewayTimeout,
    PayloadTooLarge,
    RunnerOverloaded,
    RunnerUnavailable,
)
from kubento.io import SCHEMA_REF, BodySchema, IODescriptor, Role

log = logging.getLogger("kubento.api")

OPENAPI_VERSION = "3.1.0"
ERROR_SCHEMA = "Error"

_ERROR_BODY: dict[str, Any] = {
    "type": "object",
    "description": "Every error the API server answers: what was wrong, and details when known.",
    "required": ["error", "detail"],
    "properties": {
        "error": {"type": "string", "description": "What was wrong, in words."},
        "detail": {
            "description": "Details (expected and received dtype or shape, validation "
            "errors, `request_id` for a 500), or null."
        },
    },
}

# The statuses the API server answers besides 200, keyed by component name; the codes
# come from the exception types that produce them (kubento/exceptions.py).
ERROR_RESPONSES: dict[str, tuple[int, str]] = {
    "BadInput": (
        BadInput.status_code,
        "The body does not match what the API takes; `error` says what was expected.",
    ),
    "NotFound": (404, "No such path."),
    "MethodNotAllowed": (405, "The path does not take this method (see the Allow header)."),
    "PayloadTooLarge": (
        PayloadTooLarge.status_code,
        f"The body is over the server's limit (${contract.ENV_MAX_REQUEST_BYTES}).",
    ),
    "Overloaded": (
        RunnerOverloaded.status_code,
        "A runner's queue is full: retry later.",
    ),
    "InternalError": (
        500,
        "API or model code raised; no traceback is sent, `detail.request_id` is the id "
        "the API server and runner logged.",
    ),
    "Unavailable": (  # RunnerUnavailable, and ServerBusy (the request-body budget)
        RunnerUnavailable.status_code,
        "A runner is down, stopping or cannot meet the deadline, or this API process holds "
        "as many request bodies as it may: retry after Retry-After seconds.",
    ),
    "GatewayTimeout": (
        GatewayTimeout.status_code,
        f"The request's end-to-end time (${contract.ENV_REQUEST_TIMEOUT}) ran out.",
    ),
    "HeadersTooLarge": (431, "The request's headers are too large or too many."),
}
_RUNNER_ERRORS = ("Overloaded",)


@dataclass(frozen=True)
class Operation:
    """One API to document: POST `route`, its body read by `input`, answered by `output`."""

    name: str
    route: str
    input: IODescriptor
    output: IODescriptor
    summary: str = ""
    description: str = ""
    calls_runners: bool = True
    """Whether it may answer 429 and 503 (its service has runners)."""
    tags: Sequence[str] = ("APIs",)


@dataclass
class Components:
    """Named schemas gathered from every body; a name two different schemas want is
    given a suffix in the later one (its own `$ref`s rewritten to match)."""

    schemas: dict[str, Any] = field(default_factory=dict)

    def add(self, body: BodySchema) -> dict[str, dict[str, Any]]:
        renames: dict[str, str] = {}
        for name, schema in body.definitions.items():
            final, n = name, 1
            while final in self.schemas and self.schemas[final] != schema:
                n += 1
                final = f"{name}{n}"
            if final != name:
                renames[name] = final
        for name, schema in body.definitions.items():
            self.schemas[renames.get(name, name)] = _renamed(schema, renames)
        return _renamed(body.content, renames)


def _renamed(value: Any, renames: dict[str, str]) -> Any:
    if not renames:
        return value
    refs = {
        SCHEMA_REF.format(model=old): SCHEMA_REF.format(model=new) for old, new in renames.items()
    }
    return json.loads(json.dumps(value), object_hook=lambda d: _swap_ref(d, refs))


def _swap_ref(node: dict[str, Any], refs: dict[str, str]) -> dict[str, Any]:
    ref = node.get("$ref")
    if isinstance(ref, str) and ref in refs:
        node["$ref"] = refs[ref]
    return node


def _body(op: Operation, descriptor: IODescriptor, role: Role) -> BodySchema:
    """The descriptor's schema; a descriptor that cannot describe itself (a pydantic model
    with a field JSON Schema has no form for) is documented as any body, never a failure
    to start the server."""
    try:
        return descriptor.schema(role)
    except Exception as exc:
        log.warning("api=%s role=%s event=no_openapi_schema error=%r", op.name, role, exc)
        return BodySchema(
            f"Not described ({type(exc).__name__}).", {descriptor.media_type: {"schema": {}}}
        )


def operations(service: Service) -> list[Operation]:
    """The service's `@svc.api`s as operations."""
    return [
        Operation(
            name=api.name,
            route=api.route,
            input=api.input,
            output=api.output,
            summary=_first_line(api),
            description=inspect.getdoc(api.func) or "",
            calls_runners=bool(service.runners),
        )
        for api in service.apis.values()
    ]


def _first_line(api: API) -> str:
    doc = inspect.getdoc(api.func)
    return doc.splitlines()[0] if doc else api.name


def error_ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/responses/{name}"}


def json_content(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def build_document(
    title: str,
    ops: Iterable[Operation],
    *,
    description: str = "",
    extra_paths: dict[str, Any] | None = None,
    extra_schemas: dict[str, Any] | None = None,
    extra_tags: Sequence[dict[str, str]] = (),
) -> dict[str, Any]:
    """The OpenAPI document: each operation, the health and metrics paths, then
    `extra_paths` (other protocols the server speaks, with their `extra_schemas`)."""
    components = Components({ERROR_SCHEMA: _ERROR_BODY, **(extra_schemas or {})})
    paths: dict[str, Any] = {}
    for op in ops:
        request = _body(op, op.input, "request")
        response = _body(op, op.output, "response")
        errors = ["BadInput", "PayloadTooLarge", "InternalError", "Unavailable", "GatewayTimeout"]
        if op.calls_runners:
            errors += _RUNNER_ERRORS
        responses: dict[str, Any] = {
            "200": {"description": response.description, "content": components.add(response)}
        }
        for name in errors:
            responses[str(ERROR_RESPONSES[name][0])] = error_ref(name)
        paths[op.route] = {
            "post": {
                "operationId": op.name,
                "summary": op.summary or op.name,
                "description": op.description,
                "tags": list(op.tags),
                "parameters": [REQUEST_ID_REF],
                "requestBody": {
                    "required": True,
                    "description": request.description,
                    "content": components.add(request),
                },
                "responses": dict(sorted(responses.items())),
            }
        }
    paths |= _health_paths()
    paths |= extra_paths or {}
    responses_components: dict[str, Any] = {}
    for name, (status, text) in ERROR_RESPONSES.items():
        responses_components[name] = {
            "description": f"{status}: {text}",
            "content": json_content({"$ref": SCHEMA_REF.format(model=ERROR_SCHEMA)}),
        }
    responses_components["Unavailable"]["headers"] = {
        "Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}
    }
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": title,
            "version": __version__,
            "description": description
            or (
                "Served by Kubento. Every error is the JSON body `Error`; any path answers "
                "404 when unknown, 405 for a method it does not take and 431 for headers "
                "that are too large."
            ),
        },
        "tags": [
            {"name": "APIs", "description": "The service's APIs."},
            {"name": "Health", "description": "Probes and Prometheus metrics."},
            *extra_tags,
        ],
        "paths": paths,
        "components": {
            "schemas": components.schemas,
            "responses": responses_components,
            "parameters": {"RequestId": _REQUEST_ID_PARAMETER},
        },
    }


REQUEST_ID_REF = {"$ref": "#/components/parameters/RequestId"}
_REQUEST_ID_PARAMETER: dict[str, Any] = {
    "name": "x-request-id",
    "in": "header",
    "required": False,
    "description": "Echoed in the answer and passed to runners; generated when absent. "
    "Any other value is replaced by a generated one.",
    "schema": {"type": "string", "pattern": contract.REQUEST_ID_PATTERN},
}

_TOKEN = re.compile(r"[^A-Za-z0-9_]")


def _health_paths() -> dict[str, Any]:
    def get(op_id: str, summary: str, ok: dict[str, Any], **more: Any) -> dict[str, Any]:
        return {
            "get": {
                "operationId": f"kubento_{_TOKEN.sub('_', op_id)}",
                "summary": summary,
                "tags": ["Health"],
                "responses": {"200": ok, **more},
            }
        }

    status = {
        "type": "object",
        "required": ["status"],
        "properties": {"status": {"type": "string"}},
    }
    ready = {
        "type": "object",
        "required": ["status", "runners"],
        "properties": {
            "status": {"const": "ready"},
            "runners": {"type": "array", "items": {"type": "string"}},
        },
    }
    return {
        contract.LIVENESS_PATH: get(
            "livez",
            "Liveness: the API server process answers.",
            {"description": "Alive.", "content": json_content(status)},
        ),
        contract.READINESS_PATH: get(
            "readyz",
            "Readiness: every runner answers its gRPC health check.",
            {"description": "Ready.", "content": json_content(ready)},
            **{"503": error_ref("Unavailable")},
        ),
        contract.METRICS_PATH: get(
            "metrics",
            "Prometheus metrics of this API server process.",
            {
                "description": "Prometheus text exposition format.",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            },
        ),
    }


def document(service: Service) -> dict[str, Any]:
    """The service's OpenAPI document, as served at /docs.json and printed by
    `kubento openapi`."""
    models = oip.models(service)
    paths, schemas = oip.openapi_paths(service, models)
    return build_document(
        service.name,
        operations(service),
        extra_paths=paths,
        extra_schemas=schemas,
        extra_tags=[oip.OPENAPI_TAG] if models else [],
    )
