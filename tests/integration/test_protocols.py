"""OpenAPI, Swagger UI and the Open Inference Protocol (V2) against real processes:
the quickstart, composition and tagger services, each started once for the module."""

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx
import numpy as np
import pytest
import schemathesis
import tritonclient.http as triton
from hypothesis import HealthCheck, settings
from openapi_spec_validator import validate
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    negative_data_rejection,
    positive_data_acceptance,
)
from tritonclient.utils import InferenceServerException

from kubento._api.openapi import document
from tests.integration.processes import (
    REPO_ROOT,
    SERVICES_DIR,
    example_dir,
    example_module,
    module_from,
    running_service,
)

QUICKSTART = example_module("quickstart")
COMPOSITION = example_module("composition")
TAGGER = module_from(Path(SERVICES_DIR) / "tagger.py", "tagger_service")
DOCUMENTS = {
    "quickstart": document(QUICKSTART.svc),
    "composition": document(COMPOSITION.svc),
    "tagger": document(TAGGER.svc),
}
# The tagger's APIs that fail on purpose (model or API code raising) answer 500 by design.
FAILS_ON_PURPOSE = ["/fail", "/broken", "/refuse", "/v2/models/refuse/infer"]


@pytest.fixture(scope="module")
def tagger() -> Iterator[str]:
    with running_service("tagger:svc", ["tagger"]) as (url, _):
        yield url


@pytest.fixture(scope="module")
def quickstart() -> Iterator[str]:
    with running_service("service:svc", ["classifier"], working_dir=example_dir("quickstart")) as (
        url,
        _,
    ):
        yield url


@pytest.fixture(scope="module")
def composition() -> Iterator[str]:
    runners = ["embed-small", "embed-large", "scorer"]
    with running_service("service:svc", runners, working_dir=example_dir("composition")) as (
        url,
        _,
    ):
        yield url


@pytest.fixture(params=sorted(DOCUMENTS))
def served(request: pytest.FixtureRequest) -> tuple[str, str]:
    """(service name, URL) of each running service."""
    return request.param, request.getfixturevalue(request.param)


def test_each_service_serves_a_valid_openapi_3_1_document(served: tuple[str, str]) -> None:
    name, url = served
    reply = httpx.get(url + "/docs.json")
    assert reply.status_code == 200
    validate(reply.json())
    # What the tests below fuzz is what the server serves.
    assert reply.json() == DOCUMENTS[name]


def test_kubento_openapi_prints_the_served_document(quickstart: str) -> None:
    printed = subprocess.run(
        [sys.executable, "-m", "kubento", "openapi", "service:svc", "--working-dir",
         example_dir("quickstart")],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    assert httpx.get(quickstart + "/docs.json").json() == __import__("json").loads(printed)


# Examples per operation: a few seconds in all here; raise it to fuzz harder.
FUZZ_EXAMPLES = int(os.environ.get("KUBENTO_FUZZ_EXAMPLES", "15"))
FUZZ = settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))


# The one 500 an API that works can get: extreme inputs (float32's largest values) make the
# examples' arithmetic overflow to inf or NaN, which JSON cannot carry (io.JSONBody).
NON_FINITE_ANSWER = "the API's answer has NaN or Infinity"


def fuzz(case: schemathesis.Case, url: str) -> None:
    """Send one generated request and check the answer against the document."""
    response = case.call(base_url=url)
    excluded = []
    if response.status_code == 500:
        assert NON_FINITE_ANSWER in response.text, response.text
        excluded.append(not_a_server_error)
    # Every check but whether the server takes exactly what the schema allows. It takes
    # less: JSON Schema cannot say what a valid .npy file is, nor that a runner wants at
    # least one row. And more: pydantic's lax mode, JSON booleans among numbers, an empty
    # text body. Either way the answer is a 400 or a 200.
    excluded += [positive_data_acceptance, negative_data_rejection]
    case.validate_response(response, excluded_checks=excluded)


@schemathesis.openapi.from_dict(DOCUMENTS["quickstart"]).parametrize()
@FUZZ
def test_fuzzing_quickstart_from_its_document(case: schemathesis.Case, quickstart: str) -> None:
    fuzz(case, quickstart)


@schemathesis.openapi.from_dict(DOCUMENTS["composition"]).parametrize()
@FUZZ
def test_fuzzing_composition_from_its_document(case: schemathesis.Case, composition: str) -> None:
    fuzz(case, composition)


@schemathesis.openapi.from_dict(DOCUMENTS["tagger"]).exclude(path=FAILS_ON_PURPOSE).parametrize()
@FUZZ
def test_fuzzing_tagger_from_its_document(case: schemathesis.Case, tagger: str) -> None:
    fuzz(case, tagger)


