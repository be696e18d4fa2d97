"""A local Kubernetes control plane: etcd, kube-apiserver, controller-manager, scheduler, kwok.

kwokctl's binary runtime starts and stops the processes (real TLS, RBAC, service-account
tokens, admission); the binaries come from `tests/cluster/bins.sh` (KUBEBUILDER_ASSETS or
the Go build cache), so nothing is downloaded. On top of that this module adds fake nodes,
one of them advertising `nvidia.com/gpu`, and a kubectl helper.

    python tests/cluster/controlplane.py up      # start (harmless when already running)
    python tests/cluster/controlplane.py down    # stop (harmless when nothing runs)
    python tests/cluster/controlplane.py status
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
BINS_SCRIPT = REPO / "tests" / "cluster" / "bins.sh"
BINARIES = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kwok",
    "kwokctl",
    "helm",
)
GPU_RESOURCE = "nvidia.com/gpu"
IMAGE = "registry.invalid/kubento-test:never-pulled"  # for test pods: kwok runs no containers

# Fake nodes managed by kwok: generous CPU/memory so scheduling is decided by the GPU count.
NODES: tuple[dict[str, Any], ...] = (
    {"name": "kwok-cpu-0", "capacity": {"cpu": "32", "memory": "128Gi", "pods": "110"}},
    {
        "name": "kwok-gpu-0",
        "capacity": {"cpu": "32", "memory": "256Gi", "pods": "110", GPU_RESOURCE: "4"},
    },
)

# kwokctl options without a command-line flag. Its default binds every component to 0.0.0.0
# and counts ports down from 32767, so two clusters created at once (parallel test runs)
# pick the same ones; we hand it ports the kernel chose instead.
KWOKCTL_CONFIG = {"apiVersion": "config.kwok.x-k8s.io/v1alpha1", "kind": "KwokctlConfiguration"}
KWOKCTL_OPTIONS = {"bindAddress": "127.0.0.1"}
PORT_OPTIONS = (
    "etcdPort",
    "etcdPeerPort",
    "kubeApiserverPort",
    "kubeControllerManagerPort",
    "kubeSchedulerPort",
    "kwokControllerPort",
)


class ControlPlaneError(RuntimeError):
    """The control plane could not be started, reached or stopped."""


class ComponentExitedError(ControlPlaneError):
    """A control-plane process exited while the cluster was starting."""


class BinariesMissingError(ControlPlaneError):
    """A control-plane binary is not where bins.sh says it should be."""


class KubectlError(ControlPlaneError):
    """kubectl exited non-zero."""

    def __init__(self, args: Sequence[str], result: subprocess.CompletedProcess[str]) -> None:
        self.result = result
        super().__init__(
            f"kubectl {' '.join(args)} exited {result.returncode}: "
            f"{result.stderr.strip() or result.stdout.strip()}"
        )


def find_binaries() -> dict[str, Path]:
    """Return name -> path of every control-plane binary, failing clearly if one is missing."""
    out = subprocess.run(
        ["bash", str(BINS_SCRIPT), "--print"], check=True, capture_output=True, text=True
    ).stdout
    paths = {
        name: Path(path) for name, _, path in (line.partition("=") for line in out.splitlines())
    }
    missing = [
        f"{name} (expected at {paths.get(name)})"
        for name in BINARIES
        if not _executable(paths.get(name))
    ]
    if missing:
        raise BinariesMissingError(
            "control-plane binaries are missing: "
            + ", ".join(missing)
            + ". Run `make cluster-bins` (builds them with Go into the cache), or set "
            "KUBEBUILDER_ASSETS to a directory holding etcd and kube-apiserver and run it."
        )
    return paths


def free_ports(count: int) -> list[int]:
    """Distinct loopback ports that were free a moment ago (the kernel picks them)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _running(pid: str) -> bool:
    """Whether process `pid` is alive (an exited child nobody reaped is a zombie, not alive)."""
    try:
        stat = Path(f"/proc/{int(pid)}/stat").read_text()
    except (ValueError, OSError):
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def _executable(path: Path | None) -> bool:
    return path is not None and path.is_file() and os.access(path, os.X_OK)


def node_manifest(name: str, capacity: Mapping[str, str]) -> dict[str, Any]:
    """A Node object kwok takes over (annotation) and keeps Ready with the given capacity."""
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "kubernetes.io/role": "agent",
                "type": "kwok",
            },
        },
        "spec": {},
        "status": {
            "capacity": dict(capacity),
            "allocatable": dict(capacity),
            "nodeInfo": {
                "architecture": "amd64",
                "operatingSystem": "linux",
                "kubeletVersion": "fake",
                "kubeProxyVersion": "fake",
            },
        },
    }


