"""The OpenAPI document: generated from the IO descriptors, valid OpenAPI 3.1."""

import numpy as np
import pytest
from openapi_spec_validator import validate
from pydantic import BaseModel

import kubento
from kubento._api.openapi import Operation, build_document, document
from kubento.io import JSON, File, NumpyNdarray, Text


class Point(BaseModel):
    x: float
    y: float


def demo_service(runners: bool = False) -> kubento.Service:
    svc = kubento.Service("demo")
    if runners:

        class Echo(kubento.Runnable):
            @kubento.Runnable.method
            def echo(self, x: object) -> object:
                return x

        svc = kubento.Service("demo", runners=[kubento.Runner(Echo, name="echo")])

    @svc.api(input=NumpyNdarray(dtype="float32", shape=(-1, 4)), output=NumpyNdarray())
    def classify(features: np.ndarray) -> np.ndarray:
        """Classify rows of 4 features.

        One class index per row."""
        return features

    @svc.api(input=JSON(pydantic_model=Point), output=JSON(), route="v1/norm")
    def norm(point: Point) -> float:
        return 0.0

    @svc.api(input=Text(), output=Text())
    def shout(text: str) -> str:
        return text

    @svc.api(input=File(), output=File())
    def reverse(data: bytes) -> bytes:
        return data

    return svc


@pytest.fixture(scope="module")
def doc() -> dict:
    return document(demo_service())


def test_the_document_is_valid_openapi_3_1(doc: dict) -> None:
    validate(doc)
    assert doc["openapi"] == "3.1.0"
    assert doc["info"]["title"] == "demo"


def test_every_api_is_a_post_at_its_route_named_after_it(doc: dict) -> None:
    posts = {
        path: item["post"]["operationId"] for path, item in doc["paths"].items() if "post" in item
    }
    assert {
        "/classify": "classify",
        "/v1/norm": "norm",
        "/shout": "shout",
        "/reverse": "reverse",
    }.items() <= posts.items()


def test_an_apis_docstring_is_its_summary_and_description(doc: dict) -> None:
    op = doc["paths"]["/classify"]["post"]
    assert op["summary"] == "Classify rows of 4 features."
    assert "One class index per row." in op["description"]


def test_request_and_response_bodies_come_from_the_descriptors(doc: dict) -> None:
    classify = doc["paths"]["/classify"]["post"]
    content = classify["requestBody"]["content"]
    assert set(content) == {"application/json", "application/octet-stream"}
    assert content["application/json"]["schema"]["items"]["maxItems"] == 4
    norm = doc["paths"]["/v1/norm"]["post"]["requestBody"]["content"]["application/json"]
    assert norm["schema"] == {"$ref": "#/components/schemas/Point"}
    assert doc["components"]["schemas"]["Point"]["required"] == ["x", "y"]
    shout = doc["paths"]["/shout"]["post"]["responses"]["200"]["content"]
    assert shout == {"text/plain": {"schema": {"type": "string"}}}


def test_errors_share_one_body_with_the_statuses_the_server_answers(doc: dict) -> None:
    error = doc["components"]["schemas"]["Error"]
    assert error["required"] == ["error", "detail"]
    responses = doc["paths"]["/shout"]["post"]["responses"]
    # A service without runners never fills a runner's queue.
    assert sorted(responses) == ["200", "400", "413", "500", "503", "504"]
    assert set(doc["components"]["responses"]) >= {"NotFound", "MethodNotAllowed"}


def test_apis_of_a_service_with_runners_document_429_too() -> None:
    doc = document(demo_service(runners=True))
    assert sorted(doc["paths"]["/shout"]["post"]["responses"]) == [
        "200", "400", "413", "429", "500", "503", "504",
    ]  # fmt: skip
    assert "Retry-After" in doc["components"]["responses"]["Unavailable"]["headers"]


def test_health_and_metrics_paths_are_documented(doc: dict) -> None:
    assert {"/livez", "/readyz", "/metrics"} <= set(doc["paths"])
    assert "503" in doc["paths"]["/readyz"]["get"]["responses"]


def test_array_apis_are_documented_as_v2_models_too(doc: dict) -> None:
    assert {"/v2", "/v2/health/ready", "/v2/models/classify", "/v2/models/classify/infer"} <= set(
        doc["paths"]
    )
    assert "/v2/models/shout/infer" not in doc["paths"]
    infer = doc["paths"]["/v2/models/classify/infer"]["post"]
    tensor = infer["requestBody"]["content"]["application/json"]["schema"]["properties"]
    item = tensor["inputs"]["items"]["properties"]
    assert item["name"] == {"const": "features"}
    assert "FP32" in item["datatype"]["enum"] and "FP64" not in item["datatype"]["enum"]


def test_a_service_without_array_apis_has_no_v2_paths() -> None:
    svc = kubento.Service("text")
    svc.api(input=Text(), output=Text(), name="a")(lambda x: x)
    doc = document(svc)
    validate(doc)
    assert not [path for path in doc["paths"] if path.startswith("/v2")]


def test_two_models_of_one_name_get_distinct_schemas() -> None:
    def model(field: str) -> type[BaseModel]:
        return type("Item", (BaseModel,), {"__annotations__": {field: int}})

    ops = [
        Operation("a", "/a", JSON(pydantic_model=model("left")), JSON()),
        Operation("b", "/b", JSON(pydantic_model=model("right")), JSON()),
    ]
    doc = build_document("t", ops)
    validate(doc)
    refs = [
        doc["paths"][p]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        for p in ("/a", "/b")
    ]
    assert refs == ["#/components/schemas/Item", "#/components/schemas/Item2"]
    assert "right" in doc["components"]["schemas"]["Item2"]["properties"]


def test_array_apis_of_dtypes_v2_lacks_are_not_v2_models() -> None:
    svc = kubento.Service("complex")
    svc.api(input=NumpyNdarray(dtype="complex64"), output=NumpyNdarray(), name="a")(lambda x: x)
    svc.api(input=NumpyNdarray(sample=["a"]), output=NumpyNdarray(), name="b")(lambda x: x)
    doc = document(svc)
    validate(doc)
    assert "/a" in doc["paths"] and "/v2/models/a/infer" not in doc["paths"]
    assert (
        "example"
        not in doc["paths"]["/v2/models/b/infer"]["post"]["requestBody"]["content"][
            "application/json"
        ]
    )


def test_a_model_json_schema_cannot_describe_is_documented_as_any_body() -> None:
    from pydantic import ConfigDict

    class Holder(BaseModel):
        model_config = ConfigDict(arbitrary_types_allowed=True)
        array: np.ndarray

    svc = kubento.Service("arbitrary")
    svc.api(input=JSON(pydantic_model=Holder), output=JSON(), name="a")(lambda x: x)
    doc = document(svc)
    validate(doc)
    body = doc["paths"]["/a"]["post"]["requestBody"]
    assert body["content"] == {"application/json": {"schema": {}}}
    assert body["description"].startswith("Not described")
