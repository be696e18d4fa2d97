"""kube-score on what the operator renders for the examples: no NetworkPolicy or
PodDisruptionBudget criticals, and no critical beyond the ones the README says we accept.

kube-score is built with Go into the cache by `make kube-score-bin` (the Makefile pins the
version); this test builds it when it is missing and skips, loudly, only when it cannot.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubento_operator.render import render

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = ("quickstart", "composition", "graph")
CRITICAL = 1
DISRUPTION_AND_ISOLATION = {
    "pod-networkpolicy",
    "networkpolicy-targets-pod",
    "deployment-has-poddisruptionbudget",
    "poddisruptionbudget-has-policy",
}
ACCEPTED = {
    # Pods take the BentoDeployment's imagePullPolicy (Kubernetes' default when unset):
    # Always would break clusters that load images onto nodes, as the kind e2e does.
    "container-image-pull-policy",
    # No default ephemeral-storage budget fits every model (request bodies and /tmp use
    # it); set one with resources.requests/limits.custom.ephemeral-storage.
    "container-ephemeral-storage-request-and-limit",
    # No CPU limit unless the spec sets one (throttling costs latency); memory limits too
    # are the spec's to set.
    "container-resources",
}
"""Criticals kube-score reports that are choices, each explained in the README."""


def _kube_score() -> Path:
    version = re.search(r"^KUBE_SCORE_VERSION := (\S+)$", (REPO / "Makefile").read_text(), re.M)
    assert version, "the Makefile no longer pins KUBE_SCORE_VERSION"
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    path = cache / "kubento" / f"kube-score-{version.group(1)}" / "kube-score"
    if not os.access(path, os.X_OK):
        built = subprocess.run(
            ["make", "-s", "kube-score-bin"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=900,
        )
        if built.returncode != 0 or not os.access(path, os.X_OK):
            message = (
                f"KUBE-SCORE COULD NOT BE BUILT ({path}); the kube-score check did not run:\n"
                + (built.stderr or built.stdout)[-2000:]
            )
            warnings.warn(message, stacklevel=1)
            pytest.skip(message)
    return path


@pytest.fixture(scope="module")
def kube_score() -> Path:
    return _kube_score()


def score(kube_score: Path, tmp_path: Path, bento_deployment: Mapping[str, Any]) -> list[Any]:
    manifests = tmp_path / "rendered.yaml"
    manifests.write_text(yaml.safe_dump_all(render(bento_deployment), sort_keys=False))
    result = subprocess.run(
        [str(kube_score), "score", "--output-format", "json", str(manifests)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    # kube-score exits 1 when anything is critical; the JSON says what.
    assert result.returncode in (0, 1), result.stderr
    scored: list[Any] = json.loads(result.stdout)
    return scored


def grades(scored: list[Any]) -> list[tuple[str, str, int]]:
    """(object, check id, grade) of every check that ran."""
    return [
        (
            f"{obj['type_meta']['kind']}/{obj['object_meta']['name']}",
            check["check"]["id"],
            check["grade"],
        )
        for obj in scored
        for check in obj["checks"]
        if not check["skipped"]
    ]


def example(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(
        (REPO / "examples" / name / "bentodeployment.yaml").read_text()
    )
    return loaded


@pytest.mark.parametrize("name", EXAMPLES)
def test_no_network_policy_or_disruption_budget_criticals(
    kube_score: Path, tmp_path: Path, name: str
) -> None:
    ran = grades(score(kube_score, tmp_path, example(name)))
    checked = {check for _, check, _ in ran}
    # The checks ran (a check that never runs cannot fail).
    assert {"pod-networkpolicy", "deployment-has-poddisruptionbudget"} <= checked
    criticals = [(obj, check) for obj, check, grade in ran if grade == CRITICAL]
    assert not [c for c in criticals if c[1] in DISRUPTION_AND_ISOLATION]
    assert {check for _, check in criticals} <= ACCEPTED, criticals


def test_kube_score_catches_pods_left_without_a_network_policy(
    kube_score: Path, tmp_path: Path
) -> None:
    bd = example("composition")
    bd["spec"]["networkPolicy"] = {"enabled": False}
    criticals = {
        check for _, check, grade in grades(score(kube_score, tmp_path, bd)) if grade == CRITICAL
    }
    assert "pod-networkpolicy" in criticals
