"""`kubento models pull` against a local https server and a real S3-compatible server."""

import hashlib
import http.server
import os
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import httpx
import pytest

from kubento import models
from kubento._local.supervisor import free_port
from kubento._models.pull import PullError, pull
from tests.integration.processes import stop

trustme = pytest.importorskip("trustme")


@pytest.fixture
def archive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[models.Model, Path, str]:
    """A saved model, its exported archive (in a directory served below) and its sha256."""
    monkeypatch.setenv("KUBENTO_HOME", str(tmp_path / "origin"))
    with models.create("clf") as saved:
        (saved.path / "weights.bin").write_bytes(os.urandom(4096))
    (tmp_path / "served").mkdir()
    path = models.export_model("clf", tmp_path / "served" / "clf.tar.gz")
    return saved, path, hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def target(tmp_path: Path) -> models.ModelStore:
    return models.ModelStore(tmp_path / "pod")


@pytest.fixture
def https_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, archive: object) -> Iterator[str]:
    """An https server over tmp_path/served with a certificate from a CA the pull trusts."""
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("KUBENTO_CA_BUNDLE", str(bundle))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "served"))
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"https://localhost:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def assert_nothing_pulled(store: models.ModelStore) -> None:
    assert store.list() == []
    staging = store.models_dir / ".staging"
    assert not staging.exists() or list(staging.iterdir()) == []


def test_pull_over_https_imports_the_model_with_its_digest(
    https_root: str, archive: tuple[models.Model, Path, str], target: models.ModelStore
) -> None:
    saved, _, sha256 = archive
    pulled = pull(str(saved.tag), f"{https_root}/clf.tar.gz", sha256, target)
    assert pulled.info.digest == saved.info.digest
    assert target.get(str(saved.tag)).path == pulled.path
    pulled.verify()


def test_pull_over_https_with_the_wrong_sha256_names_the_model_and_source(
    https_root: str, archive: tuple[models.Model, Path, str], target: models.ModelStore
) -> None:
    saved, _, sha256 = archive
    source = f"{https_root}/clf.tar.gz"
    wrong = ("0" if sha256[0] != "0" else "1") + sha256[1:]
    with pytest.raises(PullError) as caught:
        pull(str(saved.tag), source, wrong, target)
    assert str(saved.tag) in str(caught.value) and source in str(caught.value)
    assert "refusing" in str(caught.value)
    assert_nothing_pulled(target)


def test_pull_over_https_of_a_missing_file_names_the_model_source_and_404(
    https_root: str, archive: tuple[models.Model, Path, str], target: models.ModelStore
) -> None:
    saved, _, sha256 = archive
    source = f"{https_root}/missing.tar.gz"
    with pytest.raises(PullError) as caught:
        pull(str(saved.tag), source, sha256, target)
    assert str(saved.tag) in str(caught.value) and source in str(caught.value)
    assert "404" in str(caught.value)
    assert_nothing_pulled(target)


def test_pull_over_https_refuses_a_certificate_it_does_not_trust(
    https_root: str,
    archive: tuple[models.Model, Path, str],
    target: models.ModelStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    saved, _, sha256 = archive
    monkeypatch.delenv("KUBENTO_CA_BUNDLE")
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    with pytest.raises(PullError, match="CERTIFICATE_VERIFY_FAILED"):
        pull(str(saved.tag), f"{https_root}/clf.tar.gz", sha256, target)
    assert_nothing_pulled(target)


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """A moto_server process: a real S3-compatible HTTP server, not a mocked client."""
    port = free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(endpoint, timeout=1)
                break
            except httpx.HTTPError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("moto_server did not start") from None
                time.sleep(0.1)
        yield endpoint
    finally:
        stop(server)


@pytest.fixture
def bucket(
    s3_endpoint: str, archive: tuple[models.Model, Path, str], monkeypatch: pytest.MonkeyPatch
) -> str:
    import boto3

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    name = f"models-{os.urandom(4).hex()}"
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    client.create_bucket(Bucket=name)
    client.upload_file(str(archive[1]), name, "clf/clf.tar.gz")
    return name


def test_pull_from_s3_imports_the_model_with_its_digest(
    s3_endpoint: str,
    bucket: str,
    archive: tuple[models.Model, Path, str],
    target: models.ModelStore,
) -> None:
    saved, _, sha256 = archive
    pulled = pull(
        str(saved.tag), f"s3://{bucket}/clf/clf.tar.gz", sha256, target, s3_endpoint=s3_endpoint
    )
    assert pulled.info.digest == saved.info.digest
    assert target.get("clf").tag == saved.tag


def test_pull_from_s3_with_the_wrong_sha256_names_the_model_and_source(
    s3_endpoint: str,
    bucket: str,
    archive: tuple[models.Model, Path, str],
    target: models.ModelStore,
) -> None:
    saved, _, _ = archive
    source = f"s3://{bucket}/clf/clf.tar.gz"
    with pytest.raises(PullError) as caught:
        pull(str(saved.tag), source, "f" * 64, target, s3_endpoint=s3_endpoint)
    assert str(saved.tag) in str(caught.value) and source in str(caught.value)
    assert_nothing_pulled(target)


def test_pull_from_s3_of_a_missing_key_names_the_model_source_and_endpoint(
    s3_endpoint: str,
    bucket: str,
    archive: tuple[models.Model, Path, str],
    target: models.ModelStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    saved, _, sha256 = archive
    source = f"s3://{bucket}/clf/missing.tar.gz"
    monkeypatch.setenv("KUBENTO_S3_ENDPOINT", s3_endpoint)  # the endpoint from the environment
    with pytest.raises(PullError) as caught:
        pull(str(saved.tag), source, sha256, target)
    message = str(caught.value)
    assert str(saved.tag) in message and source in message and s3_endpoint in message
    assert "NoSuchKey" in message
    assert_nothing_pulled(target)


def test_pull_of_an_archive_holding_another_model_is_refused(
    https_root: str,
    archive: tuple[models.Model, Path, str],
    target: models.ModelStore,
) -> None:
    saved, _, sha256 = archive
    with pytest.raises(PullError, match=f"model clf:other: .* holds model {saved.tag}"):
        pull("clf:other", f"{https_root}/clf.tar.gz", sha256, target)
    assert_nothing_pulled(target)
