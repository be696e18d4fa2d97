"""The runtime contract: how a pod (or `kubento serve`) starts the runtime.

The operator renders pods from these functions and constants, `kubento serve`
starts local processes from the same ones, and a test starts the runtime with
exactly what the operator rendered. Change a name here and both sides move.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

# Ports.
API_PORT = 3000
RUNNER_PORT = 50051
RUNNER_METRICS_PORT = 9090
API_PORT_NAME = "http"
API_PROBE_PORT = 3001
"""Where pods' API servers answer their probes, from a process of their own
(kubento/_api/probe_server.py)."""
API_PROBE_PORT_NAME = "probes"
RUNNER_PORT_NAME = "grpc"
RUNNER_METRICS_PORT_NAME = "metrics"

# Autoscaling signals: per-pod gauges every runner and service worker exports on
# RUNNER_METRICS_PORT (summed over its worker processes), which `autoscaling.metric: queue`
# and `inflight` scale on. The operator's HPA and KEDA objects, the chart's
# prometheus-adapter rules and the dashboard name them from here.
QUEUE_DEPTH_METRIC = "kubento_runner_queue_depth"
"""Rows waiting in a method's batching queue."""
INFLIGHT_METRIC = "kubento_runner_inflight_rows"
"""Rows in a method's batches running on the model now."""
AUTOSCALING_SERIES: Mapping[str, str] = {"queue": QUEUE_DEPTH_METRIC, "inflight": INFLIGHT_METRIC}
"""`autoscaling.metric` -> the series a component's pods export for it."""

# HTTP probe paths of the API server. Runners answer the standard gRPC health
# checking service on RUNNER_PORT (Kubernetes `grpc` probes) and the same paths
# on RUNNER_METRICS_PORT.
LIVENESS_PATH = "/livez"
READINESS_PATH = "/readyz"
METRICS_PATH = "/metrics"
# What the API server also answers besides the service's APIs (see kubento/_api).
DOCS_PATH = "/docs"
"""Swagger UI; its assets are served under DOCS_PATH + "/"."""
OPENAPI_PATH = "/docs.json"
OIP_PREFIX = "/v2"
"""The Open Inference Protocol (V2) REST paths."""


def error_content(error: str, detail: object = None) -> dict[str, object]:
    """The JSON body of every HTTP error a pod answers (API server, runner metrics port):
    what was wrong, in words, and details or null."""
    return {"error": error, "detail": detail}


# Environment.
ENV_RUNNER_MAP = "KUBENTO_RUNNER_MAP"
"""JSON object: runner name, or dependency service name in its DNS form (`service_label`)
-> gRPC target (`host:port` or `dns:///host:port`). One map for both: a dependency service
is a component like a runner."""
ENV_RUNNER_BATCHING = "KUBENTO_RUNNER_BATCHING"
"""JSON object, on the pods that call runners (API, services): runner name (a `RUNNER_MAP`
key) -> the batching overrides that runner's pods get, by knob name. Callers size what they
send with the limits the runner applies (`batching_overrides_for`)."""
ENV_RUNNER_NAME = "KUBENTO_RUNNER_NAME"
ENV_SERVICE_NAME = "KUBENTO_SERVICE_NAME"
"""The `@kubento.service` class a service pod serves (`kubento service --name`)."""
ENV_WORKERS = "KUBENTO_WORKERS"
"""Runner worker processes per runner pod (`--workers`)."""
ENV_API_WORKERS = "KUBENTO_API_WORKERS"
"""HTTP server processes per API pod (`kubento api --workers`)."""
ENV_MAX_REQUEST_BYTES = "KUBENTO_MAX_REQUEST_BYTES"
ENV_DEPLOYMENT_NAME = "KUBENTO_DEPLOYMENT_NAME"

DEFAULT_MAX_REQUEST_BYTES = 32 * 1024 * 1024
BODIES_IN_FLIGHT = 4
"""An API process holds at most this many maximum-size request bodies' bytes at once."""

# gRPC metadata key carrying the API request id to runners.
REQUEST_ID_METADATA = "x-request-id"
REQUEST_ID_PATTERN = r"^[A-Za-z0-9._:-]{1,128}$"
"""What a client's `x-request-id` may be; any other value is replaced by a generated id, so
no caller's header can break a gRPC call it shares with others or forge log fields."""
_REQUEST_ID = re.compile(REQUEST_ID_PATTERN)


