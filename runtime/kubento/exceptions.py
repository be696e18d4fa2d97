"""Errors a user or a client can hit, each with the HTTP status it maps to."""

from __future__ import annotations

from typing import Any


class KubentoError(Exception):
    """Base class; `status_code` is what the API server answers with."""

    status_code = 500

    def __init__(self, message: str, detail: Any = None, retry_after_s: float | None = None):
        super().__init__(message)
        self.message = message
        self.detail = detail
        self.retry_after_s = retry_after_s
        self.runner_call: str | None = None
        """The id a shared runner call carried, when this caller's rows rode in one."""


class BadInput(KubentoError):
    """The request body does not match what the API declares."""

    status_code = 400


class BadOutput(KubentoError):
    """The API's own answer cannot be sent as its output descriptor says (HTTP 500)."""

    status_code = 500


class PayloadTooLarge(KubentoError):
    status_code = 413


class RunnerOverloaded(KubentoError):
    """A runner's queue is full: retry later (HTTP 429)."""

    status_code = 429


class RunnerUnavailable(KubentoError):
    """A runner cannot answer now: down, or unable to meet the deadline (HTTP 503)."""

    status_code = 503


class ServerBusy(KubentoError):
    """The API server cannot take this request now (request-body memory budget): HTTP 503."""

    status_code = 503


class GatewayTimeout(KubentoError):
    """The request's end-to-end time ran out before a runner or dependency answered (504)."""

    status_code = 504


class RunnerError(KubentoError):
    """The model code inside a runner raised."""

    status_code = 500
