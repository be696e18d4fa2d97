"""IO descriptors: bodies become values, and mismatches say what was expected."""

import io
import json

import numpy as np
import pytest
from pydantic import BaseModel

from kubento.exceptions import BadInput, BadOutput
from kubento.io import JSON, File, NumpyNdarray, Text

JSON_HEADERS = {"content-type": "application/json"}
NPY_HEADERS = {"content-type": "application/octet-stream"}


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def test_ndarray_from_json_nested_list_with_dtype() -> None:
    value = NumpyNdarray(dtype="float32").from_http(b"[[1, 2], [3, 4.5]]", JSON_HEADERS)
    assert value.dtype == np.float32
    assert value.tolist() == [[1, 2], [3, 4.5]]


def test_ndarray_from_npy_body() -> None:
    array = np.arange(6, dtype=np.float32).reshape(2, 3)
    value = NumpyNdarray(dtype="float32", shape=(-1, 3)).from_http(npy(array), NPY_HEADERS)
    np.testing.assert_array_equal(value, array)


def test_ndarray_shape_mismatch_names_expected_and_got() -> None:
    with pytest.raises(BadInput, match=r"expected an array of shape \(\*, 4\), got \(2, 3\)"):
        NumpyNdarray(shape=(-1, 4)).from_http(b"[[1,2,3],[4,5,6]]", JSON_HEADERS)


def test_ndarray_ragged_json_is_a_bad_input() -> None:
    with pytest.raises(BadInput, match="rectangular"):
        NumpyNdarray().from_http(b"[[1, 2], [3]]", JSON_HEADERS)


def test_ndarray_strings_are_a_bad_input() -> None:
    with pytest.raises(BadInput, match="nested list of numbers"):
        NumpyNdarray(dtype="float32").from_http(b'[["a", "b"]]', JSON_HEADERS)


def test_ndarray_floats_for_an_integer_dtype_are_refused() -> None:
    with pytest.raises(BadInput, match="expected int64 values"):
        NumpyNdarray(dtype="int64").from_http(b"[1.5, 2]", JSON_HEADERS)


def test_ndarray_npy_with_unsafe_dtype_is_refused() -> None:
    with pytest.raises(BadInput, match="expected an array of dtype int32, got float64"):
        NumpyNdarray(dtype="int32").from_http(npy(np.ones(2)), NPY_HEADERS)


def test_ndarray_npy_of_objects_is_refused_without_unpickling() -> None:
    body = npy(np.array([{"a": 1}], dtype=object))
    with pytest.raises(BadInput, match=r"not a valid \.npy"):
        NumpyNdarray().from_http(body, NPY_HEADERS)


def test_ndarray_malformed_json_is_a_bad_input() -> None:
    with pytest.raises(BadInput, match="not valid JSON"):
        NumpyNdarray().from_http(b"[1, 2", JSON_HEADERS)


def test_ndarray_response_is_json_or_npy_by_accept_header() -> None:
    array = np.array([[1.5, 2.0]], dtype=np.float32)
    as_json = NumpyNdarray().to_http(array)
    assert json.loads(as_json.body) == [[1.5, 2.0]]
    as_npy = NumpyNdarray().to_http(array, accept="application/octet-stream")
    np.testing.assert_array_equal(np.load(io.BytesIO(as_npy.body)), array)


def test_from_sample_frees_the_first_dimension() -> None:
    descriptor = NumpyNdarray.from_sample(np.zeros((1, 4), dtype=np.float32))
    assert descriptor.shape == (-1, 4)
    assert descriptor.dtype == np.float32
    assert descriptor.sample_body() == "[[0.0, 0.0, 0.0, 0.0]]"


class Point(BaseModel):
    x: float
    y: float


def test_json_with_model_validates_and_reports_each_error() -> None:
    assert JSON(Point).from_http(b'{"x": 1, "y": 2}', JSON_HEADERS) == Point(x=1, y=2)
    with pytest.raises(BadInput) as caught:
        JSON(Point).from_http(b'{"x": "no"}', JSON_HEADERS)
    assert caught.value.message == "request body does not match Point"
    assert {tuple(err["loc"]) for err in caught.value.detail} == {("x",), ("y",)}


def test_json_response_serialises_numpy_and_models() -> None:
    response = JSON().to_http({"a": np.arange(2), "p": Point(x=1, y=2), "n": np.float32(0.5)})
    assert json.loads(response.body) == {"a": [0, 1], "p": {"x": 1.0, "y": 2.0}, "n": 0.5}


def test_text_must_be_utf8() -> None:
    assert Text().from_http("héllo".encode(), {}) == "héllo"
    with pytest.raises(BadInput, match="UTF-8"):
        Text().from_http(b"\xff\xfe", {})


def test_file_passes_bytes_through() -> None:
    assert File().from_http(b"\x00\x01", {}) == b"\x00\x01"
    assert File().to_http(b"\x02").body == b"\x02"


