"""The committed protobuf module matches runner.proto (regenerate with `make proto`)."""

import subprocess
import sys
from pathlib import Path

RUNTIME = Path(__file__).resolve().parents[2] / "runtime"
PROTO = "kubento/_proto/runner.proto"


def test_generated_code_is_fresh(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", "-I", str(RUNTIME),
         f"--python_out={tmp_path}", f"--pyi_out={tmp_path}", str(RUNTIME / PROTO)],
        check=True,
    )  # fmt: skip
    for name in ("runner_pb2.py", "runner_pb2.pyi"):
        fresh = (tmp_path / "kubento" / "_proto" / name).read_text()
        committed = (RUNTIME / "kubento" / "_proto" / name).read_text()
        assert fresh == committed, f"{name} is stale: run `make proto`"
