"""The Open Inference Protocol (V2), REST: what KServe, Triton and MLServer speak.

Every API whose input and output are `NumpyNdarray` is a model named after the API.
An infer call runs the API exactly as its own route does (the same function, the
same dtype and shape rules of its input descriptor); only the envelope differs:
tensors as `{name, shape, datatype, data}` (data flat, row-major), or the binary
tensor extension (raw little-endian bytes after the JSON header), errors as
`{"error": "..."}`.
"""

from __future__ import annotations

import inspect
import json
import math
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import numpy as np
import pydantic_core
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from kubento import __version__, contract
from kubento._sdk.service import API, Service
from kubento.exceptions import BadInput
from kubento.io import JSONBody, NumpyNdarray, array_from_numbers

PLATFORM = "kubento"
EXTENSIONS = ["binary_tensor_data"]
HEADER_LENGTH = "inference-header-content-length"
OUTPUT_NAME = "output"
OPENAPI_TAG = {
    "name": "Open Inference Protocol (V2)",
    "description": "Every API that takes and gives arrays, as a V2 model named after it.",
}

DATATYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
}
_NAMES = {dtype: name for name, dtype in DATATYPES.items()}
Encode = Callable[[Any], Response]


def datatype(dtype: np.dtype[Any]) -> str:
    """The V2 datatype of a numpy dtype; TypeError when V2 has none (BYTES is not numeric)."""
    name = _NAMES.get(dtype.newbyteorder("=") if dtype.byteorder == ">" else dtype)
    if name is None:
        raise TypeError(f"the V2 protocol has no datatype for numpy {dtype}")
    return name


def _carried(descriptor: object) -> bool:
    """An array descriptor whose dtype, when declared, has a V2 datatype (not complex)."""
    if not isinstance(descriptor, NumpyNdarray):
        return False
    return descriptor.dtype is None or descriptor.dtype.newbyteorder("=") in _NAMES


def models(service: Service) -> dict[str, API]:
    """The service's APIs that are V2 models: array in, array out, of datatypes V2 has."""
    return {
        name: api
        for name, api in service.apis.items()
        if _carried(api.input) and _carried(api.output)
    }


def input_name(api: API) -> str:
    """The model's input tensor name: the API function's parameter name."""
    try:
        params = list(inspect.signature(api.func).parameters)
    except (TypeError, ValueError):
        params = []
    return params[0] if params else "input"


def tensor_metadata(name: str, descriptor: NumpyNdarray) -> dict[str, Any]:
    """Name, datatype and shape (-1 for any size); a dtype or shape the descriptor leaves
    open is left out, since any goes."""
    meta: dict[str, Any] = {"name": name}
    if descriptor.dtype is not None:
        meta["datatype"] = datatype(descriptor.dtype)
    if descriptor.shape is not None:
        meta["shape"] = list(descriptor.shape)
    return meta


def model_metadata(api: API) -> dict[str, Any]:
    assert isinstance(api.input, NumpyNdarray) and isinstance(api.output, NumpyNdarray)
    return {
        "name": api.name,
        "versions": [],
        "platform": PLATFORM,
        "inputs": [tensor_metadata(input_name(api), api.input)],
        "outputs": [tensor_metadata(OUTPUT_NAME, api.output)],
    }


def error(status: int, message: str, **headers: str) -> Response:
    """The protocol's error body."""
    return JSONBody({"error": message}, status_code=status, headers=headers)


# The request as the protocol has it; parameters this server does not use are allowed
# and ignored, the ones it uses must have their type (binary_data: {} is no boolean).
class _Open(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)


class _TensorParameters(_Open):
    binary_data_size: int | None = Field(default=None, ge=0)


class _Tensor(_Open):
    name: str
    shape: list[int] = Field(max_length=32)
    datatype: str
    parameters: _TensorParameters = _TensorParameters()
    data: Any = None


class _OutputParameters(_Open):
    binary_data: bool | None = None


class _RequestedOutput(_Open):
    name: str
    parameters: _OutputParameters = _OutputParameters()


class _RequestParameters(_Open):
    binary_data_output: bool = False


class _InferRequest(_Open):
    id: str | None = None
    parameters: _RequestParameters = _RequestParameters()
    inputs: list[_Tensor]
    outputs: list[_RequestedOutput] | None = None


