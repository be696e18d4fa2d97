"""The BentoDeployment spec: pydantic models, the single source of truth of the CRD.

Field names follow Yatai's `serving.yatai.ai/v2alpha1` BentoDeployment where
they fit (`resources.requests.cpu`, `autoscaling.minReplicas`, `envs`,
`runners[].name`, `ingress.enabled`, `extraPodMetadata`, `extraPodSpec`), so
a Yatai manifest moves over by replacing `bento:` with `image:` + `service:`.

A BentoDeployment is a list of components (see components.py): the top level
of the spec is the API component, as in Yatai, and each `runners[]` entry is
a runner component. Every component carries the same settings
(`ComponentSpec`); components of a role with many members also carry a name,
workers and batching (`MemberSpec`).

Member names are the names the Python code declares (`Runner(name=...)`), so
they may hold underscores (Yatai's sample uses `model_runner_a`); object names
use the DNS-1123 form (`model-runner-a`), and two names that collide in that
form are rejected.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
    create_model,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from kubento import contract
from kubento_operator import naming

QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
SERVICE_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_.]*$"
ENV_NAME_PATTERN = r"^[-._a-zA-Z][-._a-zA-Z0-9]*$"
RESOURCE_NAME_PATTERN = (
    r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)
DEPLOYMENT_NAME_PATTERN = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
MAX_RUNNERS = 32
MAX_SERVICES = 32
SERVICE_NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_]*$"
RESERVED_ENV_PREFIX = "KUBENTO_"


class SpecError(ValueError):
    """A BentoDeployment the operator cannot honour; `field` is the dotted path to blame."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def _int_or_string(pattern: str, description: str) -> WithJsonSchema:
    return WithJsonSchema(
        {
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "pattern": pattern,
            "x-kubernetes-int-or-string": True,
            "description": description,
        }
    )


def _check_quantity(value: object) -> str:
    if not isinstance(value, int | str) or isinstance(value, bool):
        raise ValueError(f"{value!r} is not a Kubernetes quantity (e.g. 500m, 2, 1Gi)")
    text = str(value)
    if not re.match(QUANTITY_PATTERN, text):
        raise ValueError(f"{text!r} is not a Kubernetes quantity (e.g. 500m, 2, 1Gi)")
    return text


def _check_count(value: object) -> int:
    if not isinstance(value, int | str) or isinstance(value, bool):
        raise ValueError(f"{value!r} is not a whole number of devices")
    text = str(value)
    if not text.isdigit():
        raise ValueError(f"{text!r} is not a whole number of devices")
    return int(text)


Quantity = Annotated[
    str,
    BeforeValidator(_check_quantity),
    _int_or_string(QUANTITY_PATTERN, "A Kubernetes quantity, e.g. 500m, 2, 512Mi."),
]
GpuCount = Annotated[
    int,
    BeforeValidator(_check_count),
    _int_or_string(r"^[0-9]+$", "Number of NVIDIA GPUs (nvidia.com/gpu)."),
]
IntOrPercent = Annotated[
    int | str,
    _int_or_string(r"^[0-9]+%?$", "An absolute number or a percentage, e.g. 1 or 25%."),
]
FreeObject = Annotated[
    dict[str, Any],
    WithJsonSchema({"type": "object", "x-kubernetes-preserve-unknown-fields": True}),
]


class Model(BaseModel):
    """Base: camelCase field names, unknown fields rejected (they are typos)."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        use_attribute_docstrings=True,
    )


class ResourceList(Model):
    """Amounts of compute resources."""

    cpu: Quantity | None = None
    """CPU, e.g. 500m or 2."""
    memory: Quantity | None = None
    """Memory, e.g. 512Mi or 2Gi."""
    gpu: GpuCount | None = None
    """Number of NVIDIA GPUs; set in both requests and limits of the container."""
    custom: dict[Annotated[str, Field(pattern=RESOURCE_NAME_PATTERN, max_length=253)], Quantity] = (
        Field(default_factory=dict, max_length=16)
    )
    """Any other resource by its full name, e.g. nvidia.com/mig-1g.10gb: "1"."""


class Resources(Model):
    """Requests and limits of one component's container."""

    requests: ResourceList | None = None
    """What the scheduler reserves; CPU requests default to 250m so the autoscaler can work."""
    limits: ResourceList | None = None
    """The most the container may use."""

    @model_validator(mode="after")
    def _gpus_agree(self) -> Resources:
        wanted = self.requests.gpu if self.requests else None
        capped = self.limits.gpu if self.limits else None
        if wanted is not None and capped is not None and wanted != capped:
            raise ValueError(
                f"requests.gpu ({wanted}) and limits.gpu ({capped}) differ; GPUs cannot be "
                "overcommitted, set one of them or the same number in both"
            )
        return self


