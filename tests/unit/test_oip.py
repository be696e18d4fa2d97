"""The Open Inference Protocol (V2) over real HTTP on loopback, the app served in this
process by uvicorn as `kubento api` serves it: envelopes, binary tensors and errors."""

import json
import threading
import time
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
import uvicorn

import kubento
from kubento._api.app import build_app
from kubento._api.protocol import server_options
from kubento._local.supervisor import free_port
from kubento.io import NumpyNdarray, Text


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    svc = kubento.Service("demo")

    @svc.api(input=NumpyNdarray(dtype="float32", shape=(-1, 2)), output=NumpyNdarray())
    def double(rows: np.ndarray) -> np.ndarray:
        return rows * 2

    @svc.api(input=NumpyNdarray(dtype="int64"), output=NumpyNdarray())
    def count(values: np.ndarray) -> np.ndarray:
        return np.asarray([values.size])

    svc.api(input=Text(), output=Text(), name="shout")(lambda text: text.upper())
    port = free_port()
    config = uvicorn.Config(build_app(svc, {}), host="127.0.0.1", port=port, **server_options())
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    started = time.monotonic()
    while not server.started:
        assert thread.is_alive() and time.monotonic() - started < 30, "uvicorn did not start"
        time.sleep(0.01)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            yield http
    finally:
        server.should_exit = True
        thread.join(10)


def infer(client: httpx.Client, model: str, body: dict, **headers: str) -> tuple[int, dict]:
    reply = client.post(f"/v2/models/{model}/infer", json=body, headers=headers)
    return reply.status_code, reply.json()


def tensor(name: str, array: np.ndarray, datatype: str) -> dict:
    return {
        "name": name,
        "shape": list(array.shape),
        "datatype": datatype,
        "data": array.reshape(-1).tolist(),
    }


def test_json_tensors_round_trip_through_the_api_with_the_id_echoed(client: httpx.Client) -> None:
    rows = np.arange(4, dtype=np.float32).reshape(2, 2)
    status, body = infer(client, "double", {"id": "r-1", "inputs": [tensor("rows", rows, "FP32")]})
    assert status == 200
    assert body == {
        "model_name": "double",
        "id": "r-1",
        "outputs": [{"name": "output", "datatype": "FP32", "shape": [2, 2], "data": [0, 2, 4, 6]}],
    }


def test_binary_tensors_in_and_out(client: httpx.Client) -> None:
    rows = np.arange(6, dtype=np.float32).reshape(3, 2)
    raw = rows.tobytes()
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "rows",
                    "shape": [3, 2],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": len(raw)},
                }
            ],
            "parameters": {"binary_data_output": True},
        }
    ).encode()
    reply = client.post(
        "/v2/models/double/infer",
        content=header + raw,
        headers={"inference-header-content-length": str(len(header))},
    )
    assert reply.status_code == 200, reply.text
    length = int(reply.headers["inference-header-content-length"])
    answer = json.loads(reply.content[:length])
    (output,) = answer["outputs"]
    assert output["parameters"]["binary_data_size"] == rows.nbytes
    data = np.frombuffer(reply.content[length:], dtype="<f4").reshape(output["shape"])
    np.testing.assert_array_equal(data, rows * 2)


def test_metadata_names_tensors_with_v2_datatypes_and_free_sizes_as_minus_one(
    client: httpx.Client,
) -> None:
    assert client.get("/v2/models/double").json() == {
        "name": "double",
        "versions": [],
        "platform": "kubento",
        "inputs": [{"name": "rows", "datatype": "FP32", "shape": [-1, 2]}],
        "outputs": [{"name": "output"}],
    }
    assert client.get("/v2/models/count").json()["inputs"] == [
        {"name": "values", "datatype": "INT64"}
    ]


def test_server_health_and_metadata(client: httpx.Client) -> None:
    assert client.get("/v2/health/live").status_code == 200
    assert client.get("/v2/health/ready").status_code == 200
    assert client.get("/v2/models/double/ready").status_code == 200
    assert client.get("/v2").json()["extensions"] == ["binary_tensor_data"]


def one(shape: list[int], datatype: str, data: list, name: str = "rows", **more: object) -> dict:
    """A request with one input tensor."""
    return {"inputs": [{"name": name, "shape": shape, "datatype": datatype, "data": data}], **more}


@pytest.mark.parametrize(
    ("model", "body", "status", "message"),
    [
        (
            "shout",
            {"inputs": []},
            404,
            "unknown model 'shout'; this server has ['count', 'double']",
        ),
        (
            "double",
            one([1, 2], "FP64", [1, 2]),
            400,
            "expected an array of dtype float32, got float64",
        ),
        (
            "double",
            one([1, 3], "FP32", [1, 2, 3]),
            400,
            "expected an array of shape (*, 2), got (1, 3)",
        ),
        (
            "double",
            one([2, 2], "FP32", [1, 2]),
            400,
            "2 values cannot have shape [2, 2] (4 values)",
        ),
        (
            "double",
            one([1, 2], "FP32", [1, 2], name="x"),
            400,
            "takes one input, 'rows'; got ['x']",
        ),
        (
            "double",
            one([1, 2], "BYTES", ["a", "b"]),
            400,
            "datatype 'BYTES' is not one this server",
        ),
        (
            "count",
            one([2], "INT64", [1.5, 2], name="values"),
            400,
            "expected int64 values, got float",
        ),
        (
            "double",
            one([1, 2], "FP32", [1, 2], outputs=[{"name": "y"}]),
            400,
            "one output, 'output'",
        ),
        (
            "double",
            {"inputs": "rows"},
            400,
            "not a V2 inference request: inputs: Input should be a",
        ),
        ("double", one([-1, 2], "FP32", [1, 2]), 400, "negative size"),
    ],
)
def test_bad_requests_get_the_protocols_error_body_saying_what_was_wrong(
    client: httpx.Client, model: str, body: dict, status: int, message: str
) -> None:
    got_status, got = infer(client, model, body)
    assert (got_status, list(got)) == (status, ["error"])
    assert message in got["error"]


def test_nan_in_json_data_is_a_400_as_on_the_apis_own_route(client: httpx.Client) -> None:
    body = b'{"inputs": [{"name": "rows", "shape": [1, 2], "datatype": "FP32", "data": [1, NaN]}]}'
    reply = client.post("/v2/models/double/infer", content=body)
    assert reply.status_code == 400
    assert "not valid JSON" in reply.json()["error"]


def test_binary_data_that_does_not_fit_the_shape_is_a_400(client: httpx.Client) -> None:
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "rows",
                    "shape": [2, 2],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": 8},
                }
            ]
        }
    ).encode()
    reply = client.post(
        "/v2/models/double/infer",
        content=header + b"\0" * 8,
        headers={"inference-header-content-length": str(len(header))},
    )
    assert reply.status_code == 400
    assert "8 bytes of FP32 cannot have shape [2, 2] (16 bytes)" in reply.json()["error"]
    reply = client.post(
        "/v2/models/double/infer", content=b"{}", headers={"inference-header-content-length": "99"}
    )
    assert reply.status_code == 400
    assert "byte length of the JSON header" in reply.json()["error"]
