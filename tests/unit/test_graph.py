"""Service classes, depends() and the graph: validation and the one-process mode."""

from __future__ import annotations

import asyncio
from typing import Annotated

import numpy as np
import pytest
from openapi_spec_validator import validate
from pydantic import BaseModel

import kubento
from kubento import DType, Shape, contract
from kubento._sdk.graph import GraphError, GraphService, build_graph, require_addresses
from kubento._sdk.typed import TypedInput
from kubento.exceptions import BadInput


@kubento.service
class Leaf:
    @kubento.api(batchable=True, max_batch_size=8, max_latency_ms=5)
    def twice(self, x: np.ndarray) -> np.ndarray:
        return x * 2


@kubento.service(name="LeftModel")
class Left:
    leaf = kubento.depends(Leaf)

    @kubento.api
    def run(self, x: np.ndarray) -> np.ndarray:
        return self.leaf.twice(x) + 1


@kubento.service
class Right:
    leaf = kubento.depends(Leaf)

    @kubento.api
    async def run(self, x: np.ndarray) -> np.ndarray:
        return await self.leaf.to_async.twice(x) - 1


class Answer(BaseModel):
    left: list[float]
    right: list[float]


@kubento.service(traffic={"timeout": 3})
class Top:
    left = kubento.depends(Left)
    right = kubento.depends(Right)

    @kubento.api(route="/go")
    async def go(self, x: Annotated[np.ndarray, DType("float32"), Shape((-1,))]) -> Answer:
        a, b = await asyncio.gather(self.left.to_async.run(x), self.right.to_async.run(x))
        return Answer(left=a.tolist(), right=b.tolist())


def test_service_decorator_works_with_and_without_parentheses() -> None:
    assert Leaf.__kubento_service__.name == "Leaf"  # type: ignore[attr-defined]
    assert Left.__kubento_service__.name == "LeftModel"  # type: ignore[attr-defined]
    assert Top.__kubento_service__.timeout_s == 3  # type: ignore[attr-defined]


def test_a_diamond_lists_the_shared_service_once_dependencies_first() -> None:
    graph = build_graph(Top)
    assert [c.name for c in graph.services] == ["Leaf", "LeftModel", "Right", "Top"]
    assert [c.name for c in graph.dependencies] == ["Leaf", "LeftModel", "Right"]


def test_class_names_become_dns_labels() -> None:
    assert contract.service_label("LeftModel") == "left-model"
    assert contract.service_label("HTTPEmbed") == "http-embed"
    assert contract.service_label("embed_v2") == "embed-v2"


def test_a_cycle_is_rejected_naming_it() -> None:
    @kubento.service
    class First:
        @kubento.api
        def f(self, x: int) -> int:
            return x

    @kubento.service
    class Second:
        first = kubento.depends(First)

        @kubento.api
        def g(self, x: int) -> int:
            return x

    First.second = kubento.depends(Second)  # type: ignore[attr-defined]
    with pytest.raises(GraphError, match="dependency cycle: First -> Second -> First"):
        build_graph(First)


def test_names_that_collide_as_objects_are_rejected() -> None:
    @kubento.service(name="Model_A")
    class One:
        @kubento.api
        def f(self, x: int) -> int:
            return x

    @kubento.service(name="ModelA")
    class Two:
        @kubento.api
        def f(self, x: int) -> int:
            return x

    @kubento.service
    class Both:
        one = kubento.depends(One)
        two = kubento.depends(Two)

    with pytest.raises(GraphError, match="'ModelA' and 'Model_A' both become 'model-a'"):
        build_graph(Both)


def test_depending_on_an_undecorated_class_says_how_to_fix_it() -> None:
    class Plain:
        pass

    @kubento.service
    class Uses:
        plain = kubento.depends(Plain)

    with pytest.raises(TypeError, match=r"decorate it with @kubento\.service"):
        build_graph(Uses)


def test_a_missing_dependency_address_is_a_startup_error_naming_it() -> None:
    graph = build_graph(Top)
    with pytest.raises(ValueError, match=r"'Top' depends on \['Right'\], which have no address"):
        require_addresses(graph.entry, {"left-model": "127.0.0.1:1"})


def test_the_entry_service_calls_its_direct_dependencies_as_runners() -> None:
    service = GraphService(Top)
    assert sorted(service.runners) == ["left-model", "right"]
    assert service.apis["go"].route == "/go"