DEFAULT_PROMETHEUS_ADDRESS = "http://prometheus-operated.monitoring.svc:9090"
"""Where KEDA queries Prometheus unless `prometheusAddress` says otherwise (the Service the
Prometheus Operator creates, in a `monitoring` namespace)."""
_TARGET_NEEDED = "target (rows per pod) is required when metric is queue or inflight"
_METRICS_ALONE = (
    "metrics (raw autoscaling/v2 MetricSpecs) replaces metric and target and needs engine hpa; "
    "set either metrics or metric/target"
)
_ADDRESS_FOR_KEDA = "prometheusAddress is used by engine keda only (hpa reads prometheus-adapter)"


class Autoscaling(Model):
    """A component's autoscaler: a HorizontalPodAutoscaler (autoscaling/v2), or a KEDA
    ScaledObject (`engine: keda`), following CPU, queued rows or rows in flight."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.minReplicas) || self.minReplicas <= self.maxReplicas",
                    "message": "minReplicas must be less than or equal to maxReplicas",
                    "fieldPath": ".minReplicas",
                },
                {
                    "rule": "!has(self.metric) || self.metric == 'cpu' || has(self.target)",
                    "message": _TARGET_NEEDED,
                    "fieldPath": ".target",
                },
                {
                    "rule": "!has(self.metrics) || ((!has(self.metric) || self.metric == 'cpu') "
                    "&& !has(self.target) && (!has(self.engine) || self.engine == 'hpa'))",
                    "message": _METRICS_ALONE,
                    "fieldPath": ".metrics",
                },
                {
                    "rule": "!has(self.prometheusAddress) || "
                    "(has(self.engine) && self.engine == 'keda')",
                    "message": _ADDRESS_FOR_KEDA,
                    "fieldPath": ".prometheusAddress",
                },
            ]
        }
    )

    min_replicas: int = Field(default=1, ge=1, le=1000)
    """Fewest pods."""
    max_replicas: int = Field(ge=1, le=1000)
    """Most pods."""
    # cpu, or a key of contract.AUTOSCALING_SERIES (a test holds them equal).
    metric: Literal["cpu", "queue", "inflight"] = "cpu"
    """What the replicas follow: `cpu` (average utilization of the CPU request), `queue`
    (rows waiting in a pod's batching queues) or `inflight` (rows in a pod's running
    batches); queue and inflight are for runners and services."""
    target: int | None = Field(default=None, ge=1, le=1_000_000)
    """The value per pod the autoscaler keeps: CPU utilization in percent for cpu (default
    80), rows for queue and inflight (required)."""
    engine: Literal["hpa", "keda"] = "hpa"
    """`hpa`: a HorizontalPodAutoscaler (queue and inflight need prometheus-adapter serving
    the pods metric); `keda`: a KEDA ScaledObject with a Prometheus trigger."""
    prometheus_address: str | None = Field(
        default=None, pattern=r"^https?://[^\s]+$", max_length=2048
    )
    """The Prometheus KEDA queries (engine keda); default
    http://prometheus-operated.monitoring.svc:9090."""
    metrics: list[FreeObject] | None = None
    """autoscaling/v2 MetricSpecs replacing metric and target (engine hpa only)."""
    behavior: FreeObject | None = None
    """autoscaling/v2 HorizontalPodAutoscalerBehavior (scale-up/down policies)."""

    @model_validator(mode="after")
    def _consistent(self) -> Autoscaling:
        if self.min_replicas > self.max_replicas:
            raise ValueError(
                f"minReplicas ({self.min_replicas}) must be less than or equal to "
                f"maxReplicas ({self.max_replicas})"
            )
        if self.metric != "cpu" and self.target is None:
            raise ValueError(f"{_TARGET_NEEDED} (metric is {self.metric})")
        if self.metrics is not None and (
            self.metric != "cpu" or self.target is not None or self.engine != "hpa"
        ):
            raise ValueError(_METRICS_ALONE)
        if self.prometheus_address is not None and self.engine != "keda":
            raise ValueError(_ADDRESS_FOR_KEDA)
        return self

    @property
    def series(self) -> str | None:
        """The pods' series this autoscaler follows; None for CPU."""
        return contract.AUTOSCALING_SERIES.get(self.metric)


