"""`kubento.depends(url=...)` / `depends(deployment=...)`: a Kubento service outside this
graph, reached over its HTTP API (`POST <url>/<api>` with a JSON object of the named
parameters, as any client calls it).

A call has the request's two ends (`kubento._sdk.handles`): the HTTP timeout is what the
request has left to its end, and the service is told to finish by its deadline, earlier by
what this server keeps back for the answer's way out, in the `kubento-finish-within-s`
header (`contract.FINISH_WITHIN_METADATA`). Failures name the service's URL
with the statuses the API server uses for its own dependencies: 503 when it cannot be
reached or says 503, 504 when it does not answer in time, 429 passed on, 500 otherwise.
"""

from __future__ import annotations

import asyncio
import io
import time
from typing import Any

import httpx
import numpy as np
import pydantic_core

from kubento import _tracing, contract
from kubento._sdk.handles import call_end, deadline, finish_within, request_id
from kubento._sdk.typed import to_wire
from kubento.exceptions import (
    GatewayTimeout,
    KubentoError,
    RunnerError,
    RunnerOverloaded,
    RunnerUnavailable,
)
from kubento.io import NPY_MEDIA_TYPE, json_default

DEFAULT_TIMEOUT_S = 60.0


class HTTPService:
    """One Kubento API server elsewhere; `call`/`async_call` one of its APIs by name."""

    def __init__(self, url: str) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"kubento.depends(url=...) needs an http(s) URL, got {url!r}")
        self.url = url.rstrip("/")
        self._sync: httpx.Client | None = None
        self._async: dict[asyncio.AbstractEventLoop, httpx.AsyncClient] = {}

    def _request(self, api: str, kwargs: dict[str, Any]) -> tuple[str, bytes, dict[str, str]]:
        body = pydantic_core.to_json(
            {key: to_wire(value) for key, value in kwargs.items()}, fallback=json_default
        )
        headers = {"content-type": "application/json"}
        if request_id.get():
            headers["x-request-id"] = request_id.get()
        within = finish_within()
        if within is not None:
            headers[contract.FINISH_WITHIN_METADATA] = within
        tracing = _tracing.active()
        if tracing is not None:  # the other service's spans continue this request's trace
            headers.update(tracing.headers())
        return f"{self.url}/{api.lstrip('/')}", body, headers

    @staticmethod
    def _timeout() -> float:
        """What the request has left to its end: how long to wait for the answer."""
        due = call_end()
        return DEFAULT_TIMEOUT_S if due is None else due - time.monotonic()

    def call(self, api: str, kwargs: dict[str, Any]) -> Any:
        timeout = self._check_time(api)
        if self._sync is None:
            self._sync = httpx.Client()
        url, body, headers = self._request(api, kwargs)
        try:
            reply = self._sync.post(url, content=body, headers=headers, timeout=timeout)
        except httpx.HTTPError as exc:
            raise self._failed(api, exc) from None
        return self._answer(api, reply)

    async def async_call(self, api: str, kwargs: dict[str, Any]) -> Any:
        timeout = self._check_time(api)
        loop = asyncio.get_running_loop()
        client = self._async.get(loop)
        if client is None:
            client = self._async[loop] = httpx.AsyncClient()
        url, body, headers = self._request(api, kwargs)
        try:
            reply = await client.post(url, content=body, headers=headers, timeout=timeout)
        except httpx.HTTPError as exc:
            raise self._failed(api, exc) from None
        return self._answer(api, reply)

    def _where(self, api: str) -> str:
        return f"service at {self.url} api {api!r}"

    def _check_time(self, api: str) -> float:
        timeout = self._timeout()
        ends = deadline.get()
        if timeout <= 0 or (ends is not None and ends <= time.monotonic()):
            raise GatewayTimeout(
                f"{self._where(api)} was not called: the request's deadline had passed",
                {"dependency": self.url},
            )
        return timeout

    def _failed(self, api: str, exc: httpx.HTTPError) -> KubentoError:
        detail = {"dependency": self.url}
        if isinstance(exc, httpx.TimeoutException):
            return GatewayTimeout(
                f"{self._where(api)} did not answer within the request's time", detail
            )
        return RunnerUnavailable(
            f"{self._where(api)} is unavailable: {type(exc).__name__}: {exc}",
            detail,
            retry_after_s=1.0,
        )

    def _answer(self, api: str, reply: httpx.Response) -> Any:
        media = reply.headers.get("content-type", "").split(";")[0].strip()
        if reply.status_code >= 400:
            try:
                error = reply.json().get("error", reply.text)
            except ValueError:
                error = reply.text
            message = f"{self._where(api)} answered {reply.status_code}: {error}"
            detail = {"dependency": self.url}
            if reply.status_code == 429:
                return _raise(RunnerOverloaded(message, detail, retry_after_s=1.0))
            if reply.status_code == 503:
                return _raise(RunnerUnavailable(message, detail, retry_after_s=1.0))
            if reply.status_code == 504:
                return _raise(GatewayTimeout(message, detail))
            return _raise(RunnerError(message))
        if media == NPY_MEDIA_TYPE:
            return np.load(io.BytesIO(reply.content), allow_pickle=False)
        if media.startswith("text/"):
            return reply.text
        return reply.json()


def _raise(error: KubentoError) -> Any:
    raise error
