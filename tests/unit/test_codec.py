"""The wire codec: values survive the trip, tensors decode zero-copy, nothing pickles."""

import numpy as np
import pytest

from kubento._proto import runner_pb2 as pb
from kubento._remote import codec


@pytest.mark.parametrize(
    "array",
    [
        np.arange(12, dtype=np.float32).reshape(3, 4),
        np.array([[1, 2], [3, 4]], dtype=">i8"),
        np.array([True, False]),
        np.zeros((0, 5), dtype=np.float64),
        np.array(["a", "bc"]),
        np.arange(6, dtype=np.int16).reshape(2, 3).T,  # not C-contiguous
    ],
)
def test_arrays_round_trip_with_dtype_and_shape(array: np.ndarray) -> None:
    wire = pb.Value.FromString(codec.encode(array).SerializeToString())
    decoded = codec.decode(wire)
    assert decoded.dtype == array.dtype
    assert decoded.shape == array.shape
    np.testing.assert_array_equal(decoded, array)


def test_tensor_decoding_does_not_copy() -> None:
    value = codec.encode(np.arange(1000, dtype=np.float32))
    decoded = codec.decode(value)
    assert not decoded.flags.owndata
    assert not decoded.flags.writeable


@pytest.mark.parametrize(
    "value", ["text", b"\x00raw", {"a": [1, 2.5, None]}, 7, None, (np.ones(2), "x", b"y")]
)
def test_other_values_round_trip(value: object) -> None:
    decoded = codec.decode(pb.Value.FromString(codec.encode(value).SerializeToString()))
    if isinstance(value, tuple):
        np.testing.assert_array_equal(decoded[0], value[0])
        assert decoded[1:] == value[1:]
    else:
        assert decoded == value


def test_object_arrays_are_refused_because_they_would_need_pickle() -> None:
    with pytest.raises(codec.CodecError, match="pickle"):
        codec.encode(np.array([object()], dtype=object))


def test_a_tensor_whose_bytes_do_not_match_its_shape_is_rejected() -> None:
    bad = pb.Value(tensor=pb.Tensor(dtype="<f4", shape=[3], data=b"\x00" * 8))
    with pytest.raises(codec.CodecError, match="needs 12 bytes, got 8"):
        codec.decode(bad)


def test_an_object_dtype_on_the_wire_is_rejected() -> None:
    with pytest.raises(codec.CodecError, match="not allowed"):
        codec.decode(pb.Value(tensor=pb.Tensor(dtype="|O", shape=[1], data=b"\x00" * 8)))


def test_values_that_cannot_cross_the_wire_say_what_is_allowed() -> None:
    with pytest.raises(codec.CodecError, match="numpy arrays, bytes, str"):
        codec.encode(object())


def test_a_shape_whose_byte_count_overflows_int64_is_refused() -> None:
    tensor = pb.Tensor(dtype="<f8", shape=[2**40, 2**40], data=b"")
    with pytest.raises(codec.CodecError, match="needs"):
        codec.decode_tensor(tensor)


def test_malformed_dtypes_are_codec_errors() -> None:
    for dtype in ("nonsense", "<f4x", "(", "O"):
        with pytest.raises(codec.CodecError):
            codec.decode_tensor(pb.Tensor(dtype=dtype, shape=[1], data=b"\0" * 8))


def test_over_deep_json_is_a_codec_error() -> None:
    with pytest.raises(codec.CodecError, match="nested too deeply"):
        codec.decode(pb.Value(json="[" * 100_000 + "]" * 100_000))
