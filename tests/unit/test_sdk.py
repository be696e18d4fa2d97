"""The user-facing SDK: Runnable methods, Runner naming and configs, Service APIs."""

import asyncio

import numpy as np
import pytest

import kubento
from kubento.io import JSON, NumpyNdarray, Text


class Doubler(kubento.Runnable):
    def __init__(self, factor: int = 2) -> None:
        self.factor = factor

    @kubento.Runnable.method(batchable=True, batch_dim=(0, 1))
    def double(self, x: np.ndarray) -> np.ndarray:
        return x * self.factor

    @kubento.Runnable.method
    async def describe(self, text: str) -> str:
        return f"{text} x{self.factor}"


def test_method_decorator_records_batching_and_async() -> None:
    assert Doubler.methods["double"].batchable is True
    assert Doubler.methods["double"].batch_dim == (0, 1)
    assert Doubler.methods["describe"].batchable is False
    assert Doubler.methods["describe"].is_async is True


def test_integer_batch_dim_applies_to_input_and_output() -> None:
    class One(kubento.Runnable):
        @kubento.Runnable.method(batchable=True, batch_dim=1)
        def f(self, x: np.ndarray) -> np.ndarray:
            return x

    assert One.methods["f"].batch_dim == (1, 1)


def test_bad_batch_dim_is_rejected() -> None:
    with pytest.raises(TypeError, match="batch_dim"):
        kubento.Runnable.method(batchable=True, batch_dim=(0, 1, 2))  # type: ignore[call-overload]


def test_default_runner_name_is_the_lowercased_class_name() -> None:
    assert kubento.Runner(Doubler).name == "doubler"


@pytest.mark.parametrize("name", ["Upper", "sp ace", "-lead", "trail_", "x" * 64, "", "a.b"])
def test_invalid_runner_names_are_rejected_with_the_rule(name: str) -> None:
    with pytest.raises(ValueError, match="lowercase letters, digits, '-' and '_'"):
        kubento.Runner(Doubler, name=name)


def test_yatai_style_underscore_names_are_accepted() -> None:
    assert kubento.Runner(Doubler, name="model_runner_a").name == "model_runner_a"


def test_runner_names_must_be_unique_per_service() -> None:
    with pytest.raises(ValueError, match="two runners named 'same'"):
        kubento.Service(
            "svc",
            runners=[kubento.Runner(Doubler, name="same"), kubento.Runner(Doubler, name="same")],
        )
    with pytest.raises(
        ValueError, match="'a-b' and 'a_b' both become 'a-b' in Kubernetes object names"
    ):
        kubento.Service(
            "svc",
            runners=[kubento.Runner(Doubler, name="a_b"), kubento.Runner(Doubler, name="a-b")],
        )


def test_runner_without_methods_is_rejected() -> None:
    class Empty(kubento.Runnable):
        pass

    with pytest.raises(ValueError, match="has no methods"):
        kubento.Runner(Empty)


def test_method_configs_override_runner_defaults_per_method() -> None:
    runner = kubento.Runner(
        Doubler,
        max_batch_size=8,
        max_latency_ms=50,
        method_configs={"double": {"max_batch_size": 32, "timeout_ms": 1000}},
    )
    assert runner.double.config == {"max_batch_size": 32, "max_latency_ms": 50, "timeout_ms": 1000}
    assert runner.describe.config == {"max_batch_size": 8, "max_latency_ms": 50}


def test_method_configs_name_unknown_methods_and_keys() -> None:
    with pytest.raises(ValueError, match=r"unknown methods \['nope'\]"):
        kubento.Runner(Doubler, method_configs={"nope": {}})
    with pytest.raises(ValueError, match=r"unknown keys \['batch'\]"):
        kubento.Runner(Doubler, method_configs={"double": {"batch": 3}})
    with pytest.raises(ValueError, match="max_batch_size must be a positive integer"):
        kubento.Runner(Doubler, max_batch_size=0)


def test_same_runnable_backs_several_runners_with_their_own_init_params() -> None:
    two = kubento.Runner(Doubler, name="two")
    three = kubento.Runner(Doubler, name="three", runnable_init_params={"factor": 3})
    two.init_local()
    three.init_local()
    x = np.arange(4)
    assert two.double.run(x).tolist() == [0, 2, 4, 6]
    assert three.double.run(x).tolist() == [0, 3, 6, 9]


def test_init_local_runs_sync_and_async_methods_both_ways() -> None:
    runner = kubento.Runner(Doubler, runnable_init_params={"factor": 5})
    runner.init_local()
    assert runner.describe.run("a") == "a x5"
    assert asyncio.run(runner.describe.async_run("b")) == "b x5"
    assert asyncio.run(runner.double.async_run(np.array([1]))).tolist() == [5]


def test_calling_an_uninitialised_runner_says_what_to_do() -> None:
    runner = kubento.Runner(Doubler)
    with pytest.raises(RuntimeError, match="init_local"):
        runner.double.run(np.zeros(1))


def test_runner_run_needs_a_single_method() -> None:
    runner = kubento.Runner(Doubler)
    runner.init_local()
    with pytest.raises(TypeError, match="several methods"):
        runner.run(np.zeros(1))


def test_unknown_runner_method_lists_the_known_ones() -> None:
    with pytest.raises(AttributeError, match=r"has no method 'predict'.*\['describe', 'double'\]"):
        _ = kubento.Runner(Doubler).predict


