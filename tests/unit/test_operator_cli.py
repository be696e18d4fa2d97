"""`kubento-operator render` and `crds`, run as the real console script."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from kubento_operator import crd

REPO = Path(__file__).resolve().parents[2]
CLI = str(Path(sys.executable).parent / "kubento-operator")
QUICKSTART = REPO / "examples" / "quickstart" / "bentodeployment.yaml"


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, *args], input=stdin, capture_output=True, text=True, timeout=60, check=False
    )


def test_render_prints_the_children_as_a_yaml_stream() -> None:
    result = run("render", "-f", str(QUICKSTART))
    assert result.returncode == 0, result.stderr
    kinds = [doc["kind"] for doc in yaml.safe_load_all(result.stdout)]
    per_component = ["Service", "Deployment", "HorizontalPodAutoscaler", "NetworkPolicy"]
    assert sorted(kinds) == sorted(per_component * 2 + ["PodDisruptionBudget"] * 2)


def test_render_reads_stdin() -> None:
    result = run("render", "-f", "-", stdin=QUICKSTART.read_text())
    assert result.returncode == 0, result.stderr
    assert "quickstart-classifier" in result.stdout


def test_render_names_the_bad_field_and_exits_non_zero(tmp_path: Path) -> None:
    bad = yaml.safe_load(QUICKSTART.read_text())
    bad["spec"]["runners"][0]["autoscaling"] = {"minReplicas": 9, "maxReplicas": 2}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    result = run("render", "-f", str(path))
    assert result.returncode == 1
    assert result.stdout == ""
    assert "spec.runners[0].autoscaling" in result.stderr
    assert "minReplicas (9) must be less than or equal to maxReplicas (2)" in result.stderr


def test_render_reports_a_missing_file() -> None:
    result = run("render", "-f", "/nonexistent/bd.yaml")
    assert result.returncode == 2
    assert "cannot read /nonexistent/bd.yaml" in result.stderr


def test_render_reports_invalid_yaml(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("spec: [unclosed")
    result = run("render", "-f", str(path))
    assert result.returncode == 2
    assert "is not valid YAML" in result.stderr


def test_crds_writes_the_committed_crd(tmp_path: Path) -> None:
    result = run("crds", "--output", str(tmp_path))
    assert result.returncode == 0, result.stderr
    written = tmp_path / f"{crd.CRD_NAME}.yaml"
    assert written.read_text() == (REPO / "crds" / written.name).read_text()


def test_run_rejects_namespace_with_all_namespaces() -> None:
    result = run("run", "--all-namespaces", "--namespace", "a")
    assert result.returncode == 2
    assert "not allowed with argument" in result.stderr


def test_run_rejects_standalone_with_peering() -> None:
    result = run("run", "--standalone", "--peering", "x")
    assert result.returncode == 2
    assert "not allowed with argument" in result.stderr


def test_crds_regenerates_the_readme_knob_table(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"before\n{crd.README_BEGIN}\nstale\n{crd.README_END}\nafter\n")
    result = run("crds", "--output", str(tmp_path), "--readme", str(readme))
    assert result.returncode == 0, result.stderr
    assert readme.read_text() == f"before\n{crd.knob_table()}\nafter\n"
