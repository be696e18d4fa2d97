"""Python values <-> protobuf `Value`: tensors as dtype + shape + raw bytes.

Decoding a tensor is zero-copy (`np.frombuffer` over the message's bytes), so
the arrays it returns are read-only views. Nothing here ever unpickles.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from kubento._proto import runner_pb2 as pb

# Object arrays would need pickle to cross the wire; refuse them by kind.
_WIRE_KINDS = frozenset("biufcSUmM")


class CodecError(ValueError):
    """A value cannot cross the wire, or a message does not decode."""


def encode(value: Any) -> pb.Value:
    if isinstance(value, np.ndarray):
        return pb.Value(tensor=encode_tensor(value))
    if isinstance(value, tuple):
        return pb.Value(sequence=pb.Sequence(items=[encode(item) for item in value]))
    if isinstance(value, bytes | bytearray | memoryview):
        return pb.Value(raw=bytes(value))
    if isinstance(value, str):
        return pb.Value(text=value)
    if isinstance(value, np.generic):
        value = value.item()
    try:
        return pb.Value(json=json.dumps(value, separators=(",", ":")))
    except (TypeError, ValueError) as exc:
        raise CodecError(
            f"cannot send a {type(value).__name__} to a runner: use numpy arrays, "
            f"bytes, str, tuples of those, or JSON-serialisable values ({exc})"
        ) from None


def encode_tensor(array: np.ndarray) -> pb.Tensor:
    if array.dtype.kind not in _WIRE_KINDS:
        raise CodecError(
            f"numpy dtype {array.dtype} cannot be sent to a runner (object arrays need pickle)"
        )
    array = np.ascontiguousarray(array)
    return pb.Tensor(dtype=array.dtype.str, shape=list(array.shape), data=array.tobytes())


def decode(value: pb.Value) -> Any:
    kind = value.WhichOneof("kind")
    if kind == "tensor":
        return decode_tensor(value.tensor)
    if kind == "sequence":
        return tuple(decode(item) for item in value.sequence.items)
    if kind == "raw":
        return value.raw
    if kind == "text":
        return value.text
    if kind == "json":
        try:
            return json.loads(value.json)
        except json.JSONDecodeError as exc:
            raise CodecError(f"malformed JSON value: {exc}") from None
        except RecursionError:
            raise CodecError("JSON value nested too deeply") from None
    if kind is None:
        return None
    raise CodecError(f"unknown value kind {kind!r}")


def decode_tensor(tensor: pb.Tensor) -> np.ndarray:
    try:
        dtype = np.dtype(tensor.dtype)
    except (TypeError, ValueError, SyntaxError):
        raise CodecError(f"unknown tensor dtype {tensor.dtype!r}") from None
    if dtype.kind not in _WIRE_KINDS:
        raise CodecError(f"tensor dtype {tensor.dtype!r} is not allowed on the wire")
    shape = tuple(tensor.shape)
    if any(dim < 0 for dim in shape):
        raise CodecError(f"tensor shape {shape} has a negative dimension")
    expected = math.prod(shape) * dtype.itemsize  # Python ints: a huge shape cannot wrap
    if expected != len(tensor.data):
        raise CodecError(
            f"tensor of dtype {dtype} and shape {shape} needs {expected} bytes, "
            f"got {len(tensor.data)}"
        )
    return np.frombuffer(tensor.data, dtype=dtype).reshape(shape)