def test_service_registers_apis_with_default_and_custom_routes() -> None:
    svc = kubento.Service("demo")

    @svc.api(input=NumpyNdarray(), output=NumpyNdarray())
    def first(x: np.ndarray) -> np.ndarray:
        return x

    @svc.api(input=Text(), output=JSON(), route="/v1/second")
    async def second(text: str) -> dict[str, str]:
        return {"text": text}

    assert {api.name: api.route for api in svc.apis.values()} == {
        "first": "/first",
        "second": "/v1/second",
    }
    assert svc.apis["second"].is_async and not svc.apis["first"].is_async


def test_service_rejects_reserved_and_duplicate_routes() -> None:
    svc = kubento.Service("demo")
    with pytest.raises(ValueError, match="reserved"):
        svc.api(input=Text(), output=Text(), route="/readyz")(lambda x: x)
    svc.api(input=Text(), output=Text(), route="/a", name="a")(lambda x: x)
    with pytest.raises(ValueError, match="already has an api at '/a'"):
        svc.api(input=Text(), output=Text(), route="/a", name="b")(lambda x: x)


def test_a_route_without_a_slash_means_the_path_with_one() -> None:
    svc = kubento.Service("demo")
    svc.api(input=Text(), output=Text(), route="predict", name="a")(lambda x: x)
    svc.api(input=Text(), output=Text(), route="v1/models/x:predict", name="b")(lambda x: x)
    assert [api.route for api in svc.apis.values()] == ["/predict", "/v1/models/x:predict"]
    with pytest.raises(ValueError, match="already has an api at '/predict'"):
        svc.api(input=Text(), output=Text(), route="/predict", name="c")(lambda x: x)


@pytest.mark.parametrize(
    "route", ["/prédire", "/a.b/c-d_e~f", "/v1/x:predict", "/a;b=1", "/a@b", "/UPPER/", "//x"]
)
def test_any_route_that_can_be_a_path_is_taken(route: str) -> None:
    svc = kubento.Service("demo")
    svc.api(input=Text(), output=Text(), route=route, name="a")(lambda x: x)
    assert svc.apis["a"].route == route


@pytest.mark.parametrize(
    ("route", "why"),
    [
        ("", "non-empty"),
        ("/a b", "no spaces"),
        ("/a\tb", "no spaces or control characters"),
        ("/a\x00", "control characters"),
        ("/a?b=1", "query string"),
        ("/a#top", "fragment"),
        ("/items/{id}", "path parameters"),
    ],
)
def test_a_route_that_cannot_be_a_path_is_refused_saying_why(route: str, why: str) -> None:
    svc = kubento.Service("demo")
    with pytest.raises(ValueError, match=rf"api 'a': route .*{why}"):
        svc.api(input=Text(), output=Text(), route=route, name="a")(lambda x: x)


@pytest.mark.parametrize(
    "route", ["/", "/docs", "docs.json", "/docs/swagger-ui.css", "/v2", "/v2/models/a/infer"]
)
def test_routes_the_server_answers_itself_are_reserved(route: str) -> None:
    svc = kubento.Service("demo")
    with pytest.raises(ValueError, match="is reserved: the API server answers it itself"):
        svc.api(input=Text(), output=Text(), route=route, name="a")(lambda x: x)


def test_routes_that_only_start_like_reserved_ones_are_free() -> None:
    svc = kubento.Service("demo")
    for name, route in {"a": "/docs2", "b": "/v2x", "c": "/v3/models", "d": "/livez/x"}.items():
        svc.api(input=Text(), output=Text(), route=route, name=name)(lambda x: x)
    assert len(svc.apis) == 4


def test_a_bad_method_config_fails_when_the_runner_is_defined_naming_knob_and_range() -> None:
    with pytest.raises(
        ValueError,
        match=r"method_configs\['double'\]\.max_concurrency must be an integer from 1 to 64",
    ):
        kubento.Runner(Doubler, method_configs={"double": {"max_concurrency": 100}})
    with pytest.raises(ValueError, match=r"method_configs\['double'\]: max_queue_size \(8\)"):
        kubento.Runner(
            Doubler, method_configs={"double": {"max_batch_size": 64, "max_queue_size": 8}}
        )
    with pytest.raises(ValueError, match=r"method_configs\['double'\]: max_queue_size \(1024\)"):
        kubento.Runner(Doubler, method_configs={"double": {"max_batch_size": 2000}})


def test_a_method_named_run_is_reachable_as_runner_run_run_and_runner_run() -> None:
    class Graph(kubento.Runnable):
        @kubento.Runnable.method
        def run(self, x: int) -> int:
            return x + 1

    runner = kubento.Runner(Graph)
    runner.init_local()
    assert runner.run.run(1) == 2
    assert runner.run(1) == 2
    assert asyncio.run(runner.run.async_run(1)) == 2
    assert asyncio.run(runner.async_run(1)) == 2


def test_request_ids_are_bounded_and_of_a_safe_alphabet() -> None:
    from kubento import contract

    assert contract.valid_request_id("abc-123_X.y:z")
    assert contract.valid_request_id("a" * 128)
    for bad in ("", "a" * 129, "bad\tid", "with space", "k=v x=y", "ünïcode", "a\nb"):
        assert not contract.valid_request_id(bad), bad


def test_max_concurrency_is_auto_by_default_and_takes_no_other_word() -> None:
    assert kubento.Runner(Doubler).concurrency() == "auto"
    explicit = kubento.Runner(Doubler, method_configs={"double": {"max_concurrency": 2}})
    assert explicit.concurrency() == 2
    with pytest.raises(
        TypeError, match=r"max_concurrency must be an integer from 1 to 64 or \"auto\", got 'max'"
    ):
        kubento.Runner(Doubler, method_configs={"double": {"max_concurrency": "max"}})
