"""`kubento serve`: the whole service as local processes, and nothing left behind."""

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubento._local.supervisor import free_port
from tests.integration.processes import REPO_ROOT, alive, children_of, example_module, stop


def start_serve(working_dir: str, port: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kubento",
            "serve",
            "service:svc",
            "--working-dir",
            working_dir,
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def read_until_ready(process: subprocess.Popen[str], timeout: float = 60) -> list[str]:
    assert process.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if line.strip().startswith("curl "):
            return lines
    raise AssertionError(f"serve never printed a curl; output: {lines}")


@pytest.fixture
def quickstart() -> Iterator[tuple[subprocess.Popen[str], list[str]]]:
    process = start_serve(str(REPO_ROOT / "examples" / "quickstart"), free_port())
    try:
        yield process, read_until_ready(process)
    finally:
        stop(process)


def test_serve_prints_a_curl_that_returns_the_models_answer(
    quickstart: tuple[subprocess.Popen[str], list[str]],
) -> None:
    _, lines = quickstart
    curl = lines[-1].strip()
    answer = subprocess.run(curl, shell=True, capture_output=True, text=True, timeout=30)
    assert answer.returncode == 0, answer.stderr
    example = example_module("quickstart")
    example.svc.init_local()
    sample = example.svc.apis["classify"].input.sample
    assert json.loads(answer.stdout) == example.classifier.predict.run(sample).tolist()


def test_serve_stops_every_child_on_sigterm(
    quickstart: tuple[subprocess.Popen[str], list[str]],
) -> None:
    process, _ = quickstart
    children = children_of(process.pid)
    assert len(children) == 2  # one runner, one API server
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    assert [pid for pid in children if alive(pid)] == []


def test_serve_exits_non_zero_naming_the_child_that_died(
    quickstart: tuple[subprocess.Popen[str], list[str]],
) -> None:
    process, _ = quickstart
    runner = next(
        pid
        for pid in children_of(process.pid)
        if b"runner" in Path(f"/proc/{pid}/cmdline").read_bytes()
    )
    os.kill(runner, signal.SIGKILL)
    assert process.wait(timeout=30) == 1
    assert process.stderr is not None
    assert "runner 'classifier' killed by signal 9" in process.stderr.read()


def test_serve_gives_the_runners_that_use_gpus_disjoint_gpus(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from kubento._local.supervisor import LocalServer
    from kubento._sdk.loader import load_service

    services = str(REPO_ROOT / "tests" / "integration" / "services")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3")
    server = LocalServer(
        load_service("gpu_probe:svc", services), "gpu_probe:svc", working_dir=services,
        port=free_port(),
    )  # fmt: skip
    server.start()
    try:
        seen = {}
        for child in server.children:
            environ = Path(f"/proc/{child.process.pid}/environ").read_bytes().split(b"\0")
            env = dict(item.decode().split("=", 1) for item in environ if b"=" in item)
            seen[child.name] = env.get("CUDA_VISIBLE_DEVICES")
    finally:
        server.stop()
    assert seen == {
        "runner 'vision'": "0,1",
        "runner 'speech'": "2,3",
        "runner 'tokens'": "",
        "api server": "0,1,2,3",
    }