def _parse_request(body: bytes, headers: Headers) -> tuple[_InferRequest, bytes]:
    """The JSON header and the binary data after it (empty without the extension)."""
    declared = headers.get(HEADER_LENGTH)
    if declared is None:
        header, binary = body, b""
    else:
        if not declared.isdigit() or int(declared) > len(body):
            raise BadInput(
                f"{HEADER_LENGTH} must be the byte length of the JSON header, at most the "
                f"body's {len(body)} bytes; got {declared!r}"
            )
        header, binary = body[: int(declared)], body[int(declared) :]
    try:
        # NaN and Infinity are not JSON, refused here as on the APIs' own routes.
        parsed = pydantic_core.from_json(header, allow_inf_nan=False)
        return _InferRequest.model_validate(parsed), binary
    except ValueError as exc:
        if isinstance(exc, ValidationError):
            problems = "; ".join(
                f"{'.'.join(str(part) for part in err['loc']) or 'body'}: {err['msg']}"
                for err in exc.errors()[:5]
            )
            raise BadInput(f"not a V2 inference request: {problems}") from None
        raise BadInput(f"request body is not valid JSON: {exc}") from None


def _tensor_array(tensor: _Tensor, binary: memoryview) -> tuple[np.ndarray, int]:
    """The tensor as an array of its declared datatype and shape, and the binary bytes
    it used."""
    dtype = DATATYPES.get(tensor.datatype)
    if dtype is None:
        raise BadInput(
            f"input {tensor.name!r}: datatype {tensor.datatype!r} is not one this server "
            f"takes; use one of {', '.join(DATATYPES)}"
        )
    if any(size < 0 for size in tensor.shape):
        raise BadInput(f"input {tensor.name!r}: shape {tensor.shape} has a negative size")
    count = math.prod(tensor.shape)  # Python ints: a huge shape cannot wrap around
    size = tensor.parameters.binary_data_size
    if size is not None:
        if size > len(binary):
            raise BadInput(
                f"input {tensor.name!r}: binary_data_size {size!r} is more than the "
                f"{len(binary)} bytes left after the JSON header"
            )
        if size != count * dtype.itemsize:
            raise BadInput(
                f"input {tensor.name!r}: {size} bytes of {tensor.datatype} cannot have "
                f"shape {tensor.shape} ({count * dtype.itemsize} bytes)"
            )
        flat = np.frombuffer(binary[:size], dtype=dtype.newbyteorder("<")).astype(dtype)
        return flat.reshape(tensor.shape), size
    if tensor.data is None:
        raise BadInput(f"input {tensor.name!r} has neither data nor binary_data_size")
    flat = array_from_numbers(tensor.data, dtype).reshape(-1)
    if flat.size != count:
        raise BadInput(
            f"input {tensor.name!r}: {flat.size} values cannot have shape {tensor.shape} "
            f"({count} values)"
        )
    return flat.reshape(tensor.shape), 0


class V2Codec:
    """Infer requests of one protocol; the API function and its descriptor do the rest."""

    def decode(self, api: API, body: bytes, headers: Headers) -> tuple[Any, Encode]:
        assert isinstance(api.input, NumpyNdarray)
        request, binary = _parse_request(body, headers)
        expected = input_name(api)
        if [tensor.name for tensor in request.inputs] != [expected]:
            raise BadInput(
                f"model {api.name!r} takes one input, {expected!r}; got "
                f"{[tensor.name for tensor in request.inputs]}"
            )
        array, used = _tensor_array(request.inputs[0], memoryview(binary))
        if used != len(binary):
            raise BadInput(f"{len(binary) - used} bytes after the JSON header belong to no input")
        value = api.input.check(array)
        as_binary = request.parameters.binary_data_output
        if request.outputs is not None:
            names = [output.name for output in request.outputs]
            if names != [OUTPUT_NAME]:
                raise BadInput(f"model {api.name!r} has one output, {OUTPUT_NAME!r}; got {names}")
            asked = request.outputs[0].parameters.binary_data
            as_binary = as_binary if asked is None else asked

        def encode(result: Any) -> Response:
            return _infer_response(api.name, request.id, np.asarray(result), as_binary)

        return value, encode

    def error(self, status: int, message: str, detail: Any, headers: dict[str, str]) -> Response:
        if status == 500 and isinstance(detail, Mapping) and "request_id" in detail:
            message = f"{message} (request id {detail['request_id']})"
        return error(status, message, **headers)


CODEC = V2Codec()


def _infer_response(model: str, rid: str | None, array: np.ndarray, as_binary: bool) -> Response:
    output: dict[str, Any] = {
        "name": OUTPUT_NAME,
        "datatype": datatype(array.dtype),
        "shape": list(array.shape),
    }
    answer: dict[str, Any] = {"model_name": model, "outputs": [output]}
    if rid is not None:
        answer["id"] = rid
    if not as_binary:
        output["data"] = array.reshape(-1).tolist()
        return JSONBody(answer)
    raw = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
    output["parameters"] = {"binary_data_size": len(raw)}
    header = json.dumps(answer).encode()
    return Response(
        header + raw,
        media_type="application/octet-stream",
        headers={HEADER_LENGTH: str(len(header))},
    )