class References(HTMLParser):
    """Every src= and href= of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.refs += [value for name, value in attrs if name in ("src", "href") and value]


def test_root_redirects_to_swagger_ui_which_loads_everything_from_the_server_itself(
    quickstart: str,
) -> None:
    root = httpx.get(quickstart + "/")
    assert root.status_code == 307
    page_url = urljoin(quickstart + "/", root.headers["location"])
    assert urlsplit(page_url).path == "/docs"
    page = httpx.get(page_url)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    parser = References()
    parser.feed(page.text)
    assert {ref.rsplit("/", 1)[-1] for ref in parser.refs} >= {
        "swagger-ui.css",
        "swagger-ui-bundle.js",
    }
    for ref in parser.refs:
        asset = urljoin(page_url, ref)
        assert urlsplit(asset).netloc == urlsplit(quickstart).netloc, asset
        reply = httpx.get(asset)
        assert reply.status_code == 200, asset
        assert reply.content, asset
    # Try-it-out sends requests to the server the document came from, this one.
    (document_ref,) = re.findall(r'url: "([^"]+)"', page.text)
    assert httpx.get(urljoin(page_url, document_ref)).json() == DOCUMENTS["quickstart"]


def test_docs_assets_outside_the_page_are_not_served(quickstart: str) -> None:
    reply = httpx.get(quickstart + "/docs/index.html")
    assert reply.status_code == 404
    assert reply.json()["error"] == "Not Found"


# (service fixture, model, a request it takes, a datatype it does not)
ARRAY_APIS = [
    ("quickstart", "classify", np.asarray(QUICKSTART.svc.apis["classify"].input.sample), "FP64"),
    ("composition", "score", COMPOSITION.SAMPLE, "FP64"),
    ("tagger", "tag", np.arange(6, dtype=np.float64).reshape(2, 3) / 4, "BYTES"),
]
WRONG_DATATYPE = {
    "FP64": "expected an array of dtype float32, got float64",
    "BYTES": "datatype 'BYTES' is not one this server takes",
}


def triton_client(url: str) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(urlsplit(url).netloc)


def triton_input(name: str, array: np.ndarray, datatype: str, binary: bool) -> triton.InferInput:
    tensor = triton.InferInput(name, list(array.shape), datatype)
    tensor.set_data_from_numpy(array, binary_data=binary)
    return tensor


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
@pytest.mark.parametrize(("service", "model", "sample", "_"), ARRAY_APIS)
def test_tritonclient_gets_what_the_apis_own_route_answers(
    request: pytest.FixtureRequest,
    service: str,
    model: str,
    sample: np.ndarray,
    _: str,
    binary: bool,
) -> None:
    url = request.getfixturevalue(service)
    client = triton_client(url)
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready(model)
    (spec,) = client.get_model_metadata(model)["inputs"]
    result = client.infer(
        model,
        [triton_input(spec["name"], sample, spec["datatype"], binary)],
        outputs=[triton.InferRequestedOutput("output", binary_data=binary)],
        request_id="v2-call",
    )
    assert result.get_response()["id"] == "v2-call"
    expected = httpx.post(url + "/" + model, json=sample.tolist()).json()
    np.testing.assert_allclose(result.as_numpy("output"), expected, rtol=1e-6)


@pytest.mark.parametrize(("service", "model", "sample", "wrong_datatype"), ARRAY_APIS)
def test_tritonclient_sees_the_v2_errors_saying_what_was_wrong(
    request: pytest.FixtureRequest,
    service: str,
    model: str,
    sample: np.ndarray,
    wrong_datatype: str,
) -> None:
    client = triton_client(request.getfixturevalue(service))
    (spec,) = client.get_model_metadata(model)["inputs"]
    good = triton_input(spec["name"], sample, spec["datatype"], binary=True)

    with pytest.raises(InferenceServerException, match="unknown model 'nope'") as unknown:
        client.infer("nope", [good])
    assert unknown.value.status() == "404"

    with pytest.raises(InferenceServerException, match="unknown model 'nope'") as unknown:
        client.get_model_metadata("nope")
    assert unknown.value.status() == "404"

    as_wrong = sample.astype(np.float64) if wrong_datatype == "FP64" else sample.astype(bytes)
    with pytest.raises(
        InferenceServerException, match=WRONG_DATATYPE[wrong_datatype]
    ) as wrong_type:
        client.infer(model, [triton_input(spec["name"], as_wrong, wrong_datatype, binary=True)])
    assert wrong_type.value.status() == "400"

    narrow = np.ascontiguousarray(sample[:, :2])
    with pytest.raises(InferenceServerException, match=r"expected an array of shape") as shape:
        client.infer(model, [triton_input(spec["name"], narrow, spec["datatype"], binary=True)])
    assert shape.value.status() == "400"
    assert f"got {narrow.shape}" in str(shape.value)


ARTIFACTS = Path(
    os.environ.get("KUBENTO_TEST_ARTIFACTS", REPO_ROOT / ".kubento" / "test-artifacts")
)


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium")
def test_swagger_ui_renders_the_document_in_headless_chromium(quickstart: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    screenshot = ARTIFACTS / "swagger-ui-quickstart.png"
    screenshot.unlink(missing_ok=True)
    dom = subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1280,1400",
         "--virtual-time-budget=8000", f"--screenshot={screenshot}", "--dump-dom",
         quickstart + "/docs"],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    # Swagger UI ran, read OpenAPI 3.1 and listed the operations.
    assert "OAS 3.1" in dom
    listed = re.findall(r'class="opblock-summary-path" data-path="([^"]+)"', dom)
    assert sorted(listed) == sorted(DOCUMENTS["quickstart"]["paths"])
    assert screenshot.stat().st_size > 10_000
