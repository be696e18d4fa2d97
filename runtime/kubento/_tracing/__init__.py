"""Tracing: OpenTelemetry spans exported over OTLP, when the environment asks for it.

A serving process calls `start(component)` once. Without `OTEL_EXPORTER_OTLP_ENDPOINT`
(or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) it returns None, nothing from OpenTelemetry is
imported and the hot path only tests `tracing is None`. With it, `spans.Tracing` (which
imports the optional `kubento[tracing]` packages) is this process's tracer; everything
else about the exporter (headers, TLS, timeouts, sampling, resource attributes) is
OpenTelemetry's standard `OTEL_*` environment, read by the SDK itself.

What the spans are, and how a W3C `traceparent` crosses processes, is in `spans.py`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kubento._tracing.spans import Tracing

Carrier = tuple[str, str]
"""A caller's W3C trace context as it travels to a worker: (traceparent, tracestate)."""

ENDPOINT_VARS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
"""Either turns tracing on (the first one wins for traces, as in the SDK)."""

_started = False
_tracing: Tracing | None = None


def configured(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether this process exports spans: an OTLP endpoint is set, and neither
    `OTEL_SDK_DISABLED=true` nor `OTEL_TRACES_EXPORTER=none` turns the SDK off."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return False
    return any(environ.get(name, "").strip() for name in ENDPOINT_VARS)


def start(component: str) -> Tracing | None:
    """This process's tracer, set up on the first call; None when tracing is off.

    `component` (the service, runner or dependency service served) names the process in
    traces: its `service.name`, unless `OTEL_SERVICE_NAME` says otherwise.
    """
    global _started, _tracing
    if not _started:
        _started = True
        if configured():
            try:
                from kubento._tracing.spans import Tracing
            except ImportError as exc:
                raise RuntimeError(
                    f"{' or '.join(ENDPOINT_VARS)} is set, so spans are to be exported, but "
                    f"the OpenTelemetry packages are missing ({exc}): install "
                    "'kubento[tracing]', or unset the variable"
                ) from None
            _tracing = Tracing.from_environment(component)
    return _tracing


def active() -> Tracing | None:
    """The tracer `start` set up in this process, if any (for clients made later)."""
    return _tracing
