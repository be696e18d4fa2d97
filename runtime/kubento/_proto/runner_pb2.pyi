from collections.abc import Iterable as _Iterable
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar

from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from google.protobuf.internal import containers as _containers

DESCRIPTOR: _descriptor.FileDescriptor

class Tensor(_message.Message):
    __slots__ = ("data", "dtype", "shape")
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    dtype: str
    shape: _containers.RepeatedScalarFieldContainer[int]
    data: bytes
    def __init__(
        self,
        dtype: str | None = ...,
        shape: _Iterable[int] | None = ...,
        data: bytes | None = ...,
    ) -> None: ...

class Sequence(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[Value]
    def __init__(self, items: _Iterable[Value | _Mapping] | None = ...) -> None: ...

class Value(_message.Message):
    __slots__ = ("json", "raw", "sequence", "tensor", "text")
    TENSOR_FIELD_NUMBER: _ClassVar[int]
    JSON_FIELD_NUMBER: _ClassVar[int]
    RAW_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    tensor: Tensor
    json: str
    raw: bytes
    text: str
    sequence: Sequence
    def __init__(
        self,
        tensor: Tensor | _Mapping | None = ...,
        json: str | None = ...,
        raw: bytes | None = ...,
        text: str | None = ...,
        sequence: Sequence | _Mapping | None = ...,
    ) -> None: ...

class CallRequest(_message.Message):
    __slots__ = ("args", "method")
    METHOD_FIELD_NUMBER: _ClassVar[int]
    ARGS_FIELD_NUMBER: _ClassVar[int]
    method: str
    args: _containers.RepeatedCompositeFieldContainer[Value]
    def __init__(
        self,
        method: str | None = ...,
        args: _Iterable[Value | _Mapping] | None = ...,
    ) -> None: ...

class CallResponse(_message.Message):
    __slots__ = ("result",)
    RESULT_FIELD_NUMBER: _ClassVar[int]
    result: Value
    def __init__(self, result: Value | _Mapping | None = ...) -> None: ...
