"""IO descriptors: how an API's HTTP body becomes a Python value and back.

Every mismatch with what the descriptor declares raises `BadInput` with a
message saying what was expected; the API server turns it into a 400.
"""

from __future__ import annotations

import io as _io
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pydantic_core
from pydantic import BaseModel, ValidationError
from starlette.responses import PlainTextResponse, Response

from kubento.exceptions import BadInput, BadOutput

NPY_MEDIA_TYPE = "application/octet-stream"


def _content_type(headers: Mapping[str, str]) -> str:
    return headers.get("content-type", "").split(";")[0].strip().lower()


def _parse_json(body: bytes) -> Any:
    # pydantic-core's parser is several times faster than json.loads on numeric arrays.
    # NaN and Infinity are not JSON: refused, so they never come back as invalid JSON either.
    try:
        return pydantic_core.from_json(body, allow_inf_nan=False)
    except ValueError as exc:
        raise BadInput(f"request body is not valid JSON: {exc}") from None


def json_default(value: Any) -> Any:
    """Serialise numpy values and pydantic models inside JSON responses."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


class JSONBody(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        rendered = pydantic_core.to_json(content, fallback=json_default, inf_nan_mode="strings")
        # The two modes differ only where a float is NaN or infinite, which JSON cannot carry.
        if (b'"NaN"' in rendered or b'Infinity"' in rendered) and rendered != pydantic_core.to_json(
            content, fallback=json_default
        ):
            raise BadOutput(
                "the API's answer has NaN or Infinity, which JSON cannot carry: return finite "
                "numbers, or ask for .npy with 'Accept: application/octet-stream'"
            )
        return rendered


def _check_npy_size(body: bytes) -> None:
    """Refuse a .npy whose header declares more (or less) data than the body carries, before
    numpy allocates what the header asks for."""
    stream = _io.BytesIO(body)
    try:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(stream)
        else:
            shape, _, dtype = np.lib.format.read_array_header_2_0(stream)
    except (ValueError, OSError, EOFError, SyntaxError, TypeError) as exc:
        raise BadInput(f"request body is not a valid .npy array: {exc}") from None
    if dtype.hasobject:
        raise BadInput(
            "request body is not a valid .npy array: it holds Python objects (needs pickle)"
        )
    declared = math.prod(shape) * dtype.itemsize
    carried = len(body) - stream.tell()
    if declared != carried:
        raise BadInput(
            f"the .npy header declares shape {tuple(shape)} of {dtype} ({declared} bytes) "
            f"but the body carries {carried} bytes"
        )


SCHEMA_REF = "#/components/schemas/{model}"
"""Where the OpenAPI document keeps named schemas; `$ref`s in a BodySchema point there."""

Role = Literal["request", "response"]


@dataclass(frozen=True)
class BodySchema:
    """An HTTP body as OpenAPI describes it: a JSON Schema per media type, plus the named
    schemas (`definitions`) those refer to through SCHEMA_REF."""

    description: str
    content: dict[str, dict[str, Any]]
    definitions: dict[str, dict[str, Any]] = field(default_factory=dict)


BINARY_SCHEMA: dict[str, Any] = {"type": "string", "format": "binary"}


class IODescriptor:
    """Base class: parse a request body, render a response, describe both for OpenAPI."""

    media_type = "application/json"

    def schema(self, role: Role) -> BodySchema:
        """The request body (role "request") or 200 response (role "response") this takes or
        gives. Descriptors of their own describe themselves by overriding this."""
        return BodySchema("Any body.", {self.media_type: {"schema": {}}})

    def from_http(self, body: bytes, headers: Mapping[str, str]) -> Any:
        raise NotImplementedError

    def to_http(self, value: Any, accept: str = "") -> Response:
        raise NotImplementedError

    def sample_body(self) -> str | None:
        """A request body for the example curl printed by `kubento serve`, if known."""
        return None


class NumpyNdarray(IODescriptor):
    """A numpy array: JSON nested lists, or a .npy file as application/octet-stream.

    `shape` may use -1 for any size, e.g. ``(-1, 4)`` for any number of rows of 4.
    """

    def __init__(
        self,
        dtype: str | np.dtype[Any] | type | None = None,
        shape: Sequence[int] | None = None,
        sample: Any = None,
    ) -> None:
        self.dtype = np.dtype(dtype) if dtype is not None else None
        self.shape = tuple(shape) if shape is not None else None
        self.sample = sample

    @classmethod
    def from_sample(cls, sample: Any) -> NumpyNdarray:
        """Declare dtype and shape from an example array; the first dimension stays free."""
        array = np.asarray(sample)
        return cls(dtype=array.dtype, shape=(-1, *array.shape[1:]), sample=array)

    def from_http(self, body: bytes, headers: Mapping[str, str]) -> np.ndarray:
        if _content_type(headers) == NPY_MEDIA_TYPE:
            return self.check(self._from_npy(body))
        array = array_from_numbers(_parse_json(body), self.dtype)
        self._check_shape(array)
        return array

    def check(self, array: np.ndarray) -> np.ndarray:
        """An array that arrived typed (.npy, a V2 tensor) as this descriptor takes it: its
        dtype cast when no value can change (int32 -> float64), else BadInput; shape checked."""
        if self.dtype is not None and array.dtype != self.dtype:
            if not np.can_cast(array.dtype, self.dtype, casting="safe"):
                raise BadInput(
                    f"expected an array of dtype {self.dtype}, got {array.dtype}",
                    {"expected_dtype": str(self.dtype), "got_dtype": str(array.dtype)},
                )
            array = array.astype(self.dtype)
        self._check_shape(array)
        return array

    def _from_npy(self, body: bytes) -> np.ndarray:
        _check_npy_size(body)
        try:
            array = np.load(_io.BytesIO(body), allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise BadInput(f"request body is not a valid .npy array: {exc}") from None
        if not isinstance(array, np.ndarray):
            raise BadInput("request body is not a .npy array")
        return array

    def _check_shape(self, array: np.ndarray) -> None:
        if self.shape is None:
            return
        ok = array.ndim == len(self.shape) and all(
            want == -1 or want == got for want, got in zip(self.shape, array.shape, strict=True)
        )
        if not ok:
            raise BadInput(
                f"expected an array of shape {self._shape_text()}, got {tuple(array.shape)}",
                {"expected_shape": list(self.shape), "got_shape": list(array.shape)},
            )

    def _shape_text(self) -> str:
        assert self.shape is not None
        return "(" + ", ".join("*" if d == -1 else str(d) for d in self.shape) + ")"

    def to_http(self, value: Any, accept: str = "") -> Response:
        array = np.asarray(value)
        if NPY_MEDIA_TYPE in accept:
            buffer = _io.BytesIO()
            np.save(buffer, array, allow_pickle=False)
            return Response(buffer.getvalue(), media_type=NPY_MEDIA_TYPE)
        return JSONBody(array)

    def sample_body(self) -> str | None:
        if self.sample is None:
            return None
        return json.dumps(np.asarray(self.sample).tolist())

    def describe(self) -> str:
        """`float32 array of shape (*, 4)`: what this takes or gives, in words."""
        dtype = str(self.dtype) if self.dtype is not None else "number"
        shape = f"of shape {self._shape_text()}" if self.shape is not None else "of any shape"
        return f"{dtype} array {shape}"

    def schema(self, role: Role) -> BodySchema:
        element = element_schema(self.dtype)
        definitions: dict[str, dict[str, Any]] = {}
        if self.shape is None:
            # Any number of dimensions: a value, or a list of what this describes.
            name = f"NDArray_{self.dtype or 'number'}"
            ref = {"$ref": SCHEMA_REF.format(model=name)}
            definitions[name] = {"anyOf": [element, {"type": "array", "items": ref}]}
            nested: dict[str, Any] = ref
        else:
            nested = element
            for size in reversed(self.shape):
                nested = {"type": "array", "items": nested}
                if size != -1:
                    nested |= {"minItems": size, "maxItems": size}
        as_json: dict[str, Any] = {"schema": nested}
        if role == "request" and self.sample is not None:
            as_json["example"] = np.asarray(self.sample).tolist()
        npy = (
            f"sent with content-type {NPY_MEDIA_TYPE}"
            if role == "request"
            else f"when asked with accept: {NPY_MEDIA_TYPE}"
        )
        return BodySchema(
            f"A {self.describe()}: JSON nested lists, or a .npy file {npy}.",
            {"application/json": as_json, NPY_MEDIA_TYPE: {"schema": BINARY_SCHEMA}},
            definitions,
        )


def array_from_numbers(data: Any, dtype: np.dtype[Any] | None) -> np.ndarray:
    """Nested lists of JSON numbers as an array of `dtype` (inferred when None). Refused:
    ragged lists, values that are not numbers, floats for an integer dtype, and values
    the dtype cannot hold (300 for uint8, 1e300 for float32), which a cast would change."""
    try:
        inferred = np.asarray(data)
    except ValueError as exc:
        raise BadInput(f"expected a rectangular nested list of numbers: {exc}") from None
    if inferred.dtype.kind not in "biuf":
        raise BadInput(
            f"expected a nested list of numbers, got values of kind {inferred.dtype}",
            {"expected_dtype": str(dtype) if dtype else "number"},
        )
    if dtype is None:
        return inferred
    if inferred.dtype.kind == "f" and dtype.kind in "biu":
        raise BadInput(
            f"expected {dtype} values, got floating-point numbers",
            {"expected_dtype": str(dtype)},
        )
    low, high = value_range(dtype)
    narrowing = not np.can_cast(inferred.dtype, dtype, casting="safe")
    if narrowing and inferred.size and low is not None and high is not None:
        smallest, largest = inferred.min(), inferred.max()
        if smallest < low or largest > high:
            raise BadInput(
                f"values must lie in [{low}, {high}] for {dtype}, got {smallest} to {largest}",
                {"expected_dtype": str(dtype)},
            )
    return inferred.astype(dtype)


def value_range(dtype: np.dtype[Any]) -> tuple[Any, Any]:
    """Smallest and largest value of a numeric dtype; (None, None) for others."""
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return int(info.min), int(info.max)
    if dtype.kind == "f":
        finfo = np.finfo(dtype)
        return float(finfo.min), float(finfo.max)
    return None, None


_FLOAT_FORMATS = {"float32": "float", "float64": "double"}


def element_schema(dtype: np.dtype[Any] | None) -> dict[str, Any]:
    """JSON Schema of one array element of `dtype` in a JSON body."""
    if dtype is None:
        return {"type": "number"}
    if dtype.kind == "b":
        return {"type": "boolean"}
    low, high = value_range(dtype)
    schema: dict[str, Any] = {"type": "integer" if dtype.kind in "iu" else "number"}
    if low is not None:
        schema |= {"minimum": low, "maximum": high}
    if str(dtype) in _FLOAT_FORMATS:
        schema["format"] = _FLOAT_FORMATS[str(dtype)]
    return schema


class JSON(IODescriptor):
    """Any JSON value, or one validated by a pydantic model."""

    def __init__(self, pydantic_model: type[BaseModel] | None = None, sample: Any = None) -> None:
        self.pydantic_model = pydantic_model
        self.sample = sample

    def from_http(self, body: bytes, headers: Mapping[str, str]) -> Any:
        data = _parse_json(body)
        if self.pydantic_model is None:
            return data
        try:
            return self.pydantic_model.model_validate(data)
        except ValidationError as exc:
            errors = [
                {"loc": list(err["loc"]), "msg": err["msg"], "type": err["type"]}
                for err in exc.errors()
            ]
            raise BadInput(
                f"request body does not match {self.pydantic_model.__name__}", errors
            ) from None

    def to_http(self, value: Any, accept: str = "") -> Response:
        return JSONBody(value)

    def sample_body(self) -> str | None:
        if self.sample is None:
            return None
        return json.dumps(self.sample, default=json_default)

    def schema(self, role: Role) -> BodySchema:
        as_json: dict[str, Any] = {"schema": {}}
        if role == "request" and self.sample is not None:
            as_json["example"] = json.loads(json.dumps(self.sample, default=json_default))
        if self.pydantic_model is None:
            return BodySchema("Any JSON value.", {"application/json": as_json})
        model = self.pydantic_model
        schema = model.model_json_schema(
            ref_template=SCHEMA_REF, mode="validation" if role == "request" else "serialization"
        )
        definitions = schema.pop("$defs", {})
        if "$ref" in schema:  # a recursive model is itself one of its definitions
            as_json["schema"] = schema
        else:
            name = re.sub(r"[^A-Za-z0-9._-]", "_", model.__name__)  # Model[int] -> Model_int_
            definitions[name] = schema
            as_json["schema"] = {"$ref": SCHEMA_REF.format(model=name)}
        return BodySchema(f"A JSON {model.__name__}.", {"application/json": as_json}, definitions)


class Text(IODescriptor):
    """UTF-8 text."""

    media_type = "text/plain"

    def from_http(self, body: bytes, headers: Mapping[str, str]) -> str:
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadInput(f"request body is not valid UTF-8 text: {exc}") from None

    def to_http(self, value: Any, accept: str = "") -> Response:
        return PlainTextResponse(str(value))

    def schema(self, role: Role) -> BodySchema:
        return BodySchema("UTF-8 text.", {self.media_type: {"schema": {"type": "string"}}})


class File(IODescriptor):
    """Raw bytes, any content type."""

    media_type = "application/octet-stream"

    def from_http(self, body: bytes, headers: Mapping[str, str]) -> bytes:
        return body

    def to_http(self, value: Any, accept: str = "") -> Response:
        if not isinstance(value, bytes | bytearray | memoryview):
            raise TypeError(f"a File output must be bytes, got {type(value).__name__}")
        return Response(bytes(value), media_type=self.media_type)

    def schema(self, role: Role) -> BodySchema:
        return BodySchema("Raw bytes.", {self.media_type: {"schema": BINARY_SCHEMA}})


__all__ = ["JSON", "BodySchema", "File", "IODescriptor", "NumpyNdarray", "Text"]
