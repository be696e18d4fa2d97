"""The components of a BentoDeployment: what render() and status loop over.

A BentoDeployment is a list of components, each with a role (the process it
runs) and its own settings. The Yatai-shaped top level of the spec is the one
API component; each `runners[]` entry is a runner component, each `services[]`
entry a dependency service of a `@kubento.service` graph. A role with many
members is a list in the spec and in status (`runners`, `runnersReady`), its
members named; a role with one member is a single object (`api`, `apiReplicas`).

A new role is a `Role`, a list in the spec of `MemberSpec`s, and one line in
`components_of()`; its status fields and printer column follow from the role.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from kubento import contract
from kubento_operator import naming, spec


@dataclass(frozen=True)
class Role:
    """What kind of process a component runs, and so how it is exposed, probed and counted."""

    name: str
    """The `component` label value and the container name: `api`, `runner`."""
    title: str
    """Its printer column: `API`, `Runners`."""
    plural: str | None
    """The spec and status list of a role with many members (`runners`); None when the role
    has exactly one member, named after the role."""
    ports: tuple[tuple[str, int], ...]
    """(name, port) of the container and its Service."""
    probe: Literal["http", "grpc"]
    """HTTP probes on the contract's paths, or the standard gRPC health check."""
    headless: bool
    """A headless Service: the caller's gRPC client balances across every pod."""
    entry: bool = False
    """The component the Ingress and the endpoint point to."""
    probe_port: tuple[str, int] | None = None
    """(name, port) of a container port only the kubelet's probes use (in no Service, no
    NetworkPolicy rule); None: the probes use the first of `ports`."""
    label: Callable[[str], str] = contract.dns_label
    """A member's name as it appears in object names (`model_runner_a` -> `model-runner-a`;
    a service class `ModelA` -> `model-a`)."""

    @property
    def container_ports(self) -> tuple[tuple[str, int], ...]:
        """(name, port) of every container port: the Service's, then the probes' own."""
        return self.ports + ((self.probe_port,) if self.probe_port else ())

    @property
    def probed_port(self) -> tuple[str, int]:
        """(name, port) the kubelet's HTTP probes ask."""
        return self.probe_port or self.ports[0]

    @property
    def many(self) -> bool:
        return self.plural is not None

    @property
    def status_field(self) -> str:
        """`runners` (a list of ComponentStatus) or `api` (one)."""
        return self.plural or self.name

    @property
    def summary_field(self) -> str:
        """`runnersReady` (ready / all members) or `apiReplicas` (ready / desired pods)."""
        return f"{self.plural}Ready" if self.plural else f"{self.name}Replicas"

    def printer_column(self) -> dict[str, Any]:
        if self.plural:
            what = f"Ready {self.plural} / all {self.plural}."
        else:
            what = f"Ready / desired {self.title} pods."
        return {
            "name": self.title,
            "type": "string",
            "jsonPath": f".status.{self.summary_field}",
            "description": what,
        }


API = Role(
    naming.API_COMPONENT,
    "API",
    plural=None,
    ports=((contract.API_PORT_NAME, contract.API_PORT),),
    probe="http",
    headless=False,
    entry=True,
    probe_port=(contract.API_PROBE_PORT_NAME, contract.API_PROBE_PORT),
)
RUNNER = Role(
    naming.RUNNER_COMPONENT,
    "Runners",
    plural="runners",
    ports=(
        (contract.RUNNER_PORT_NAME, contract.RUNNER_PORT),
        (contract.RUNNER_METRICS_PORT_NAME, contract.RUNNER_METRICS_PORT),
    ),
    probe="grpc",
    headless=True,
)
SERVICE = Role(
    naming.SERVICE_COMPONENT,
    "Services",
    plural="services",
    ports=RUNNER.ports,
    probe="grpc",
    headless=True,
    label=contract.service_label,
)
"""A dependency service of a `@kubento.service` graph: a runner worker serving its APIs."""
ROLES: tuple[Role, ...] = (API, RUNNER, SERVICE)


@dataclass(frozen=True)
class Component:
    """One component of one BentoDeployment: its own Deployment, Service and autoscaler."""

    role: Role
    name: str
    """`api` for the API server, else the member's declared name (underscores allowed)."""
    deployment: str
    """Name of the BentoDeployment."""
    settings: spec.ComponentSpec
    """Resources, autoscaling, envs, probes, strategy and pod overrides."""
    workers: int = 1
    batching: spec.Batching | None = None

    @classmethod
    def member(cls, role: Role, deployment: str, member: spec.MemberSpec) -> Component:
        return cls(role, member.name, deployment, member, member.workers, member.batching)

    @property
    def object_name(self) -> str:
        """Name of its Deployment, Service and HPA."""
        return naming.object_name(self.deployment, self.role.label(self.name))

    @property
    def labels(self) -> dict[str, str]:
        return naming.component_labels(self.deployment, self.role.name, self._member)

    @property
    def selector(self) -> dict[str, str]:
        return naming.selector_labels(self.deployment, self.role.name, self._member)

    @property
    def _member(self) -> str | None:
        return self.name if self.role.many else None


def components_of(bd: spec.BentoDeployment) -> list[Component]:
    """Every component of `bd` in apply order: the API, each runner, each service as listed."""
    name = bd.metadata.name
    return [
        Component(API, naming.API_COMPONENT, name, bd.spec),
        *(Component.member(RUNNER, name, runner) for runner in bd.spec.runners),
        *(Component.member(SERVICE, name, service) for service in bd.spec.services),
    ]
