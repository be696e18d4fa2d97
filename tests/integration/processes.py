"""Start the runtime as real processes for integration tests."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from kubento import contract
from kubento._local.supervisor import free_port, local_argv

SERVICES_DIR = str(Path(__file__).parent / "services")
REPO_ROOT = Path(__file__).resolve().parents[2]


def spawn(
    argv: list[str],
    env: dict[str, str] | None = None,
    cwd: str = SERVICES_DIR,
    log_path: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start a runtime process; its output goes to a file (a pipe nobody drains would fill),
    `log_path` when given, else an anonymous one."""
    with open(log_path, "wb") if log_path else tempfile.TemporaryFile() as log:
        return subprocess.Popen(
            [*local_argv(argv), "--working-dir", cwd],
            env={**os.environ, **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def stop(process: subprocess.Popen[Any], sig: int = signal.SIGTERM, timeout: float = 20) -> None:
    if process.poll() is None:
        process.send_signal(sig)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def wait_http(
    url: str,
    timeout: float = 30,
    status: int = 200,
    watch: Sequence[subprocess.Popen[bytes]] = (),
) -> None:
    """Wait for `url` to answer `status`; fail at once if a watched process exits."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        dead = [p.args for p in watch if p.poll() is not None]
        if dead:
            raise RuntimeError(f"waiting for {url}: process exited: {dead}")
        try:
            reply = httpx.get(url, timeout=1)
            if reply.status_code == status:
                return
            last = reply.status_code
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.05)
    raise TimeoutError(f"{url} did not answer {status} within {timeout}s (last: {last})")


class RunnerProcess:
    def __init__(
        self,
        service: str,
        name: str,
        env: dict[str, str] | None = None,
        working_dir: str = SERVICES_DIR,
        workers: int = 1,
    ) -> None:
        self.service, self.name, self.env, self.workers = service, name, env, workers
        self.working_dir = working_dir
        self.port = free_port()
        self.metrics_port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        fd, path = tempfile.mkstemp(prefix=f"kubento-runner-{name}-", suffix=".log")
        os.close(fd)
        self.log_path = Path(path)

    def log(self) -> str:
        """Everything the runner process printed so far."""
        return self.log_path.read_text(errors="replace")

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, wait: bool = True) -> None:
        argv = contract.runner_command(
            self.service,
            self.name,
            host="127.0.0.1",
            port=self.port,
            metrics_port=self.metrics_port,
            workers=self.workers,
        )
        self.process = spawn(argv, self.env, cwd=self.working_dir, log_path=self.log_path)
        if wait:
            self.wait_ready()

    def wait_ready(self) -> None:
        assert self.process is not None
        wait_http(
            f"http://127.0.0.1:{self.metrics_port}{contract.READINESS_PATH}", watch=[self.process]
        )

    def stop(self, sig: int = signal.SIGTERM) -> None:
        assert self.process is not None
        stop(self.process, sig)
        self.log_path.unlink(missing_ok=True)


@contextmanager
def running_service(
    service: str,
    runners: list[str],
    env: dict[str, str] | None = None,
    api_log: Path | None = None,
    working_dir: str = SERVICES_DIR,
    probe_port: int | None = None,
) -> Iterator[tuple[str, dict[str, RunnerProcess]]]:
    """Runner processes plus an API server process, wired as the operator wires pods; the
    API server's output goes to `api_log` when given, and it answers its probes on
    `probe_port` too when given (as pods are probed)."""
    workers = {name: RunnerProcess(service, name, env, working_dir) for name in runners}
    api_port = free_port()
    api: subprocess.Popen[bytes] | None = None
    try:
        # Every process starts at once (the ports are chosen beforehand), then is waited for.
        for worker in workers.values():
            worker.start(wait=False)
        runner_map = {name: worker.target for name, worker in workers.items()}
        api = spawn(
            contract.api_command(service, host="127.0.0.1", port=api_port, probe_port=probe_port),
            {**(env or {}), contract.ENV_RUNNER_MAP: contract.encode_runner_map(runner_map)},
            log_path=api_log,
            cwd=working_dir,
        )
        for worker in workers.values():
            worker.wait_ready()
        url = f"http://127.0.0.1:{api_port}"
        wait_http(url + contract.READINESS_PATH, watch=[api])
        yield url, workers
    finally:
        if api is not None:
            stop(api)
        for worker in workers.values():
            if worker.process is not None:
                worker.stop()


def api_statuses(url: str, name: str, **only: str) -> dict[tuple[str, str], float]:
    """(api, status) -> value of the API server's series `name` (a counter or a histogram's
    `_count`), the labels in `only` fixed."""
    text = httpx.get(url + contract.METRICS_PATH).text
    return {
        (sample.labels["api"], sample.labels["status"]): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and only.items() <= sample.labels.items()
    }


def children_of(pid: int) -> set[int]:
    """Live (non-zombie) child processes of `pid`, from /proc."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and _stat(int(entry.name))[1:2] == [str(pid)]:
            found.add(int(entry.name))
    return {child for child in found if alive(child)}


def alive(pid: int) -> bool:
    fields = _stat(pid)
    return bool(fields) and fields[0] != "Z"


def _stat(pid: int) -> list[str]:
    """State and parent pid of a process, or [] when it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[:2]
    except OSError:
        return []


def example_dir(name: str) -> str:
    return str(REPO_ROOT / "examples" / name)


def example_module(name: str) -> ModuleType:
    """An example's service.py imported under its own name, to compute reference answers."""
    return module_from(REPO_ROOT / "examples" / name / "service.py", f"example_{name}")


def module_from(path: Path, name: str) -> ModuleType:
    """The file at `path` imported as module `name` (services share the name `service`)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