class EnvVar(Model):
    """An environment variable of the component's container."""

    name: str = Field(pattern=ENV_NAME_PATTERN, max_length=256)
    """Variable name; names starting with KUBENTO_ are set by the operator."""
    value: str | None = None
    """Literal value."""
    value_from: FreeObject | None = None
    """A core/v1 EnvVarSource (secretKeyRef, configMapKeyRef, fieldRef ...)."""

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if value.startswith(RESERVED_ENV_PREFIX):
            raise ValueError(
                f"{value} is reserved: variables starting with KUBENTO_ are set by the operator"
            )
        return value


def _unique_env_names(envs: list[EnvVar]) -> list[EnvVar]:
    seen: set[str] = set()
    for env in envs:
        if env.name in seen:
            raise ValueError(f"environment variable {env.name} is listed twice")
        seen.add(env.name)
    return envs


class ProbeTiming(Model):
    """Timing of one probe; the endpoint is fixed by the runtime contract."""

    initial_delay_seconds: int | None = Field(default=None, ge=0)
    """Seconds before the first probe."""
    period_seconds: int | None = Field(default=None, ge=1)
    """Seconds between probes."""
    timeout_seconds: int | None = Field(default=None, ge=1)
    """Seconds before one probe times out."""
    failure_threshold: int | None = Field(default=None, ge=1)
    """Consecutive failures before the probe fails."""


class Probes(Model):
    """Probe timing overrides, e.g. a long startup probe for a slow model load."""

    startup: ProbeTiming | None = None
    """Default: every 5s, up to 60 failures (5 minutes to load the model)."""
    readiness: ProbeTiming | None = None
    """Default: every 5s, 3 failures."""
    liveness: ProbeTiming | None = None
    """Default: every 10s, 3 failures."""


class Strategy(Model):
    """Rolling update of the component's Deployment."""

    max_surge: IntOrPercent | None = None
    """Extra pods during a rollout; default 25%, or 0 when the component uses GPUs."""
    max_unavailable: IntOrPercent | None = None
    """Missing pods during a rollout; default 25%, or 1 when the component uses GPUs."""


class ExtraPodMetadata(Model):
    """Labels and annotations added to the component's pods."""

    labels: dict[str, str] = Field(default_factory=dict)
    """Pod labels; the operator's own labels win on conflict."""
    annotations: dict[str, str] = Field(default_factory=dict)
    """Pod annotations."""


class ExtraPodSpec(Model):
    """Pod spec fields passed through to the component's pods."""

    node_selector: dict[str, str] = Field(default_factory=dict)
    """Node labels the pods must run on."""
    tolerations: list[FreeObject] = Field(default_factory=list)
    """core/v1 Tolerations (the GPU toleration is added for GPU components)."""
    affinity: FreeObject | None = None
    """core/v1 Affinity."""
    topology_spread_constraints: list[FreeObject] = Field(default_factory=list)
    """core/v1 TopologySpreadConstraints."""
    service_account_name: str | None = None
    """ServiceAccount of the pods; its token is mounted only when this is set."""
    priority_class_name: str | None = None
    """PriorityClass of the pods."""
    runtime_class_name: str | None = None
    """RuntimeClass of the pods, e.g. nvidia."""
    volumes: list[FreeObject] = Field(default_factory=list)
    """core/v1 Volumes added to the pods (the names `tmp`, `kubento-models` and `pvc-*` are
    taken)."""
    volume_mounts: list[FreeObject] = Field(default_factory=list)
    """Mounts added to the component's container."""