def routes(
    service: Service,
    endpoint: Callable[[API, V2Codec], ASGIApp],
    ready: Callable[[], Awaitable[bool]],
) -> list[BaseRoute]:
    """The V2 paths; `endpoint` makes the ASGI app that runs an API with a codec (the
    same one its own route uses with the descriptors), `ready` is the /readyz rule."""
    found = models(service)
    infer = {name: endpoint(api, CODEC) for name, api in found.items()}
    prefix = contract.OIP_PREFIX

    async def server_metadata(request: Request) -> Response:
        return JSONBody({"name": service.name, "version": __version__, "extensions": EXTENSIONS})

    async def live(request: Request) -> Response:
        return Response(status_code=200)

    # The protocol: 200 means true, a 4xx false, with an empty body.
    async def server_ready(request: Request) -> Response:
        return Response(status_code=200 if await ready() else 400)

    def model(request: Request) -> API | None:
        return found.get(request.path_params["name"])

    def unknown(request: Request) -> Response:
        name = request.path_params["name"]
        return error(404, f"unknown model {name!r}; this server has {sorted(found)}")

    async def metadata(request: Request) -> Response:
        api = model(request)
        return unknown(request) if api is None else JSONBody(model_metadata(api))

    async def model_ready(request: Request) -> Response:
        if model(request) is None:
            return unknown(request)
        return Response(status_code=200 if await ready() else 400)

    class Infer:
        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            name = scope["path_params"]["name"]
            app = infer.get(name)
            if app is None:
                await unknown(Request(scope, receive))(scope, receive, send)
            else:
                await app(scope, receive, send)

    return [
        Route(prefix, server_metadata, methods=["GET"]),
        Route(f"{prefix}/health/live", live, methods=["GET"]),
        Route(f"{prefix}/health/ready", server_ready, methods=["GET"]),
        Route(f"{prefix}/models/{{name}}", metadata, methods=["GET"]),
        Route(f"{prefix}/models/{{name}}/ready", model_ready, methods=["GET"]),
        Route(f"{prefix}/models/{{name}}/infer", Infer(), methods=["POST"]),
    ]


def accepted_datatypes(descriptor: NumpyNdarray) -> list[str]:
    """The datatypes an input may arrive as: the descriptor's, or any that casts to it
    without changing a value."""
    if descriptor.dtype is None:
        return list(DATATYPES)
    wanted = descriptor.dtype
    return [name for name, dtype in DATATYPES.items() if np.can_cast(dtype, wanted, "safe")]


def _v2_error_response(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/V2Error"}}},
    }


_V2_ERRORS = {
    "400": "The request is not a V2 inference request this model takes (datatype, shape, "
    "input name); `error` says what was expected.",
    "413": f"The body is over the server's limit (${contract.ENV_MAX_REQUEST_BYTES}).",
    "429": "A runner's queue is full: retry later.",
    "500": "API or model code raised; `error` ends with the request id the logs carry.",
    "503": "A runner is down or cannot meet the deadline, or the server is busy: retry "
    "after Retry-After seconds.",
    "504": f"The request's end-to-end time (${contract.ENV_REQUEST_TIMEOUT}) ran out.",
}

_SCHEMAS: dict[str, Any] = {
    "V2Error": {
        "type": "object",
        "required": ["error"],
        "properties": {"error": {"type": "string"}},
    },
    "V2TensorMetadata": {
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": {"type": "string"},
            "datatype": {"enum": list(DATATYPES)},
            "shape": {"type": "array", "items": {"type": "integer"}},
        },
    },
    "V2ModelMetadata": {
        "type": "object",
        "required": ["name", "platform", "inputs", "outputs"],
        "properties": {
            "name": {"type": "string"},
            "versions": {"type": "array", "items": {"type": "string"}},
            "platform": {"type": "string"},
            "inputs": {"type": "array", "items": {"$ref": "#/components/schemas/V2TensorMetadata"}},
            "outputs": {
                "type": "array",
                "items": {"$ref": "#/components/schemas/V2TensorMetadata"},
            },
        },
    },
    "V2InferResponse": {
        "type": "object",
        "required": ["model_name", "outputs"],
        "properties": {
            "model_name": {"type": "string"},
            "id": {"type": "string"},
            "outputs": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name", "datatype", "shape"],
                    "properties": {
                        "name": {"type": "string"},
                        "datatype": {"enum": list(DATATYPES)},
                        "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
                        "data": {"type": "array", "items": {"type": ["number", "boolean"]}},
                        "parameters": {"type": "object"},
                    },
                },
            },
        },
    },
}