def valid_request_id(value: str) -> bool:
    return _REQUEST_ID.match(value) is not None


FINISH_WITHIN_METADATA = "kubento-finish-within-s"
"""gRPC metadata (to runners and dependency services) and HTTP header (to an API server,
from `depends(url=...)` or any client): seconds the callee has to finish a call, when less
than the caller waits for it. The caller waits until the request's end; this keeps back, from
it, the time the answer needs to get out of the caller (its loop's lag), so an answer the
callee finishes in time is never cut off on its way back. Read with `finish_within()`."""


def finish_within_value(seconds: float) -> str:
    """Seconds as `FINISH_WITHIN_METADATA` carries them."""
    return f"{seconds:.4f}"


def finish_within(value: object) -> float | None:
    """A `FINISH_WITHIN_METADATA` value in seconds; None when it is not a finite number of
    seconds, 0 or more (then the caller's own deadline alone counts)."""
    try:
        within = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return within if math.isfinite(within) and within >= 0 else None


ENV_REQUEST_TIMEOUT = "KUBENTO_REQUEST_TIMEOUT_S"
"""End-to-end budget of one HTTP request in the API server (BentoML's `traffic.timeout`);
its remaining time is the gRPC deadline of every call the request makes; 504 past it."""
DEFAULT_REQUEST_TIMEOUT_S = 60.0

# Shutdown. On SIGTERM a runner stops taking calls and finishes those in flight within
# SHUTDOWN_GRACE_S; pods first wait PRE_STOP_S (preStop) so endpoints drop them before
# they stop listening, and get TERMINATION_GRACE_S in all before SIGKILL.
SHUTDOWN_GRACE_S = 30
PRE_STOP_S = 5
TERMINATION_GRACE_S = PRE_STOP_S + SHUTDOWN_GRACE_S + 10

# Executable name inside the runtime image.
EXECUTABLE = "kubento"
RUNTIME_UID = 10001
"""The numeric user and group the runtime image runs as (Dockerfile.runtime `USER`), which
pods state outright: kube-score and the kubelet then need not trust the image."""

# Models. Tags are `name:version`, each part as BentoML's; a component whose spec lists
# models gets them pulled at pod start into MODELS_HOME, a volume its container reads.
MODEL_TAG_PART = r"[a-z0-9]([-._a-z0-9]*[a-z0-9])?"
MAX_MODEL_TAG_PART = 63
MODEL_TAG_PATTERN = rf"^{MODEL_TAG_PART}:{MODEL_TAG_PART}$"
"""An exact model tag, `name:version` (what a pull needs; `latest` is for local use)."""
MODEL_SHA256_PATTERN = r"^(sha256:)?[0-9a-f]{64}$"
MODEL_SOURCE_PATTERN = r"^(https?|s3|pvc)://[^\s]+$"
ENV_HOME = "KUBENTO_HOME"
"""Root of the model store (`$KUBENTO_HOME/models/<name>/<version>/`)."""
ENV_S3_ENDPOINT = "KUBENTO_S3_ENDPOINT"
ENV_PVC_ROOT = "KUBENTO_PVC_ROOT"
MODELS_HOME = "/var/lib/kubento"
PVC_ROOT = "/mnt/kubento/pvc"
"""Where a `pvc://claim/path` source's claim is mounted (`<PVC_ROOT>/<claim>`)."""


def models_pull_command(tag: str, source: str, sha256: str) -> list[str]:
    """The init container that fetches one model archive, checks it and imports it."""
    return [EXECUTABLE, "models", "pull", tag, source, "--sha256", sha256]


# Names. Component names (runners, services) become Kubernetes object names
# (`<deployment>-<component>`, `_` written `-`) and label values.
NAME_PATTERN = r"^[a-z0-9]([-_a-z0-9]*[a-z0-9])?$"
MAX_NAME_LENGTH = 63
"""Longest component name, and longest Kubernetes object name the operator writes."""
_NAME = re.compile(NAME_PATTERN)


