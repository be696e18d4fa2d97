"""`kubento models pull`: fetch a model archive, check its sha256, import it atomically.

This is what an init container runs to put a model into a pod's store. Sources:
`https://...` (and `http://`), `s3://bucket/key` (any S3-compatible endpoint; credentials
from the usual AWS variables, as a Secret would provide them), `pvc://claim/path` (the claim
mounted under `$KUBENTO_PVC_ROOT/<claim>`), and a local path or `file://` URL. The archive
is written into the store's staging directory, so a failed or interrupted pull leaves
nothing that `get` returns.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import ssl
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import IO
from urllib.parse import urlparse

import yaml

from kubento import contract
from kubento._models.store import INFO_FILE, Model, ModelStore, ModelStoreError
from kubento._models.tag import Tag

ENV_S3_ENDPOINT = contract.ENV_S3_ENDPOINT
ENV_CA_BUNDLE = "KUBENTO_CA_BUNDLE"
ENV_PVC_ROOT = contract.ENV_PVC_ROOT
DEFAULT_PVC_ROOT = contract.PVC_ROOT
SCHEMES = ("https", "http", "s3", "pvc", "file")
_SHA256 = re.compile(r"^(sha256:)?([0-9a-f]{64})$")
_CHUNK = 1 << 20
_TIMEOUT_S = 60.0


class PullError(ModelStoreError):
    """A pull failed; the message names the model and its source."""


def pull(
    tag: str | Tag,
    source: str,
    sha256: str,
    store: ModelStore,
    *,
    s3_endpoint: str | None = None,
) -> Model:
    wanted = Tag.parse(tag)
    if wanted.version is None:
        raise PullError(f"model {tag}: pull needs an exact version (name:version), not latest")
    match = _SHA256.match(sha256.strip().lower())
    if not match:
        raise PullError(f"model {wanted}: sha256 {sha256!r} is not 64 hex digits")
    expected = match.group(2)
    staging = store._staging()
    archive = staging / "archive"
    try:
        with archive.open("wb") as sink:
            actual = _fetch(wanted, source, sink, s3_endpoint)
        if actual != expected:
            raise PullError(
                f"model {wanted}: the archive from {source} has sha256 {actual}, "
                f"expected {expected}; refusing to import it"
            )
        found = _archive_tag(wanted, source, archive)
        if found != wanted:
            raise PullError(f"model {wanted}: the archive from {source} holds model {found}")
        return store.import_model(archive)
    except PullError:
        raise
    except ModelStoreError as exc:
        raise PullError(f"model {wanted} from {source}: {exc}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _archive_tag(wanted: Tag, source: str, archive: Path) -> Tag:
    try:
        with tarfile.open(archive, "r:*") as tar:
            member = tar.extractfile(INFO_FILE)
            if member is None:
                raise KeyError(INFO_FILE)
            return Tag.parse(yaml.safe_load(member.read())["tag"])
    except (tarfile.TarError, KeyError, TypeError, ValueError, yaml.YAMLError) as exc:
        raise PullError(
            f"model {wanted}: {source} is not a model archive (from `kubento models export`): {exc}"
        ) from None


def _fetch(tag: Tag, source: str, sink: IO[bytes], s3_endpoint: str | None) -> str:
    """Copy `source` into `sink`; the sha256 of what was copied."""
    scheme = urlparse(source).scheme if "://" in source else "file"
    digest = hashlib.sha256()

    def write(chunk: bytes) -> None:
        digest.update(chunk)
        sink.write(chunk)

    if scheme in ("https", "http"):
        _fetch_http(tag, source, write)
    elif scheme == "s3":
        _fetch_s3(tag, source, write, s3_endpoint or os.environ.get(ENV_S3_ENDPOINT))
    elif scheme in ("pvc", "file"):
        _fetch_file(tag, source, _local_path(tag, source), write)
    else:
        raise PullError(
            f"model {tag}: source {source!r} has an unsupported scheme; use one of "
            f"{', '.join(s + '://' for s in SCHEMES)} or a local path"
        )
    return digest.hexdigest()


def _local_path(tag: Tag, source: str) -> Path:
    if source.startswith("pvc://"):
        claim, _, path = source.removeprefix("pvc://").partition("/")
        if not claim or not path:
            raise PullError(f"model {tag}: source {source!r} must be pvc://<claim>/<path>")
        return Path(os.environ.get(ENV_PVC_ROOT, DEFAULT_PVC_ROOT)) / claim / path
    return Path(source.removeprefix("file://"))


def _fetch_file(tag: Tag, source: str, path: Path, write: Callable[[bytes], None]) -> None:
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(_CHUNK):
                write(chunk)
    except OSError as exc:
        raise PullError(f"model {tag}: cannot read {source} ({path}): {exc.strerror}") from None


def _fetch_http(tag: Tag, source: str, write: Callable[[bytes], None]) -> None:
    import httpx

    bundle = os.environ.get(ENV_CA_BUNDLE) or os.environ.get("SSL_CERT_FILE")
    verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=bundle) if bundle else True
    try:
        with httpx.stream(
            "GET", source, verify=verify, follow_redirects=True, timeout=_TIMEOUT_S
        ) as reply:
            if reply.status_code != 200:
                raise PullError(
                    f"model {tag}: GET {source} answered HTTP {reply.status_code} "
                    f"{reply.reason_phrase}"
                )
            for chunk in reply.iter_bytes(_CHUNK):
                write(chunk)
    except httpx.HTTPError as exc:
        raise PullError(f"model {tag}: GET {source} failed: {exc}") from None


def _fetch_s3(tag: Tag, source: str, write: Callable[[bytes], None], endpoint: str | None) -> None:
    try:
        import boto3
        import botocore.config
        import botocore.exceptions
    except ImportError:
        raise PullError(f"model {tag}: {source} needs boto3: install kubento[s3]") from None
    parsed = urlparse(source)
    bucket, key = parsed.netloc, parsed.path.lstrip("/")
    if not bucket or not key:
        raise PullError(f"model {tag}: source {source!r} must be s3://<bucket>/<key>")
    # S3-compatible servers (MinIO, Ceph, ...) usually want path-style addressing.
    config = botocore.config.Config(
        s3={"addressing_style": "path"} if endpoint else {},
        retries={"max_attempts": 3, "mode": "standard"},
    )
    where = f"{source} (endpoint {endpoint})" if endpoint else source
    try:
        client = boto3.client("s3", endpoint_url=endpoint or None, config=config)
        body = client.get_object(Bucket=bucket, Key=key)["Body"]
        for chunk in body.iter_chunks(_CHUNK):
            write(chunk)
    except botocore.exceptions.ClientError as exc:
        error = exc.response.get("Error", {})
        code = error.get("Code", "?")
        raise PullError(
            f"model {tag}: GET {where} failed: {code} {error.get('Message', '')}".rstrip()
        ) from None
    except botocore.exceptions.NoCredentialsError:
        raise PullError(
            f"model {tag}: no S3 credentials for {where}: set AWS_ACCESS_KEY_ID and "
            f"AWS_SECRET_ACCESS_KEY (e.g. from a Secret)"
        ) from None
    except botocore.exceptions.BotoCoreError as exc:
        raise PullError(f"model {tag}: GET {where} failed: {exc}") from None