def _infer_request_schema(api: API) -> dict[str, Any]:
    assert isinstance(api.input, NumpyNdarray)
    flag = {"type": "boolean"}
    return {
        "type": "object",
        "required": ["inputs"],
        "properties": {
            "id": {"type": "string", "description": "Echoed in the answer."},
            "parameters": {
                "type": "object",
                "properties": {"binary_data_output": flag},
            },
            "inputs": {
                "type": "array",
                "minItems": 1,
                "maxItems": 1,
                "items": {
                    "type": "object",
                    "required": ["name", "shape", "datatype", "data"],
                    "properties": {
                        "name": {"const": input_name(api)},
                        "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
                        "datatype": {"enum": accepted_datatypes(api.input)},
                        "data": {
                            "type": "array",
                            "description": "The values, flat in row-major order.",
                            "items": {"type": ["number", "boolean"]},
                        },
                        "parameters": {"type": "object"},
                    },
                },
            },
            "outputs": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {
                        "name": {"const": OUTPUT_NAME},
                        "parameters": {
                            "type": "object",
                            "properties": {"binary_data": flag},
                        },
                    },
                },
            },
        },
    }


def _infer_example(api: API) -> dict[str, Any] | None:
    assert isinstance(api.input, NumpyNdarray)
    if api.input.sample is None:
        return None
    sample = np.asarray(api.input.sample)
    if sample.dtype.newbyteorder("=") not in _NAMES:
        return None
    tensor = {
        "name": input_name(api),
        "shape": list(sample.shape),
        "datatype": datatype(sample.dtype),
        "data": sample.reshape(-1).tolist(),
    }
    return {"inputs": [tensor]}


def openapi_paths(
    service: Service, found: Mapping[str, API]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The V2 paths of the OpenAPI document (one set per model) and their schemas."""
    if not found:
        return {}, {}
    tag = [OPENAPI_TAG["name"]]
    prefix = contract.OIP_PREFIX
    ready_answers = {
        "200": {"description": "Ready (empty body)."},
        "400": {"description": "Not ready (empty body)."},
    }

    def get(op_id: str, summary: str, responses: dict[str, Any]) -> dict[str, Any]:
        return {
            "get": {"operationId": op_id, "summary": summary, "tags": tag, "responses": responses}
        }

    paths: dict[str, Any] = {
        prefix: get(
            "v2_server_metadata",
            "Server metadata: name, version, protocol extensions.",
            {
                "200": {
                    "description": "Server metadata.",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                }
            },
        ),
        f"{prefix}/health/live": get(
            "v2_live", "Liveness.", {"200": {"description": "Alive (empty body)."}}
        ),
        f"{prefix}/health/ready": get(
            "v2_ready", "Readiness: the same rule as /readyz.", ready_answers
        ),
    }
    for name, api in found.items():
        base = f"{prefix}/models/{name}"
        paths[base] = get(
            f"v2_metadata_{name}",
            f"Metadata of model {name!r}: its input and output tensors.",
            {
                "200": {
                    "description": "Model metadata.",
                    "content": {
                        "application/json": {
                            "schema": {"$ref": "#/components/schemas/V2ModelMetadata"},
                            "example": model_metadata(api),
                        }
                    },
                }
            },
        )
        paths[f"{base}/ready"] = get(
            f"v2_model_ready_{name}", f"Whether model {name!r} is ready.", ready_answers
        )
        media: dict[str, Any] = {"schema": _infer_request_schema(api)}
        example = _infer_example(api)
        if example is not None:
            media["example"] = example
        paths[f"{base}/infer"] = {
            "post": {
                "operationId": f"v2_infer_{name}",
                "summary": f"Run API {name!r} on a V2 tensor.",
                "description": (
                    "JSON tensors, or the binary tensor extension: the JSON header (its byte "
                    f"length in the {HEADER_LENGTH} header) followed by each input's raw "
                    "little-endian bytes, `parameters.binary_data_size` giving their length."
                ),
                "tags": tag,
                "parameters": [{"$ref": "#/components/parameters/RequestId"}],
                "requestBody": {"required": True, "content": {"application/json": media}},
                "responses": {
                    "200": {
                        "description": "The output tensor (binary when asked for).",
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/V2InferResponse"}
                            },
                            "application/octet-stream": {
                                "schema": {"type": "string", "format": "binary"}
                            },
                        },
                    },
                    **{
                        status: _v2_error_response(text)
                        for status, text in _V2_ERRORS.items()
                        if service.runners or status != "429"
                    },
                },
            }
        }
    return paths, _SCHEMAS