class ModelRef(Model):
    """A stored model the component loads, fetched when its pods start (KServe's
    `storageUri`): an init container pulls the archive, checks its digest and imports it
    into a volume the component reads, where `kubento.models.get(tag)` finds it."""

    tag: str = Field(pattern=contract.MODEL_TAG_PATTERN, max_length=127)
    """Exact tag `name:version` the archive holds (from `kubento models export`)."""
    source: str = Field(pattern=contract.MODEL_SOURCE_PATTERN, max_length=2048)
    """`https://...`, `s3://bucket/key` or `pvc://claim/path/to/archive`."""
    sha256: str = Field(pattern=contract.MODEL_SHA256_PATTERN)
    """The archive's sha256; a mismatch fails the pod's start, naming the model."""
    s3_endpoint: str | None = Field(default=None, pattern=r"^https?://[^\s]+$", max_length=2048)
    """An S3-compatible endpoint (MinIO, Ceph) for `s3://` sources; AWS when unset."""
    credentials_secret: str | None = Field(default=None, min_length=1, max_length=253)
    """A Secret in the namespace whose keys become the fetch's environment
    (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, ...)."""


MAX_MODELS = 16


def _unique_tags(models: list[ModelRef]) -> list[ModelRef]:
    tags = [model.tag for model in models]
    repeated = sorted({tag for tag in tags if tags.count(tag) > 1})
    if repeated:
        raise ValueError(f"models lists {repeated} more than once")
    return models


class DisruptionBudget(Model):
    """The PodDisruptionBudget of a component that may run more than one pod."""

    max_unavailable: Annotated[
        int | str,
        _int_or_string(
            r"^[0-9]+%?$", "Pods (or a percentage) a voluntary disruption may take down at once."
        ),
    ] = 1
    """Pods (or a percentage) a voluntary disruption such as a node drain may take down
    at once."""


class ComponentSpec(Model):
    """The settings every component has, whatever its role."""

    resources: Resources | None = None
    """Container resources."""
    autoscaling: Autoscaling | None = None
    """Horizontal autoscaling; without it the component runs one pod and no HPA."""
    envs: list[EnvVar] = Field(default_factory=list)
    """Extra environment variables."""
    probes: Probes | None = None
    """Probe timing overrides."""
    strategy: Strategy | None = None
    """Rollout override."""
    extra_pod_metadata: ExtraPodMetadata | None = None
    """Extra pod labels and annotations."""
    extra_pod_spec: ExtraPodSpec | None = None
    """Extra pod spec fields."""
    models: list[ModelRef] = Field(default_factory=list, max_length=MAX_MODELS)
    """Stored models fetched into this component's pods when they start."""
    disruption_budget: DisruptionBudget | None = None
    """Override of the PodDisruptionBudget (maxUnavailable 1) an autoscaled component gets."""

    _envs_unique = field_validator("envs")(_unique_env_names)
    _tags_unique = field_validator("models")(_unique_tags)


def crd_words(text: str, values: Mapping[str, object] | None = None) -> str:
    """`text` with each batching knob's name written as its CRD field (`max_batch_size` ->
    `maxBatchSize`), followed by its value in `values` when given."""
    for knob in contract.BATCHING_KNOBS:
        word = knob.field if values is None else f"{knob.field} ({values.get(knob.name)})"
        text = re.sub(rf"\b{knob.name}\b", word, text)
    return text


_QUEUE = contract.KNOBS["max_queue_size"].field
_BATCH = contract.KNOBS["max_batch_size"].field