@pytest.mark.parametrize(
    ("dtype", "body", "message"),
    [
        ("uint8", b"[300]", r"values must lie in \[0, 255\] for uint8, got 300 to 300"),
        ("uint8", b"[-1, 2]", r"in \[0, 255\] for uint8, got -1 to 2"),
        ("int8", b"[[1], [-129]]", r"in \[-128, 127\] for int8"),
        ("float32", b"[1e300]", r"for float32, got 1e\+300"),
    ],
)
def test_ndarray_json_values_the_dtype_cannot_hold_are_refused_not_wrapped(
    dtype: str, body: bytes, message: str
) -> None:
    with pytest.raises(BadInput, match=message):
        NumpyNdarray(dtype=dtype).from_http(body, JSON_HEADERS)


def test_ndarray_json_values_at_the_dtype_limits_are_taken() -> None:
    value = NumpyNdarray(dtype="uint8").from_http(b"[0, 255]", JSON_HEADERS)
    assert value.tolist() == [0, 255]


def test_ndarray_check_casts_typed_arrays_only_when_no_value_can_change() -> None:
    descriptor = NumpyNdarray(dtype="float32", shape=(-1, 2))
    assert descriptor.check(np.ones((1, 2), dtype=np.int8)).dtype == np.float32
    with pytest.raises(BadInput, match="expected an array of dtype float32, got float64"):
        descriptor.check(np.ones((1, 2), dtype=np.float64))
    with pytest.raises(BadInput, match=r"shape \(\*, 2\), got \(1, 3\)"):
        descriptor.check(np.ones((1, 3), dtype=np.float32))


def test_ndarray_schema_nests_arrays_by_shape_with_the_dtypes_bounds() -> None:
    body = NumpyNdarray(dtype="int8", shape=(-1, 2), sample=[[1, 2]]).schema("request")
    as_json = body.content["application/json"]
    assert as_json["schema"] == {
        "type": "array",
        "items": {
            "type": "array",
            "items": {"type": "integer", "minimum": -128, "maximum": 127},
            "minItems": 2,
            "maxItems": 2,
        },
    }
    assert as_json["example"] == [[1, 2]]
    assert body.content["application/octet-stream"]["schema"]["format"] == "binary"
    assert "int8 array of shape (*, 2)" in body.description


def test_ndarray_schema_of_any_shape_is_a_recursive_definition() -> None:
    body = NumpyNdarray(dtype="float32").schema("response")
    ref = body.content["application/json"]["schema"]["$ref"]
    assert ref == "#/components/schemas/NDArray_float32"
    element, nested = body.definitions["NDArray_float32"]["anyOf"]
    assert element["type"] == "number" and element["format"] == "float"
    assert nested == {"type": "array", "items": {"$ref": ref}}


def test_json_schema_of_a_pydantic_model_names_it_and_its_nested_models() -> None:
    class Inner(BaseModel):
        v: int

    class Outer(BaseModel):
        inner: Inner
        tags: list[str] = []

    body = JSON(pydantic_model=Outer).schema("request")
    assert body.content["application/json"]["schema"] == {"$ref": "#/components/schemas/Outer"}
    assert body.definitions["Outer"]["properties"]["inner"] == {
        "$ref": "#/components/schemas/Inner"
    }
    assert body.definitions["Inner"]["required"] == ["v"]


def test_text_and_file_schemas() -> None:
    assert Text().schema("request").content == {"text/plain": {"schema": {"type": "string"}}}
    assert File().schema("response").content == {
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
    }


def test_nan_and_infinity_in_json_input_are_refused() -> None:
    for body in (b"[[NaN, 1.0]]", b"[Infinity]", b"[-Infinity]"):
        with pytest.raises(BadInput, match="not valid JSON"):
            NumpyNdarray().from_http(body, JSON_HEADERS)
    with pytest.raises(BadInput, match="not valid JSON"):
        JSON().from_http(b'{"x": NaN}', JSON_HEADERS)


def test_an_answer_with_nan_is_an_error_never_invalid_json() -> None:
    with pytest.raises(BadOutput, match="NaN or Infinity"):
        NumpyNdarray().to_http(np.array([1.0, np.nan]))
    with pytest.raises(BadOutput, match="NaN or Infinity"):
        JSON().to_http({"score": float("inf")})
    # The strings "NaN" and "Infinity" are fine JSON.
    assert json.loads(JSON().to_http({"s": "NaN", "t": "-Infinity"}).body) == {
        "s": "NaN",
        "t": "-Infinity",
    }
    # As .npy, non-finite values travel as they are.
    reply = NumpyNdarray().to_http(np.array([np.nan]), accept="application/octet-stream")
    assert np.isnan(np.load(io.BytesIO(reply.body))).all()


def test_an_npy_header_declaring_more_data_than_the_body_is_refused_before_allocating() -> None:
    header = npy(np.zeros((1, 1)))[:128]  # the header of a tiny array...
    huge = header.replace(b"(1, 1)", b"(10000000000, 1000)".ljust(6))
    body = huge + b"\0" * 16
    with pytest.raises(BadInput, match="declares shape"):
        NumpyNdarray().from_http(body, NPY_HEADERS)


def test_an_npy_with_a_truncated_body_names_both_sizes() -> None:
    body = npy(np.zeros((4, 3)))[:-8]
    with pytest.raises(BadInput, match=r"declares shape \(4, 3\) of float64 \(96 bytes\)"):
        NumpyNdarray().from_http(body, NPY_HEADERS)
