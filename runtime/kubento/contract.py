"""The runtime contract: how a pod (or `kubento serve`) starts the runtime.

The operator renders pods from these functions and constants, `kubento serve`
starts local processes from the same ones, and a test starts the runtime with
exactly what the operator rendered. Change a name here and both sides move.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

# Ports.
API_PORT = 3000
RUNNER_PORT = 50051
RUNNER_METRICS_PORT = 9090
API_PORT_NAME = "http"
RUNNER_PORT_NAME = "grpc"
RUNNER_METRICS_PORT_NAME = "metrics"

# HTTP probe paths of the API server. Runners answer the standard gRPC health
# checking service on RUNNER_PORT (Kubernetes `grpc` probes) and the same paths
# on RUNNER_METRICS_PORT.
LIVENESS_PATH = "/livez"
READINESS_PATH = "/readyz"
METRICS_PATH = "/metrics"

# Environment.
ENV_RUNNER_MAP = "KUBENTO_RUNNER_MAP"
"""JSON object: runner name -> gRPC target (`host:port` or `dns:///host:port`)."""
ENV_RUNNER_NAME = "KUBENTO_RUNNER_NAME"
ENV_WORKERS = "KUBENTO_WORKERS"
"""Runner worker processes per runner pod (`--workers`)."""
ENV_API_WORKERS = "KUBENTO_API_WORKERS"
"""HTTP server processes per API pod (`kubento api --workers`)."""
ENV_MAX_REQUEST_BYTES = "KUBENTO_MAX_REQUEST_BYTES"
ENV_MAX_BATCH_SIZE = "KUBENTO_MAX_BATCH_SIZE"
ENV_MAX_LATENCY_MS = "KUBENTO_MAX_LATENCY_MS"
ENV_MAX_QUEUE_SIZE = "KUBENTO_MAX_QUEUE_SIZE"
ENV_TIMEOUT_MS = "KUBENTO_TIMEOUT_MS"
ENV_MAX_CONCURRENCY = "KUBENTO_MAX_CONCURRENCY"
"""Batches of one method that may run at once in a runner worker."""
ENV_DEPLOYMENT_NAME = "KUBENTO_DEPLOYMENT_NAME"

DEFAULT_MAX_REQUEST_BYTES = 32 * 1024 * 1024

# gRPC metadata key carrying the API request id to runners.
REQUEST_ID_METADATA = "x-request-id"

# Executable name inside the runtime image.
EXECUTABLE = "kubento"


@dataclass(frozen=True)
class BatchingOverrides:
    """Per-deployment batching knobs; None keeps what the Runner declares."""

    max_batch_size: int | None = None
    max_latency_ms: int | None = None
    max_queue_size: int | None = None
    timeout_ms: int | None = None
    max_concurrency: int | None = None

    def to_env(self) -> dict[str, str]:
        pairs = {ENV_OF_OVERRIDE[knob]: getattr(self, knob) for knob in ENV_OF_OVERRIDE}
        return {key: str(value) for key, value in pairs.items() if value is not None}

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> BatchingOverrides:
        def read(key: str) -> int | None:
            raw = env.get(key)
            if raw is None or raw == "":
                return None
            try:
                value = int(raw)
            except ValueError:
                raise ValueError(f"{key}={raw!r} is not an integer") from None
            if value < 0 or (value == 0 and key != ENV_MAX_QUEUE_SIZE):
                raise ValueError(f"{key}={raw!r} must be a positive integer")
            return value

        return cls(**{knob: read(key) for knob, key in ENV_OF_OVERRIDE.items()})


ENV_OF_OVERRIDE = {
    "max_batch_size": ENV_MAX_BATCH_SIZE,
    "max_latency_ms": ENV_MAX_LATENCY_MS,
    "max_queue_size": ENV_MAX_QUEUE_SIZE,
    "timeout_ms": ENV_TIMEOUT_MS,
    "max_concurrency": ENV_MAX_CONCURRENCY,
}
"""The environment variable of each BatchingOverrides knob."""


def api_command(service: str, *, port: int = API_PORT, host: str = "0.0.0.0") -> list[str]:
    """argv of the API server process."""
    return [EXECUTABLE, "api", service, "--host", host, "--port", str(port)]


def runner_command(
    service: str,
    name: str,
    *,
    port: int = RUNNER_PORT,
    host: str = "0.0.0.0",
    workers: int = 1,
    metrics_port: int = RUNNER_METRICS_PORT,
) -> list[str]:
    """argv of a runner worker process (the pod's main process)."""
    return [
        EXECUTABLE,
        "runner",
        service,
        "--name",
        name,
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--metrics-port",
        str(metrics_port),
    ]


def runner_dns_target(service_name: str, namespace: str, port: int = RUNNER_PORT) -> str:
    """gRPC target for a runner behind a headless Service.

    The `dns:///` scheme makes the client resolve every pod address and balance
    calls across them (round robin), which a ClusterIP cannot do for HTTP/2.
    """
    return f"dns:///{service_name}.{namespace}.svc:{port}"


def encode_runner_map(runner_map: Mapping[str, str]) -> str:
    return json.dumps(dict(sorted(runner_map.items())), separators=(",", ":"))


def decode_runner_map(raw: str) -> dict[str, str]:
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{ENV_RUNNER_MAP} is not valid JSON: {exc}") from None
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ValueError(f"{ENV_RUNNER_MAP} must be a JSON object of runner name -> gRPC target")
    return value