class _BatchingRule(Model):
    """The rule between batching knobs (contract.QUEUE_HOLDS_A_BATCH), in pydantic and CEL."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": f"!has(self.{_QUEUE}) || !has(self.{_BATCH}) || "
                    f"self.{_QUEUE} == 0 || self.{_QUEUE} >= self.{_BATCH}",
                    "message": crd_words(contract.QUEUE_HOLDS_A_BATCH),
                    "fieldPath": f".{_QUEUE}",
                }
            ]
        }
    )

    @model_validator(mode="after")
    def _queue_holds_a_batch(self) -> _BatchingRule:
        values = self.model_dump()
        try:
            contract.check_knobs(values)
        except ValueError as exc:
            if contract.QUEUE_HOLDS_A_BATCH not in str(exc):
                raise
            raise ValueError(crd_words(contract.QUEUE_HOLDS_A_BATCH, values)) from None
        return self


def _knob_with_words(knob: contract.Knob) -> Any:
    """The spec field of a knob that also takes words (`maxConcurrency: auto`): an
    int-or-string, its range and words checked by the schema in the API server and by the knob
    table here."""

    def check(value: object) -> object:
        if value is None:
            return None
        try:
            return knob.check(value, what=knob.field)
        except TypeError as exc:  # pydantic reports ValueErrors, with the field's path
            raise ValueError(str(exc)) from None

    # No CEL: the API server's cost estimate of any rule on an int-or-string inside arrays of
    # components is over its budget. JSON Schema's checks are per type instead: the bounds
    # apply to the number form only, the pattern to the string form only.
    schema: dict[str, Any] = {
        "anyOf": [{"type": "integer"}, {"type": "string"}],
        "x-kubernetes-int-or-string": True,
        "description": crd_words(knob.description),
        "minimum": knob.minimum,
        "pattern": "^(" + "|".join(knob.words) + ")$",
    }
    if knob.maximum is not None:
        schema["maximum"] = knob.maximum
    kind = Annotated[int | str | None, BeforeValidator(check), WithJsonSchema(schema)]
    return (kind, Field(default=None, alias=knob.field))


def _knob_field(knob: contract.Knob) -> Any:
    """The spec field of one batching knob: bounds and description from the knob table."""
    if knob.words:
        return _knob_with_words(knob)
    # The CRD takes whole numbers (durations in milliseconds): an exclusive minimum of 0 is 1.
    lowest = knob.minimum + 1 if knob.exclusive_minimum else knob.minimum
    field = Field(
        default=None,
        alias=knob.field,
        ge=lowest,
        le=knob.maximum,
        description=crd_words(knob.description),
    )
    return (int | None, field)


# One optional field per knob of contract.BATCHING_KNOBS (`batching.maxBatchSize`), built
# from the table; type checkers see the base class, which has no fields of its own.
if TYPE_CHECKING:
    Batching = _BatchingRule
else:
    Batching = create_model(
        "Batching",
        __base__=_BatchingRule,
        __module__=__name__,
        __doc__="Adaptive batching overrides; unset values keep what the Runner declares.",
        **{knob.name: _knob_field(knob) for knob in contract.BATCHING_KNOBS},
    )


class MemberSpec(ComponentSpec):
    """A component of a role with many members (a runner): named, with workers and batching."""

    name: str = Field(
        min_length=1, max_length=contract.MAX_NAME_LENGTH, pattern=contract.NAME_PATTERN
    )
    """The name the service declares, e.g. `Runner(name=...)` (underscores allowed)."""
    workers: int = Field(default=1, ge=1, le=64)
    """Worker processes per pod."""
    batching: Batching | None = None
    """Batching overrides."""

    @field_validator("name")
    @classmethod
    def _not_api(cls, value: str) -> str:
        if contract.dns_label(value) == naming.API_COMPONENT:
            raise ValueError("'api' names the API server's objects; choose another name")
        return value


class RunnerSpec(MemberSpec):
    """One runner: its own Deployment, headless Service and HPA."""


class ServiceSpec(MemberSpec):
    """One dependency service of a `@kubento.service` graph: its own Deployment, headless
    Service and HPA; its pods serve the class's APIs over gRPC."""

    name: str = Field(
        min_length=1, max_length=contract.MAX_NAME_LENGTH, pattern=SERVICE_NAME_PATTERN
    )
    """The service's name as the code declares it (`@kubento.service(name=...)`, default the
    class name, e.g. `ModelA`); objects use its DNS form (`model-a`)."""

    @field_validator("name")
    @classmethod
    def _not_api_label(cls, value: str) -> str:
        if contract.service_label(value) == naming.API_COMPONENT:
            raise ValueError("'api' names the API server's objects; choose another name")
        return value


class TLS(Model):
    """TLS for the Ingress host."""

    secret_name: str = Field(min_length=1, max_length=253)
    """Secret holding tls.crt and tls.key."""