@dataclass
class ControlPlane:
    """One kwokctl-managed cluster named `name`, with its state under `workdir`."""

    name: str
    workdir: Path
    kubeconfig: Path

    @property
    def cluster_dir(self) -> Path:
        return self.workdir / "clusters" / self.name

    @property
    def logs_dir(self) -> Path:
        return self.cluster_dir / "logs"

    @property
    def _kwokctl_config(self) -> Path:
        return self.workdir / f"{self.name}.kwokctl.yaml"

    @property
    def _kwokctl_output(self) -> Path:
        return self.workdir / f"{self.name}.kwokctl.log"

    def exists(self) -> bool:
        return (self.cluster_dir / "kwok.yaml").is_file()

    def logs(self) -> dict[str, Path]:
        """Component name -> its log file (etcd, kube-apiserver, ..., kwok-controller)."""
        if not self.logs_dir.is_dir():
            return {}
        return {p.stem: p for p in sorted(self.logs_dir.glob("*.log"))}

    def _env(self) -> dict[str, str]:
        return {**os.environ, "KWOK_WORKDIR": str(self.workdir)}

    def _kwokctl(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        kwokctl = find_binaries()["kwokctl"]
        result = subprocess.run(
            [str(kwokctl), "--name", self.name, *args],
            env=self._env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if result.returncode != 0:
            raise ControlPlaneError(
                f"kwokctl {' '.join(args)} failed ({result.returncode}):\n"
                f"{result.stdout}{result.stderr}\nlogs: {self.logs_dir}"
            )
        return result

    def _start(self, args: list[str], kwokctl: Path, deadline: float) -> None:
        """Run `kwokctl create cluster` until the API server is ready, failing fast.

        kwokctl itself waits two minutes for an API server that already exited (say, on a
        port another process took), so we watch the components while it runs.
        """
        output = self._kwokctl_output
        with output.open("w") as out:
            proc = subprocess.Popen(
                [str(kwokctl), "--name", self.name, *args],
                env=self._env(),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            copied = False
            while True:
                if proc.poll() not in (None, 0):
                    raise ControlPlaneError(
                        f"kwokctl {' '.join(args[:2])} failed ({proc.returncode}):\n"
                        f"{output.read_text()}\nlogs: {self.logs_dir}"
                    )
                if not copied and (self.cluster_dir / "kubeconfig.yaml").is_file():
                    self.kubeconfig.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(self.cluster_dir / "kubeconfig.yaml", self.kubeconfig)
                    self.kubeconfig.chmod(0o600)
                    copied = True
                if copied and self.healthy():
                    break
                self._check("the API server to become ready", deadline)
                time.sleep(0.5)
            proc.wait(timeout=max(deadline - time.monotonic(), 1))
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl against this cluster as the admin; raise KubectlError if check fails."""
        result = subprocess.run(
            ["kubectl", "--kubeconfig", str(self.kubeconfig), *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise KubectlError(args, result)
        return result

    def environ(self) -> dict[str, str]:
        """os.environ with KUBECONFIG pointing at this cluster (for kubectl, helm, operators)."""
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig)}

    def token_kubeconfig(self, token: str, path: Path) -> Path:
        """Write a kubeconfig that reaches this cluster as the bearer of `token` (no admin cert)."""
        admin = json.loads(
            self.kubectl("config", "view", "--raw", "--minify", "--flatten", "-o", "json").stdout
        )
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": self.name, "cluster": admin["clusters"][0]["cluster"]}],
            "users": [{"name": "token", "user": {"token": token}}],
            "contexts": [{"name": "token", "context": {"cluster": self.name, "user": "token"}}],
            "current-context": "token",
        }
        path.write_text(json.dumps(config))
        path.chmod(0o600)
        return path

    def get_json(self, *args: str) -> Any:
        """`kubectl get ARGS -o json`, parsed."""
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)

    def healthy(self) -> bool:
        if not self.kubeconfig.is_file():
            return False
        try:
            return self.kubectl("get", "--raw", "/readyz", check=False, timeout=10).stdout == "ok"
        except subprocess.TimeoutExpired:
            return False

    def up(self, timeout: float = 180, attempts: int = 3) -> bool:
        """Start the cluster and wait until nodes are Ready; False if it already ran.

        A stopped or broken cluster is recreated. A start where a component exits (another
        process took one of its ports in the meantime) is retried on fresh ports.
        """
        if self.exists() and self.healthy():
            return False
        binaries = find_binaries()
        for attempt in range(1, attempts + 1):
            self.down()
            try:
                self._create(binaries, timeout)
                return True
            except ComponentExitedError:
                if attempt == attempts:
                    raise
        raise AssertionError("unreachable")

    def _create(self, binaries: Mapping[str, Path], timeout: float) -> None:
        ports = free_ports(len(PORT_OPTIONS))
        options = {**KWOKCTL_OPTIONS, **dict(zip(PORT_OPTIONS, ports, strict=True))}
        config = self._kwokctl_config
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(json.dumps({**KWOKCTL_CONFIG, "options": options}))
        deadline = time.monotonic() + timeout
        self._start(
            [
                "create",
                "cluster",
                f"--config={config}",
                "--runtime=binary",
                "--kubeconfig=",
                "--secure-port=true",
                "--kube-authorization=true",
                "--kube-admission=true",
                "--quiet-pull=true",
                f"--etcd-binary={binaries['etcd']}",
                f"--kube-apiserver-binary={binaries['kube-apiserver']}",
                f"--kube-controller-manager-binary={binaries['kube-controller-manager']}",
                f"--kube-scheduler-binary={binaries['kube-scheduler']}",
                f"--kwok-controller-binary={binaries['kwok']}",
            ],
            binaries["kwokctl"],
            deadline,
        )
        nodes = "\n---\n".join(json.dumps(node_manifest(n["name"], n["capacity"])) for n in NODES)
        self.kubectl("apply", "-f", "-", input=nodes)
        self._wait("kwok nodes to become Ready", self._nodes_ready, deadline)
        # Pods are admitted only once the controller-manager made the default ServiceAccount.
        self._wait("the default ServiceAccount", self._default_service_account, deadline)

    def down(self) -> bool:
        """Stop the cluster and remove its state; False if nothing was there."""
        if not self.exists():
            self.kubeconfig.unlink(missing_ok=True)
            return False
        # kwokctl removes its context from --kubeconfig (it refuses an empty path): point it at
        # the cluster's own kubeconfig, which goes away with the cluster anyway.
        own = self.cluster_dir / "kubeconfig.yaml"
        self._kwokctl("delete", "cluster", f"--kubeconfig={own}", timeout=120)
        self.kubeconfig.unlink(missing_ok=True)
        for leftover in (self._kwokctl_config, self._kwokctl_output):
            leftover.unlink(missing_ok=True)
        return True

    def keep_logs(self, dest: Path) -> Path:
        """Copy every component's log to dest (the cluster dir is removed by down())."""
        if dest.exists():
            shutil.rmtree(dest)
        dest.mkdir(parents=True)
        for name, path in self.logs().items():
            shutil.copyfile(path, dest / f"{name}.log")
        if self._kwokctl_output.is_file():
            shutil.copyfile(self._kwokctl_output, dest / "kwokctl.log")
        return dest

    def _nodes_ready(self) -> bool:
        nodes = self.get_json("nodes")["items"]
        ready = {
            n["metadata"]["name"]
            for n in nodes
            for c in n.get("status", {}).get("conditions", [])
            if c["type"] == "Ready" and c["status"] == "True"
        }
        return all(n["name"] in ready for n in NODES)

    def _default_service_account(self) -> bool:
        return self.kubectl("get", "serviceaccount", "default", check=False).returncode == 0

    def exited_components(self) -> list[str]:
        """Components whose process (per kwokctl's pid files) is no longer running."""
        exited = []
        for pid_file in sorted((self.cluster_dir / "pids").glob("*.pid")):
            if not _running(pid_file.read_text().strip()):
                exited.append(pid_file.stem)
        return exited

    def _wait(self, what: str, condition: Any, deadline: float) -> None:
        while not condition():
            self._check(what, deadline)
            time.sleep(0.5)

    def _check(self, what: str, deadline: float) -> None:
        """Raise if a component exited (seen twice, half a second apart) or time is up."""
        if self.exited_components():
            time.sleep(0.5)
            exited = self.exited_components()
            if exited:
                tails = "\n".join(
                    f"--- {name}: {self.logs_dir / (name + '.log')}\n{self.log_tail(name)}"
                    for name in exited
                )
                raise ComponentExitedError(
                    f"{', '.join(exited)} exited while waiting for {what}:\n{tails}"
                )
        if time.monotonic() > deadline:
            raise ControlPlaneError(f"timed out waiting for {what}; logs: {self.logs_dir}")

    def log_tail(self, component: str, lines: int = 5) -> str:
        """The last `lines` lines of one component's log."""
        path = self.logs_dir / f"{component}.log"
        try:
            return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"
        except OSError as err:
            return f"(cannot read {path}: {err})"


def local_cluster() -> ControlPlane:
    """The cluster `make cluster` manages (state and kubeconfig under .kubento/cluster/)."""
    base = REPO / ".kubento" / "cluster"
    return ControlPlane(name="kubento", workdir=base / "kwok", kubeconfig=base / "kubeconfig")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["up", "down", "status"])
    args = parser.parse_args(argv)
    cluster = local_cluster()
    kubeconfig = os.path.relpath(cluster.kubeconfig)
    try:
        if args.command == "up":
            started = time.monotonic()
            if cluster.up():
                print(f"control plane up in {time.monotonic() - started:.0f}s")
            else:
                print("control plane already running")
            print(f"  KUBECONFIG={kubeconfig} kubectl get nodes")
            print(f"  logs: {os.path.relpath(cluster.logs_dir)}/")
            print("  stop it with: make cluster-down")
        elif args.command == "down":
            print("control plane stopped" if cluster.down() else "no control plane running")
        else:
            running = cluster.exists() and cluster.healthy()
            print(f"control plane {'running' if running else 'not running'}")
            if running:
                print(f"  KUBECONFIG={kubeconfig} kubectl get nodes")
            return 0 if running else 1
    except ControlPlaneError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
