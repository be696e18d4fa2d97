"""The other servers' virtual environments for `make bench`: BentoML and Ray Serve, each in
its own venv under the cache (never Kubento's, never a dependency of it).

`python bench/envs.py bentoml ray` creates what is missing and prints each venv's path;
`bench/run.py` and `bench/graph.py` call `ensure()` themselves, so a fresh machine needs
nothing else. A venv is reused when its marker file says it was completed with the same
requirements; an interrupted install is started again from scratch.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

BENTOML_VERSION = "1.4.38"
RAY_VERSION = "2.60.0"
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "kubento"
MARKER = ".kubento-bench-requirements"


def requirements(kind: str) -> list[str]:
    """What each venv holds. The scikit-learn that Kubento's venv has goes into BentoML's,
    so the stored logistic regression runs the same estimator code on both sides."""
    if kind == "bentoml":
        return [f"bentoml=={BENTOML_VERSION}", "numpy", f"scikit-learn=={version('scikit-learn')}"]
    if kind == "ray":
        return [f"ray[serve]=={RAY_VERSION}", "numpy"]
    raise ValueError(f"unknown bench environment {kind!r}: use bentoml or ray")


def default_path(kind: str) -> Path:
    pinned = BENTOML_VERSION if kind == "bentoml" else RAY_VERSION
    return CACHE / f"{kind}-{pinned}"


def ensure(kind: str, venv: Path | None = None) -> Path:
    """The venv of `kind` (at `venv`, else in the cache), created with pip when missing."""
    venv = (venv or default_path(kind)).resolve()
    wanted = "\n".join(requirements(kind))
    marker = venv / MARKER
    if marker.exists() and marker.read_text() == wanted:
        return venv
    if venv.exists() and not (venv / "bin" / "python").exists():
        raise SystemExit(f"bench: {venv} exists but is no virtual environment; remove it")
    if not venv.exists() or not marker.exists():
        shutil.rmtree(venv, ignore_errors=True)
        print(f"bench: creating {venv} ({', '.join(requirements(kind))})", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    pip = [python, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, *requirements(kind)], check=True)
    marker.write_text(wanted)
    return venv


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kinds", nargs="+", choices=("bentoml", "ray"))
    args = parser.parse_args()
    for kind in args.kinds:
        print(ensure(kind))
    return 0


if __name__ == "__main__":
    sys.exit(main())