class Ingress(Model):
    """An Ingress (networking.k8s.io/v1) in front of the API Service."""

    enabled: bool = False
    """Create the Ingress."""
    class_name: str | None = None
    """IngressClass name."""
    host: str | None = Field(default=None, max_length=253)
    """Host name; none matches every host."""
    path: str = Field(default="/", pattern=r"^/")
    """Path prefix routed to the API."""
    annotations: dict[str, str] = Field(default_factory=dict)
    """Ingress annotations, e.g. for the ingress controller."""
    tls: TLS | None = None
    """Serve the host over TLS."""

    @model_validator(mode="after")
    def _tls_needs_host(self) -> Ingress:
        if self.tls is not None and not self.host:
            raise ValueError("tls needs a host")
        return self


class NetworkPolicySpec(Model):
    """NetworkPolicies of the BentoDeployment's pods: runners and dependency services take
    gRPC only from this BentoDeployment's own pods, metrics scrapes from `metricsFrom`; the
    API server takes HTTP from `apiFrom`."""

    enabled: bool = True
    """Render the NetworkPolicies (they take effect where the cluster's CNI enforces them)."""
    api_from: list[FreeObject] | None = None
    """networking/v1 NetworkPolicyPeers allowed to reach the API server; default: anyone."""
    metrics_from: list[FreeObject] = Field(default_factory=lambda: [{"namespaceSelector": {}}])
    """NetworkPolicyPeers allowed to scrape metrics; default: any pod in any namespace."""


class LocalObjectReference(Model):
    """A reference to an object in the same namespace."""

    name: str = Field(min_length=1, max_length=253)
    """Name of the object."""


_API_HAS_NO_QUEUE = (
    "the API server has no batching queue: its autoscaling.metric must be cpu "
    "(queue and inflight are for runners and services)"
)


class BentoDeploymentSpec(ComponentSpec):
    """A served application: one API server Deployment plus one Deployment per runner and
    per dependency service.

    The top-level component settings (resources, autoscaling, envs, probes, strategy,
    extra pod fields) are the API server's; each runner carries its own.
    """

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.runners) || self.runners.all(r, self.runners.exists_one("
                    "s, s.name.replace('_', '-') == r.name.replace('_', '-')))",
                    "message": "runner names must be unique (after '_' -> '-')",
                    "fieldPath": ".runners",
                },
                {
                    "rule": "!has(self.services) || self.services.all(r, "
                    "self.services.exists_one(s, s.name == r.name))",
                    "message": "service names must be unique",
                    "fieldPath": ".services",
                },
                {
                    "rule": "!has(self.autoscaling) || !has(self.autoscaling.metric) || "
                    "self.autoscaling.metric == 'cpu'",
                    "message": _API_HAS_NO_QUEUE,
                    "fieldPath": ".autoscaling.metric",
                },
            ]
        }
    )

    image: str = Field(min_length=1, max_length=1024)
    """Container image with the service code, built on the Kubento runtime image."""
    service: str = Field(pattern=SERVICE_PATTERN, max_length=256)
    """Import path `module:attribute` of the kubento Service."""
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = None
    """When the kubelet pulls the image; Kubernetes' default when unset."""
    image_pull_secrets: list[LocalObjectReference] = Field(default_factory=list)
    """Secrets with registry credentials for the image."""
    runners: list[RunnerSpec] = Field(default_factory=list, max_length=MAX_RUNNERS)
    """The service's runners; each gets its own pods."""
    services: list[ServiceSpec] = Field(default_factory=list, max_length=MAX_SERVICES)
    """The dependency services of a `@kubento.service` entry class; each gets its own pods."""
    ingress: Ingress | None = None
    """An Ingress in front of the API server."""
    network_policy: NetworkPolicySpec = Field(default_factory=lambda: NetworkPolicySpec())
    """Who may reach the pods; on by default."""

    @field_validator("runners")
    @classmethod
    def _unique_runners(cls, runners: list[RunnerSpec]) -> list[RunnerSpec]:
        contract.check_distinct("runner", (runner.name for runner in runners))
        return runners

    @field_validator("autoscaling")
    @classmethod
    def _api_scales_on_cpu(cls, autoscaling: Autoscaling | None) -> Autoscaling | None:
        if autoscaling is not None and autoscaling.metric != "cpu":
            raise ValueError(f"{_API_HAS_NO_QUEUE}, not {autoscaling.metric}")
        return autoscaling

    @model_validator(mode="after")
    def _distinct_object_names(self) -> BentoDeploymentSpec:
        """Runners and services share object names (`<deployment>-<name>`): none may collide."""
        seen: dict[str, str] = {}
        members = [(r.name, contract.dns_label(r.name), "runner") for r in self.runners]
        members += [(s.name, contract.service_label(s.name), "service") for s in self.services]
        for name, label, kind in members:
            taken = seen.setdefault(label, f"{kind} {name!r}")
            if taken != f"{kind} {name!r}":
                raise ValueError(
                    f"{taken} and {kind} {name!r} both become {label!r} in object names; rename one"
                )
        return self


