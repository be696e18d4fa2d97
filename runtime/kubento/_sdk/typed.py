"""Type-hint IO for `@kubento.api` methods: the signature is the schema.

HTTP: the body is a JSON object of the named parameters (BentoML 1.2's shape), validated
by a pydantic model built from the type hints, so a bad field is a 400 naming it; an API
whose only parameter is an array also takes a `.npy` body (`application/octet-stream`),
and answers `.npy` when asked. Between services: values cross the gRPC wire as the codec
carries them (tensors, str, bytes, JSON), and are turned back into the hinted types
(pydantic models, arrays) on the other side. Nothing is pickled.
"""

from __future__ import annotations

import contextlib
import inspect
import io as _io
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
from pydantic import BaseModel, BeforeValidator, ConfigDict, TypeAdapter, ValidationError
from pydantic import create_model as _create_model
from starlette.responses import PlainTextResponse, Response

from kubento.exceptions import BadInput
from kubento.io import (
    BINARY_SCHEMA,
    NPY_MEDIA_TYPE,
    SCHEMA_REF,
    BodySchema,
    IODescriptor,
    JSONBody,
    Role,
    _check_npy_size,
    _content_type,
    _parse_json,
)


@dataclass(frozen=True)
class Shape:
    """``Annotated[np.ndarray, Shape((-1, 4))]``: the array's shape, -1 for any size."""

    dims: tuple[int, ...]

    def __init__(self, dims: tuple[int, ...] | list[int]) -> None:
        object.__setattr__(self, "dims", tuple(dims))


@dataclass(frozen=True)
class DType:
    """``Annotated[np.ndarray, DType("float32")]``: the array's dtype (safe casts allowed)."""

    name: str


def _array_spec(hint: Any) -> tuple[bool, DType | None, Shape | None]:
    """(is an array, its dtype, its shape) for a hint like ``Annotated[np.ndarray, ...]``."""
    dtype: DType | None = None
    shape: Shape | None = None
    if typing.get_origin(hint) is Annotated:
        base, *extras = typing.get_args(hint)
        for extra in extras:
            if isinstance(extra, DType):
                dtype = extra
            elif isinstance(extra, Shape):
                shape = extra
        hint = base
    is_array = hint is np.ndarray or typing.get_origin(hint) is np.ndarray
    return is_array, dtype, shape


def _shape_text(dims: tuple[int, ...]) -> str:
    return "(" + ", ".join("*" if d == -1 else str(d) for d in dims) + ")"


def to_array(value: Any, dtype: DType | None = None, shape: Shape | None = None) -> np.ndarray:
    """`value` as an array that meets `dtype` and `shape`; ValueError saying what is wrong."""
    if isinstance(value, np.ndarray):
        array = value
    else:
        try:
            array = np.asarray(value)
        except ValueError as exc:
            raise ValueError(f"expected a rectangular nested list of numbers: {exc}") from None
        if array.dtype.kind not in "biuf":
            raise ValueError(f"expected numbers, got values of kind {array.dtype}")
    if dtype is not None:
        want = np.dtype(dtype.name)
        if array.dtype != want:
            if not isinstance(value, np.ndarray) and array.dtype.kind == "f" and want.kind in "biu":
                raise ValueError(f"expected {want} values, got floating-point numbers")
            if isinstance(value, np.ndarray) and not np.can_cast(array.dtype, want, "same_kind"):
                raise ValueError(f"expected an array of dtype {want}, got {array.dtype}")
            array = array.astype(want)
    if shape is not None:
        ok = array.ndim == len(shape.dims) and all(
            want == -1 or want == got for want, got in zip(shape.dims, array.shape, strict=True)
        )
        if not ok:
            raise ValueError(
                f"expected an array of shape {_shape_text(shape.dims)}, got {tuple(array.shape)}"
            )
    return array