def dns_label(name: str) -> str:
    """A component name as it appears in object names: `model_runner_a` -> `model-runner-a`."""
    return name.lower().replace("_", "-").replace(".", "-")


def service_label(name: str) -> str:
    """A service class name as a component name: `ModelA` -> `model-a`, `Embed_v2` ->
    `embed-v2`. It keys the runner map and names the service's Kubernetes objects."""
    kebab = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "-", name)
    return dns_label(kebab)


def check_name(kind: str, name: object) -> str:
    """`name` when it is a valid component name; otherwise a ValueError that says the rule."""
    if not isinstance(name, str) or not _NAME.match(name) or len(name) > MAX_NAME_LENGTH:
        raise ValueError(
            f"invalid {kind} name {name!r}: use lowercase letters, digits, '-' and '_', "
            f"starting and ending with a letter or digit, at most {MAX_NAME_LENGTH} characters "
            f"(it becomes part of Kubernetes object names)"
        )
    return name


def check_distinct(kind: str, names: Iterable[str]) -> None:
    """Reject two names that become the same object name (`a_b` and `a-b`)."""
    seen: dict[str, str] = {}
    for name in names:
        other = seen.setdefault(dns_label(name), name)
        if other != name:
            first, second = sorted((other, name))  # the same message whatever the listing order
            raise ValueError(
                f"{kind} names {first!r} and {second!r} both become {dns_label(name)!r} in "
                f"Kubernetes object names; rename one"
            )


# Batching knobs: declared once here. The runtime's BatchingConfig, the environment
# parser, Runner(method_configs=) validation, the BentoDeployment spec (and so the
# CRD's schema and descriptions) and the README's table all derive from this table.
@dataclass(frozen=True)
class Knob:
    """One batching knob of a runner method."""

    name: str
    """Python name (`method_configs` key, BatchingConfig field)."""
    type: type[int] | type[float]
    """int, or float for durations (which also accept ints; env and CRD take integers)."""
    default: int | str | None
    """What a method gets when nothing sets the knob; None means no limit."""
    minimum: int
    maximum: int | None
    description: str
    """One or two sentences for the CRD, the README and error messages."""
    exclusive_minimum: bool = False
    """The value must be above `minimum`, not equal to it (durations: > 0)."""
    words: tuple[str, ...] = ()
    """Values besides numbers the knob also takes (`max_concurrency="auto"`)."""

    @property
    def env(self) -> str:
        """The environment variable a deployment sets to override the knob."""
        return f"KUBENTO_{self.name.upper()}"

    @property
    def field(self) -> str:
        """The BentoDeployment field (`batching.<field>`)."""
        head, *rest = self.name.split("_")
        return head + "".join(part.capitalize() for part in rest)

    @property
    def allowed(self) -> str:
        """The allowed range, as error messages say it."""
        if self.maximum is None:
            numbers = f"{'>' if self.exclusive_minimum else '>='} {self.minimum}"
        else:
            numbers = f"{self.minimum}..{self.maximum}"
        return " or ".join([numbers, *(f'"{word}"' for word in self.words)])

    @property
    def _numbers(self) -> str:
        kind = "an integer" if self.type is int else "a number"
        if self.maximum is not None:
            return f"{kind} from {self.minimum} to {self.maximum}"
        if self.minimum == 0 and self.exclusive_minimum:
            return f"a positive {'integer' if self.type is int else 'number'}"
        if self.minimum == 1 and self.type is int:
            return "a positive integer"
        return f"{kind} {self.allowed}"

    @property
    def must_be(self) -> str:
        """What a value must be, as error messages say it: "a positive integer"."""
        return " or ".join([self._numbers, *(f'"{word}"' for word in self.words)])

    def check(self, value: object, *, what: str | None = None) -> int | float | str:
        """`value` when it is allowed for this knob; otherwise an error naming knob and range."""
        label = what or self.name
        if isinstance(value, str) and value in self.words:
            return value
        wrong_type = not isinstance(value, int) if self.type is int else False
        if isinstance(value, bool) or not isinstance(value, int | float) or wrong_type:
            raise TypeError(f"{label} must be {self.must_be}, got {value!r}")
        low = value <= self.minimum if self.exclusive_minimum else value < self.minimum
        if low or (self.maximum is not None and value > self.maximum):
            raise ValueError(f"{label} must be {self.must_be}, got {value!r}")
        return value


