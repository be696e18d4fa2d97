"""`kubento serve`: every runner worker, dependency service and the API server as local
processes.

The processes are wired by the same runner map and started with the same
commands the operator renders into pods (see contract.py). If any child dies,
`serve` says which and why, stops the others and exits non-zero: a local
server that silently lost a runner would answer 503s with no explanation.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

from kubento import contract
from kubento._runner import gpus, nvml
from kubento._sdk.classes import ServiceConfig
from kubento._sdk.graph import GraphService
from kubento._sdk.runner import Runner
from kubento._sdk.service import Service

READY_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 15.0
_PR_SET_PDEATHSIG = 1


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    # If `serve` itself is killed with SIGKILL, the kernel still stops its children.
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def local_argv(argv: list[str]) -> list[str]:
    """The contract's argv, run with this interpreter instead of the `kubento` script."""
    assert argv[0] == contract.EXECUTABLE
    return [sys.executable, "-m", "kubento", *argv[1:]]


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]


class LocalServer:
    """Starts, watches and stops the processes of one service."""

    def __init__(
        self,
        service: Service,
        import_path: str,
        *,
        working_dir: str,
        host: str = "127.0.0.1",
        port: int = contract.API_PORT,
        probe_port: int | None = None,
    ) -> None:
        self.service = service
        self.import_path = import_path
        self.working_dir = os.path.abspath(working_dir)
        self.host = host
        self.port = port
        self.probe_port = probe_port
        self.env = dict(os.environ)
        self.children: list[Child] = []
        self.runner_map: dict[str, str] = {}

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        process = subprocess.Popen(
            [*local_argv(argv), "--working-dir", self.working_dir],
            env=env,
            preexec_fn=_die_with_parent,
        )
        self.children.append(Child(name, process))

    def start(self) -> None:
        # Every address is known before any child starts: a service checks its map at start.
        runners = runners_to_start(self.service)
        names = list(runners) + [r.name for _, r in service_components(self.service)]
        ports = {name: free_port(self.host) for name in names}
        self.runner_map = {name: f"{self.host}:{port}" for name, port in ports.items()}
        encoded = contract.encode_runner_map(self.runner_map)
        # The machine's GPUs go to the runners that use GPUs, disjoint when there are enough.
        devices = gpus.serve_envs(
            {name: runner.runnable_class.SUPPORTED_RESOURCES for name, runner in runners.items()},
            self.env,
            nvml.device_count,
        )
        for name in runners:
            argv = contract.runner_command(
                self.import_path,
                name,
                host=self.host,
                port=ports[name],
                metrics_port=free_port(self.host),
            )
            env = {**self.env, **devices[name], contract.ENV_RUNNER_NAME: name}
            env[contract.ENV_RUNNER_MAP] = encoded
            self._spawn(f"runner {name!r}", argv, env)
        for config, runner in service_components(self.service):
            argv = contract.service_command(
                self.import_path,
                config.name,
                host=self.host,
                port=ports[runner.name],
                metrics_port=free_port(self.host),
                workers=config.workers,
            )
            env = {**self.env, contract.ENV_SERVICE_NAME: config.name}
            self._spawn(f"service {config.name!r}", argv, {**env, contract.ENV_RUNNER_MAP: encoded})
        api_env = {**self.env, contract.ENV_RUNNER_MAP: encoded}
        self._spawn(
            "api server",
            contract.api_command(
                self.import_path, host=self.host, port=self.port, probe_port=self.probe_port
            ),
            api_env,
        )

    def dead_child(self) -> Child | None:
        return next((c for c in self.children if c.process.poll() is not None), None)

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            dead = self.dead_child()
            if dead is not None:
                raise ChildDied(dead)
            try:
                with urllib.request.urlopen(self.url + contract.READINESS_PATH, timeout=1) as reply:
                    if reply.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        raise TimeoutError(f"{self.service.name} was not ready within {timeout_s:.0f}s")

    def stop(self) -> None:
        for child in self.children:
            if child.process.poll() is None:
                child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for child in self.children:
            try:
                child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait()


def service_components(service: Service) -> list[tuple[ServiceConfig, Runner]]:
    """The dependency services of an entry service class, each its own process."""
    if isinstance(service, GraphService):
        return list(service.components())
    return []


def runners_to_start(service: Service) -> dict[str, Runner]:
    """The runners to start: a Service's, or every runner of a service class graph."""
    if isinstance(service, GraphService):
        return {runner.name: runner for runner in service.graph.runners()}
    return dict(service.runners)


class ChildDied(RuntimeError):
    def __init__(self, child: Child) -> None:
        code = child.process.returncode
        why = f"killed by signal {-code}" if code < 0 else f"exited with code {code}"
        super().__init__(f"{child.name} {why}; see its output above")
        self.child = child


def example_curls(service: Service, url: str) -> list[str]:
    curls = []
    for api in service.apis.values():
        body = api.input.sample_body()
        if body is None:
            continue
        curls.append(
            f"curl -s -X POST {url}{api.route} -H 'content-type: {api.input.media_type}' "
            f"-d {shlex.quote(body)}"
        )
    return curls


def serve(
    service: Service,
    import_path: str,
    *,
    working_dir: str,
    port: int,
    host: str,
    probe_port: int | None = None,
) -> int:
    """Run until Ctrl-C/SIGTERM (exit 0) or until a child dies (exit 1)."""
    server = LocalServer(
        service, import_path, working_dir=working_dir, host=host, port=port, probe_port=probe_port
    )
    stopping = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server.start()
    try:
        try:
            server.wait_ready()
        except (ChildDied, TimeoutError) as exc:
            if stopping:
                return 0
            print(f"kubento serve: {exc}", file=sys.stderr)
            return 1
        print(f"kubento serve: {service.name} is ready at {server.url}", flush=True)
        for api in service.apis.values():
            print(f"  POST {server.url}{api.route}", flush=True)
        print(f"  docs: {server.url}{contract.DOCS_PATH}", flush=True)
        for curl in example_curls(service, server.url):
            print(f"try:\n  {curl}", flush=True)
        while not stopping:
            dead = server.dead_child()
            if dead is not None:
                print(f"kubento serve: {ChildDied(dead)}; stopping", file=sys.stderr)
                return 1
            time.sleep(0.2)
        return 0
    finally:
        server.stop()