def field_type(hint: Any) -> Any:
    """The pydantic type of a hint: arrays become a validator over nested lists/arrays."""
    is_array, dtype, shape = _array_spec(hint)
    if is_array:
        return Annotated[Any, BeforeValidator(lambda v: to_array(v, dtype, shape))]
    return hint


@dataclass(frozen=True)
class Param:
    name: str
    hint: Any
    default: Any = inspect.Parameter.empty


@dataclass(frozen=True)
class Signature:
    """The parameters and return type of one API method, from its type hints."""

    params: tuple[Param, ...]
    returns: Any

    @classmethod
    def of(cls, func: Callable[..., Any]) -> Signature:
        hints = typing.get_type_hints(func, include_extras=True)
        params = []
        for index, param in enumerate(inspect.signature(func).parameters.values()):
            if index == 0 and param.name == "self":
                continue
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                raise TypeError(
                    f"api {func.__name__!r}: *args and **kwargs cannot be typed inputs; "
                    f"name each parameter"
                )
            params.append(Param(param.name, hints.get(param.name, Any), param.default))
        return cls(tuple(params), hints.get("return", Any))

    def bind(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> tuple[Any, ...]:
        """Positional arguments in signature order, defaults filled in (as they travel)."""
        if len(args) > len(self.params):
            raise TypeError(f"takes {len(self.params)} arguments, got {len(args)}")
        values = list(args)
        for param in self.params[len(args) :]:
            if param.name in kwargs:
                values.append(kwargs[param.name])
            elif param.default is not inspect.Parameter.empty:
                values.append(param.default)
            else:
                raise TypeError(f"missing argument {param.name!r}")
        unknown = set(kwargs) - {p.name for p in self.params[len(args) :]}
        if unknown:
            raise TypeError(f"unexpected arguments {sorted(unknown)}")
        return tuple(values)


def to_wire(value: Any) -> Any:
    """A value as the codec carries it: pydantic models as JSON objects, arrays inside
    containers as lists; top-level arrays, str, bytes and tuples stay as they are."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, tuple):
        return tuple(to_wire(item) for item in value)
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return to_wire(value)


_ADAPTERS: dict[Any, TypeAdapter[Any]] = {}


def from_wire(value: Any, hint: Any) -> Any:
    """A decoded wire value as the hinted type (a pydantic model, an array, ...)."""
    if hint is Any or value is None:
        return value
    is_array, dtype, shape = _array_spec(hint)
    if is_array:
        return to_array(value, dtype, shape)
    if isinstance(hint, type) and isinstance(value, hint) and not issubclass(hint, BaseModel):
        return value
    try:
        adapter = _ADAPTERS[hint]
    except (KeyError, TypeError):
        adapter = TypeAdapter(field_type(hint), config=ConfigDict(arbitrary_types_allowed=True))
        with contextlib.suppress(TypeError):  # an unhashable hint is not cached
            _ADAPTERS[hint] = adapter
    return adapter.validate_python(value)


class TypedInput(IODescriptor):
    """The request body of a typed API: a JSON object of its named parameters."""

    def __init__(self, api: str, signature: Signature) -> None:
        self.api = api
        self.signature = signature
        fields: dict[str, Any] = {
            p.name: (field_type(p.hint), ... if p.default is inspect.Parameter.empty else p.default)
            for p in signature.params
        }
        self.model = _create_model(  # type: ignore[call-overload]
            f"{api}_input",
            __config__=ConfigDict(extra="forbid", arbitrary_types_allowed=True),
            **fields,
        )
        only = signature.params[0] if len(signature.params) == 1 else None
        self.single_array = only if only is not None and _array_spec(only.hint)[0] else None

    def from_http(self, body: bytes, headers: Mapping[str, str]) -> dict[str, Any]:
        if self.single_array is not None and _content_type(headers) == NPY_MEDIA_TYPE:
            _check_npy_size(body)
            try:
                array = np.load(_io.BytesIO(body), allow_pickle=False)
            except (ValueError, OSError, EOFError) as exc:
                raise BadInput(f"request body is not a valid .npy array: {exc}") from None
            data: Any = {self.single_array.name: array}
        else:
            data = _parse_json(body)
            if not isinstance(data, dict):
                names = [p.name for p in self.signature.params]
                raise BadInput(
                    f"api {self.api!r} expects a JSON object of its parameters {names}, "
                    f"got {type(data).__name__}"
                )
        try:
            model = self.model.model_validate(data)
        except ValidationError as exc:
            errors = [
                {"loc": list(err["loc"]), "msg": err["msg"], "type": err["type"]}
                for err in exc.errors()
            ]
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "<body>"
            message = first["msg"].removeprefix("Value error, ")
            raise BadInput(f"field {where!r}: {message}", errors) from None
        return {p.name: getattr(model, p.name) for p in self.signature.params}

    def schema(self, role: Role) -> BodySchema:
        schema = self.model.model_json_schema(ref_template=SCHEMA_REF)
        definitions = schema.pop("$defs", {})
        for param in self.signature.params:  # arrays: nested lists of numbers
            if _array_spec(param.hint)[0]:
                schema["properties"][param.name] |= _array_schema(param.hint)
        content: dict[str, dict[str, Any]] = {"application/json": {"schema": schema}}
        if self.single_array is not None:
            content[NPY_MEDIA_TYPE] = {"schema": BINARY_SCHEMA}
        names = ", ".join(p.name for p in self.signature.params)
        return BodySchema(f"A JSON object of the parameters ({names}).", content, definitions)


def _array_schema(hint: Any) -> dict[str, Any]:
    _, dtype, shape = _array_spec(hint)
    kind = np.dtype(dtype.name).kind if dtype is not None else "f"
    nested: dict[str, Any] = {"type": "integer" if kind in "biu" else "number"}
    for size in reversed(shape.dims if shape is not None else (-1,)):
        nested = {"type": "array", "items": nested}
        if size != -1:
            nested |= {"minItems": size, "maxItems": size}
    return nested


class TypedOutput(IODescriptor):
    """The response of a typed API: JSON, text for str, raw bytes, or `.npy` when asked."""

    def __init__(self, returns: Any = Any) -> None:
        self.returns = returns

    def schema(self, role: Role) -> BodySchema:
        if self.returns is str:
            return BodySchema("Text.", {"text/plain": {"schema": {"type": "string"}}})
        if self.returns is bytes:
            return BodySchema("Raw bytes.", {NPY_MEDIA_TYPE: {"schema": BINARY_SCHEMA}})
        if _array_spec(self.returns)[0]:
            content = {
                "application/json": {"schema": _array_schema(self.returns)},
                NPY_MEDIA_TYPE: {"schema": BINARY_SCHEMA},
            }
            return BodySchema("An array: JSON nested lists, or .npy when asked.", content)
        try:
            schema = TypeAdapter(self.returns).json_schema(
                ref_template=SCHEMA_REF, mode="serialization"
            )
        except Exception:  # a hint pydantic cannot describe: documented as any JSON
            return BodySchema("Any JSON value.", {"application/json": {"schema": {}}})
        definitions = schema.pop("$defs", {})
        return BodySchema("JSON.", {"application/json": {"schema": schema}}, definitions)

    def to_http(self, value: Any, accept: str = "") -> Response:
        if isinstance(value, np.ndarray) and NPY_MEDIA_TYPE in accept:
            buffer = _io.BytesIO()
            np.save(buffer, value, allow_pickle=False)
            return Response(buffer.getvalue(), media_type=NPY_MEDIA_TYPE)
        if isinstance(value, str):
            return PlainTextResponse(value)
        if isinstance(value, bytes | bytearray | memoryview):
            return Response(bytes(value), media_type=NPY_MEDIA_TYPE)
        return JSONBody(value)