AUTO = "auto"
"""`max_concurrency="auto"`: the runner finds the number itself (`kubento.batching.lanes`)."""

BATCHING_KNOBS: tuple[Knob, ...] = (
    Knob(
        "max_batch_size",
        int,
        default=100,
        minimum=1,
        maximum=None,
        description="Largest batch, in rows, the runner forms from queued calls.",
    ),
    Knob(
        "max_latency_ms",
        float,
        default=10_000,
        minimum=0,
        maximum=None,
        description=(
            "Longest a call's rows wait in the queue for a batch to fill, in milliseconds "
            "(the batching delay; the model's run time comes on top)."
        ),
        exclusive_minimum=True,
    ),
    Knob(
        "max_queue_size",
        int,
        default=1024,
        minimum=0,
        maximum=None,
        description=(
            "Rows (not calls) that may wait in the queue; a call that would exceed it is "
            "rejected at once (HTTP 429). 0 means unbounded; otherwise at least max_batch_size."
        ),
    ),
    Knob(
        "timeout_ms",
        float,
        default=None,
        minimum=0,
        maximum=None,
        description=(
            "Deadline of a call, in milliseconds, when the caller sends none; unset means none."
        ),
        exclusive_minimum=True,
    ),
    Knob(
        "max_queue_wait_ms",
        float,
        default=None,
        minimum=0,
        maximum=None,
        description=(
            "Opt-in shedding on forecast queue wait (BentoML's behaviour): reject a call at "
            "once (HTTP 503) when the queue would hold it longer than this, in milliseconds. "
            "Unset: a call is never rejected for waiting, only for a full queue or a deadline "
            "it cannot meet."
        ),
        exclusive_minimum=True,
    ),
    Knob(
        "max_concurrency",
        int,
        default=AUTO,
        minimum=1,
        maximum=64,
        description=(
            "Batches of one method that may run at once per worker, each on its own model "
            "thread (more than 1 helps only models that release the GIL, such as numpy or "
            'torch). "auto": start with 1 and add a batch (up to the worker\'s CPU share, for '
            "a runnable that SUPPORTS_CPU_MULTI_THREADING) only while measurement shows it "
            "raises rows per second."
        ),
        words=(AUTO,),
    ),
)
KNOBS: Mapping[str, Knob] = {knob.name: knob for knob in BATCHING_KNOBS}
QUEUE_HOLDS_A_BATCH = "max_queue_size must be 0 (unbounded) or at least max_batch_size"
"""The one rule between knobs: API servers send up to max_batch_size callers' rows at once."""


def check_knobs(values: Mapping[str, object], *, what: str = "") -> dict[str, int | float | str]:
    """Validate a mapping of knob name -> value (None values are dropped) and the rule between
    knobs; `what` prefixes error messages (for example "runner 'clf': method_configs['predict']").
    """
    prefix = f"{what}." if what else ""
    unknown = sorted(set(values) - set(KNOBS))
    if unknown:
        raise ValueError(
            f"{what or 'batching'} has unknown keys {unknown}; allowed: {sorted(KNOBS)}"
        )
    checked = {
        name: KNOBS[name].check(value, what=f"{prefix}{name}")
        for name, value in values.items()
        if value is not None
    }
    queue, batch = checked.get("max_queue_size"), checked.get("max_batch_size")
    if isinstance(queue, int) and isinstance(batch, int) and 0 < queue < batch:
        raise ValueError(
            f"{what + ': ' if what else ''}max_queue_size ({queue}) is smaller than "
            f"max_batch_size ({batch}): {QUEUE_HOLDS_A_BATCH}"
        )
    return checked