class Condition(Model):
    """A metav1.Condition."""

    type: str
    """Ready, Progressing or Degraded."""
    status: Literal["True", "False", "Unknown"]
    """True, False or Unknown."""
    reason: str
    """CamelCase reason, e.g. CrashLoopBackOff or Unschedulable."""
    message: str = ""
    """What happened, naming the component, pod or field."""
    observed_generation: int | None = None
    """The spec generation the condition describes."""
    last_transition_time: str
    """When the status last changed (RFC 3339)."""


class ComponentStatus(Model):
    """Replica counts of one component's Deployment."""

    name: str
    """`api`, or the runner's or service's name."""
    deployment: str
    """Name of the Deployment."""
    replicas: int = 0
    """Pods of any revision."""
    ready_replicas: int = 0
    """Pods passing their readiness probe."""
    updated_replicas: int = 0
    """Pods running the current pod template."""
    available_replicas: int = 0
    """Pods ready for at least minReadySeconds."""
    desired_replicas: int = 0
    """Pods the Deployment (or its autoscaler) wants."""


class BentoDeploymentStatus(Model):
    """Observed state, written by the operator."""

    observed_generation: int | None = None
    """The spec generation the operator last applied."""
    conditions: list[Condition] = Field(default_factory=list)
    """Ready, Progressing and Degraded; Autoscaling while a component has an HPA."""
    api: ComponentStatus | None = None
    """The API server's Deployment."""
    runners: list[ComponentStatus] = Field(default_factory=list)
    """Each runner's Deployment."""
    services: list[ComponentStatus] = Field(default_factory=list)
    """Each dependency service's Deployment."""
    endpoint: str | None = None
    """Where the API answers: the Ingress URL or the in-cluster Service URL."""
    ready_components: str | None = None
    """Ready components / all components, e.g. 2/3."""
    api_replicas: str | None = None
    """Ready / desired API pods, e.g. 3/3."""
    runners_ready: str | None = None
    """Ready runners / all runners, e.g. 1/2."""
    services_ready: str | None = None
    """Ready services / all services, e.g. 3/3."""


class ObjectMeta(BaseModel):
    """The metadata render() needs; everything else is ignored."""

    model_config = ConfigDict(extra="ignore")

    name: str = Field(
        min_length=1, max_length=contract.MAX_NAME_LENGTH, pattern=DEPLOYMENT_NAME_PATTERN
    )
    namespace: str = "default"
    uid: str | None = None
    generation: int | None = None


class BentoDeployment(BaseModel):
    """A whole BentoDeployment object."""

    model_config = ConfigDict(extra="ignore")

    metadata: ObjectMeta
    spec: BentoDeploymentSpec


def _path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else part
    return path


def parse(obj: Mapping[str, Any]) -> BentoDeployment:
    """Validate a BentoDeployment object; raise SpecError naming the first bad field."""
    if not isinstance(obj, Mapping):
        raise SpecError("<root>", f"expected a BentoDeployment object, got {type(obj).__name__}")
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    if api_version is not None and api_version != naming.API_VERSION:
        raise SpecError("apiVersion", f"expected {naming.API_VERSION}, got {api_version!r}")
    if kind is not None and kind != naming.KIND:
        raise SpecError("kind", f"expected {naming.KIND}, got {kind!r}")
    try:
        return BentoDeployment.model_validate(obj)
    except ValidationError as exc:
        error = exc.errors()[0]
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown field"
        elif error["type"] == "missing":
            message = "required field is missing"
        more = exc.error_count() - 1
        if more:
            message += f" (and {more} more problem{'s' if more > 1 else ''})"
        raise SpecError(_path(error["loc"]) or "<root>", message) from None