def test_single_process_mode_runs_the_whole_graph_with_one_leaf_instance() -> None:
    service = GraphService(Top, local=True)
    service.init_local()
    assert service.runners == {}
    answer = asyncio.run(service.instance().go(np.array([1.0, 2.0], dtype=np.float32)))
    assert answer == Answer(left=[3.0, 5.0], right=[1.0, 3.0])


def test_typed_input_names_the_bad_field() -> None:
    body = TypedInput("go", Top.__kubento_service__.apis["go"].signature)  # type: ignore[attr-defined]
    assert body.from_http(b'{"x": [1, 2]}', {})["x"].dtype == np.float32
    with pytest.raises(BadInput, match="field 'x': expected an array of shape"):
        body.from_http(b'{"x": [[1, 2]]}', {})
    with pytest.raises(BadInput, match="field 'x': Field required"):
        body.from_http(b"{}", {})
    with pytest.raises(BadInput, match="expects a JSON object of its parameters"):
        body.from_http(b"[1, 2]", {})


class Query(BaseModel):
    text: str
    k: int = 3


def test_pydantic_and_scalar_parameters_validate_by_type() -> None:
    @kubento.service
    class Search:
        @kubento.api
        def find(self, query: Query, limit: int, exact: bool = False) -> list[str]:
            return []

    body = TypedInput("find", Search.__kubento_service__.apis["find"].signature)  # type: ignore[attr-defined]
    values = body.from_http(b'{"query": {"text": "a"}, "limit": 2}', {})
    assert values == {"query": Query(text="a"), "limit": 2, "exact": False}
    with pytest.raises(BadInput, match=r"field 'query\.text'"):
        body.from_http(b'{"query": {}, "limit": 2}', {})
    with pytest.raises(BadInput, match="field 'limit'"):
        body.from_http(b'{"query": {"text": "a"}, "limit": "many"}', {})


def test_calling_a_dependency_nothing_serves_says_what_to_do() -> None:
    @kubento.service
    class Alone:
        @kubento.api
        def f(self, x: int) -> int:
            return x

    @kubento.service
    class Lonely:
        alone = kubento.depends(Alone)

    with pytest.raises(RuntimeError, match="service 'Alone' is not initialised"):
        Lonely().alone.f(1)


def test_unknown_dependency_method_lists_the_apis() -> None:
    with pytest.raises(AttributeError, match=r"has no api 'nope'; it has \['twice'\]"):
        _ = Left().leaf.nope


def test_depends_takes_exactly_one_target() -> None:
    with pytest.raises(TypeError, match="takes one of"):
        kubento.depends(Leaf, url="http://x")
    with pytest.raises(TypeError, match="takes one of"):
        kubento.depends()


def test_depends_on_a_deployment_is_its_api_service_in_this_namespace() -> None:
    assert kubento.depends(deployment="search").url == "http://search-api:3000"
    with pytest.raises(ValueError, match="invalid BentoDeployment name"):
        kubento.depends(deployment="Search")


def test_services_outside_the_graph_are_not_components() -> None:
    @kubento.service
    class Relay:
        remote = kubento.depends(url="http://elsewhere:3000")

        @kubento.api
        def f(self, x: int) -> int:
            return x

    assert [c.name for c in build_graph(Relay).services] == ["Relay"]
    assert GraphService(Relay).runners == {}
    with pytest.raises(TypeError, match="takes keyword arguments"):
        Relay().remote.f(1)


def test_the_openapi_document_describes_typed_apis_by_their_parameters() -> None:
    from kubento._api import openapi

    doc = openapi.document(GraphService(Top))
    body = doc["paths"]["/go"]["post"]["requestBody"]["content"]
    schema = body["application/json"]["schema"]
    assert schema["required"] == ["x"]
    assert schema["properties"]["x"]["type"] == "array"
    assert "application/octet-stream" in body  # a single-array API takes .npy
    answer = doc["paths"]["/go"]["post"]["responses"]["200"]["content"]["application/json"]
    assert answer["schema"]["title"] == "Answer"
    assert set(answer["schema"]["properties"]) == {"left", "right"}
    validate(doc)


def test_the_openapi_document_of_the_test_graphs_is_valid() -> None:
    import sys

    from kubento._api import openapi
    from kubento._sdk.loader import load_service
    from tests.integration.processes import SERVICES_DIR

    for entry in ("Diamond", "Fragile", "Outside", "Mixed"):
        validate(openapi.document(load_service(f"graph:{entry}", SERVICES_DIR)))
    assert "graph" in sys.modules