class BatchingOverrides:
    """Per-deployment batching knobs, by knob name; a knob not given (or None) keeps what the
    Runner declares. Validated on construction against the knob table."""

    __slots__ = ("values",)

    def __init__(self, **values: int | float | str | None) -> None:
        self.values: Mapping[str, int | float | str] = check_knobs(
            values, what="batching overrides"
        )

    def __getattr__(self, name: str) -> int | float | str | None:
        if name in KNOBS:
            return self.values.get(name)
        raise AttributeError(name)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BatchingOverrides) and dict(self.values) == dict(other.values)

    def __hash__(self) -> int:
        return hash(tuple(sorted(self.values.items())))

    def __repr__(self) -> str:
        args = ", ".join(f"{name}={value!r}" for name, value in self.values.items())
        return f"BatchingOverrides({args})"

    def to_env(self) -> dict[str, str]:
        return {KNOBS[name].env: _env_number(value) for name, value in self.values.items()}

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> BatchingOverrides:
        values: dict[str, int | float | str] = {}
        for knob in BATCHING_KNOBS:
            raw = env.get(knob.env)
            if raw is None or raw == "":
                continue
            try:
                values[knob.name] = knob.check(raw if raw in knob.words else int(raw))
            except ValueError:
                raise ValueError(f"{knob.env}={raw!r} must be {knob.must_be}") from None
        try:
            return cls(**values)
        except ValueError as exc:
            raise ValueError(f"batching overrides from the environment: {exc}") from None


def encode_runner_batching(overrides: Mapping[str, BatchingOverrides]) -> str:
    """`ENV_RUNNER_BATCHING`'s value; runners without overrides are left out."""
    return json.dumps(
        {name: dict(o.values) for name, o in sorted(overrides.items()) if o.values},
        separators=(",", ":"),
    )


def batching_overrides_for(name: str, env: Mapping[str, str]) -> BatchingOverrides:
    """The batching overrides runner `name`'s pods apply, as seen from a process with `env`.

    A caller's pod names them in `ENV_RUNNER_BATCHING`; a runner pod (or `kubento serve`,
    where every process shares one environment) has them as its own knob variables."""
    raw = env.get(ENV_RUNNER_BATCHING, "")
    if not raw:
        return BatchingOverrides.from_env(env)
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{ENV_RUNNER_BATCHING} is not valid JSON: {exc}") from None
    if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
        raise ValueError(
            f"{ENV_RUNNER_BATCHING} must be a JSON object of runner name -> "
            f"{{knob name: value}}, got {raw[:80]!r}"
        )
    knobs = value.get(name, {})
    unknown = sorted(set(knobs) - set(KNOBS))
    if unknown:
        raise ValueError(f"{ENV_RUNNER_BATCHING}[{name!r}]: unknown knobs {unknown}")
    try:
        return BatchingOverrides(**knobs)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{ENV_RUNNER_BATCHING}[{name!r}]: {exc}") from None


def _env_number(value: int | float | str) -> str:
    if isinstance(value, str):
        return value
    return str(int(value)) if float(value).is_integer() else str(value)


def api_command(
    service: str, *, port: int = API_PORT, host: str = "0.0.0.0", probe_port: int | None = None
) -> list[str]:
    """argv of the API server process; pods also get `probe_port` (API_PROBE_PORT)."""
    argv = [EXECUTABLE, "api", service, "--host", host, "--port", str(port)]
    return argv if probe_port is None else [*argv, "--probe-port", str(probe_port)]


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


def service_command(
    service: str,
    name: str,
    *,
    port: int = RUNNER_PORT,
    host: str = "0.0.0.0",
    workers: int = 1,
    metrics_port: int = RUNNER_METRICS_PORT,
) -> list[str]:
    """argv of a dependency service's worker: a runner worker serving the class's APIs.

    `service` is the entry class (`module:EntryService`), `name` the served class's name."""
    argv = runner_command(
        service, name, port=port, host=host, workers=workers, metrics_port=metrics_port
    )
    argv[1] = "service"
    return argv


def deployment_url(deployment: str, port: int = API_PORT) -> str:
    """The URL of another BentoDeployment's API server in the same namespace: its API
    Service `<name>-api` (short names resolve through the pod's DNS search path)."""
    if not re.match(r"^[a-z]([-a-z0-9]*[a-z0-9])?$", deployment) or len(deployment) > 59:
        raise ValueError(
            f"invalid BentoDeployment name {deployment!r}: lowercase letters, digits and '-', "
            f"starting with a letter, at most 59 characters (so '<name>-api' fits)"
        )
    return f"http://{deployment}-api:{port}"


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
