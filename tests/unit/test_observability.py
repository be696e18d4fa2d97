"""The operability kit names only real metrics: every series the Grafana dashboard queries,
every row of the README's metric table and every prometheus-adapter rule is checked against
what the runtime and the operator actually register (their own registries, filled the way
the processes fill them), with the labels they carry."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.registry import Collector

from kubento import contract
from kubento._api.app import Metrics as APIMetrics
from kubento._runner.nvml import GPUCollector
from kubento.batching import DispatcherMetrics
from kubento_operator import metrics as operator_metrics
from kubento_operator import naming, spec
from tests.unit.test_gpus import FakeNVML

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "deploy" / "grafana" / "kubento.json"
ADAPTER_VALUES = REPO / "deploy" / "prometheus-adapter" / "values.yaml"
E2E_PROMETHEUS = REPO / "e2e" / "prometheus.yaml"
README = REPO / "README.md"

# Labels Prometheus puts on every scraped series (target labels), and the pod labels the
# chart's PodMonitor copies onto them.
TARGET_LABELS = {"namespace", "pod", "container", "job", "instance", "endpoint"}
POD_LABELS = {naming.prometheus_label(label) for label in naming.POD_TARGET_LABELS}


@dataclass(frozen=True)
class Family:
    """One metric as it is queried: counters by their `_total` name."""

    name: str
    type: str
    labels: frozenset[str]
    exporter: str

    @property
    def series(self) -> set[str]:
        if self.type == "histogram":
            return {f"{self.name}_bucket", f"{self.name}_sum", f"{self.name}_count"}
        return {self.name}


def _families(registry: CollectorRegistry, exporter: str) -> list[Family]:
    found = []
    collectors: list[Collector] = list(registry._collector_to_names)
    for collector in collectors:
        if isinstance(collector, MetricWrapperBase):
            name, kind = collector._name, collector._type
            labels = frozenset(collector._labelnames)
        else:
            for family in collector.collect():
                if family.name.startswith("kubento_"):
                    labels = frozenset(key for sample in family.samples for key in sample.labels)
                    found.append(Family(family.name, family.type, labels, exporter))
            continue
        if not name.startswith("kubento_"):
            continue
        found.append(Family(f"{name}_total" if kind == "counter" else name, kind, labels, exporter))
    return found


@pytest.fixture(scope="module")
def catalogue() -> dict[str, Family]:
    """Every metric Kubento exports, by the name a query uses."""
    api = CollectorRegistry()
    APIMetrics(api)
    runner = CollectorRegistry()
    DispatcherMetrics(runner)
    gpu = CollectorRegistry()
    gpu.register(GPUCollector(FakeNVML(), "r"))  # type: ignore[arg-type]
    assert operator_metrics.RECONCILES._name in REGISTRY._names_to_collectors
    families = (
        _families(api, "api")
        + _families(runner, "runner")
        + _families(gpu, "runner")
        + _families(REGISTRY, "operator")
    )
    by_name = {family.name: family for family in families}
    assert len(by_name) == len(families), "two metrics share a name"
    return by_name


def _series_names(catalogue: dict[str, Family]) -> dict[str, Family]:
    return {series: family for family in catalogue.values() for series in family.series}


METRIC = re.compile(r"\bkubento_[a-z_]+\b")
MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)\s*\"")
GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
LEGEND = re.compile(r"\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}")


def _labels_used(expr: str, legend: str = "") -> set[str]:
    used = set(MATCHER.findall(expr)) | set(LEGEND.findall(legend))
    for group in GROUPING.findall(expr):
        used |= {label.strip() for label in group.split(",") if label.strip()}
    return used


def _queries(dashboard: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(where, expr, legend) of every panel target and template variable."""
    found = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            found.append((panel["title"], target["expr"], target.get("legendFormat", "")))
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]["query"]
            match = re.fullmatch(r"label_values\((.*),\s*([a-zA-Z_]+)\)", query)
            assert match, query
            found.append((f"${variable['name']}", match.group(1), "{{" + match.group(2) + "}}"))
    return found


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def test_every_series_the_dashboard_queries_is_exported(catalogue: dict[str, Family]) -> None:
    exported = _series_names(catalogue)
    queries = _queries(dashboard())
    assert queries
    for where, expr, _ in queries:
        names = METRIC.findall(expr)
        assert names, f"{where}: no Kubento metric in {expr}"
        unknown = sorted(set(names) - exported.keys())
        assert not unknown, f"{where}: {unknown} is exported by no registry"


def test_no_exported_label_collides_with_a_target_label(catalogue: dict[str, Family]) -> None:
    """Prometheus renames a series' own label that a target label shadows (`exported_pod`),
    and queries by that name then find nothing."""
    for family in catalogue.values():
        clash = sorted(family.labels & (TARGET_LABELS | POD_LABELS))
        assert not clash, f"{family.name} exports {clash}, which the scrape sets itself"


def test_every_label_the_dashboard_uses_is_on_its_series(catalogue: dict[str, Family]) -> None:
    exported = _series_names(catalogue)
    for where, expr, legend in _queries(dashboard()):
        families = [exported[name] for name in METRIC.findall(expr)]
        allowed = TARGET_LABELS | POD_LABELS | {"le"} | set().union(*(f.labels for f in families))
        unknown = sorted(_labels_used(expr, legend) - allowed)
        assert not unknown, f"{where}: labels {unknown} are not on {[f.name for f in families]}"


def test_the_dashboard_shows_what_an_operator_of_a_fleet_asks_for() -> None:
    queried = {name for _, expr, _ in _queries(dashboard()) for name in METRIC.findall(expr)}
    assert {
        "kubento_api_requests_total",  # requests, sheds (429/503)
        "kubento_api_request_duration_seconds_bucket",  # latency
        "kubento_runner_batch_size_bucket",  # batch size
        "kubento_runner_queue_wait_seconds_bucket",  # queue wait
        "kubento_runner_rejections_total",  # runner sheds
        contract.QUEUE_DEPTH_METRIC,
        contract.INFLIGHT_METRIC,
        "kubento_gpu_utilization_ratio",
        "kubento_gpu_memory_used_bytes",
    } <= queried


def test_every_dashboard_panel_reads_the_chosen_prometheus() -> None:
    for panel in dashboard()["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            assert panel["fieldConfig"]["defaults"]["unit"], panel["title"]


def _readme_table() -> dict[str, dict[str, str]]:
    text = README.read_text()
    match = re.search(r"<!-- metrics -->\n(.*?)<!-- /metrics -->", text, re.S)
    assert match, "README has no <!-- metrics --> table"
    rows = [line for line in match.group(1).splitlines() if line.startswith("| `")]
    table = {}
    for row in rows:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        name = cells[0].strip("`")
        assert name not in table, f"{name} is documented twice"
        table[name] = {
            "type": cells[1],
            "labels": cells[2],
            "unit": cells[3],
            "exporter": cells[4],
            "meaning": cells[5],
        }
    return table


def test_the_readme_documents_every_metric_once_with_its_type_labels_and_unit(
    catalogue: dict[str, Family],
) -> None:
    table = _readme_table()
    assert sorted(table) == sorted(catalogue)
    for name, family in catalogue.items():
        row = table[name]
        assert row["type"] == family.type, name
        documented = set(re.findall(r"`([a-z_]+)`", row["labels"]))
        assert documented == set(family.labels), name
        assert row["unit"] and row["meaning"], name
        assert family.exporter in row["exporter"], name


def test_the_adapter_serves_exactly_the_autoscaling_series_per_pod(
    catalogue: dict[str, Family],
) -> None:
    values = yaml.safe_load(ADAPTER_VALUES.read_text())
    served = {}
    for rule in values["rules"]["custom"]:
        (series,) = METRIC.findall(rule["seriesQuery"])
        assert re.fullmatch(rule["name"]["matches"], series)
        served[rule["name"]["as"]] = series
        assert rule["resources"]["overrides"] == {
            "namespace": {"resource": "namespace"},
            "pod": {"resource": "pod"},
        }
        # Summed per pod over methods (and workers, already summed by the runner).
        assert rule["metricsQuery"] == "sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)"
        assert catalogue[series].type == "gauge"
    assert served == {name: name for name in contract.AUTOSCALING_SERIES.values()}
    address = f"{values['prometheus']['url']}:{values['prometheus']['port']}"
    assert address == spec.DEFAULT_PROMETHEUS_ADDRESS


def test_the_e2e_prometheus_labels_series_as_the_pod_monitor_does() -> None:
    """The e2e's Prometheus (e2e/prometheus.yaml) puts on every series what the adapter's
    rules and KEDA's queries select on: namespace, pod, and the PodMonitor's pod labels as
    naming.prometheus_label names them."""
    (config_map,) = [
        doc for doc in yaml.safe_load_all(E2E_PROMETHEUS.read_text()) if doc["kind"] == "ConfigMap"
    ]
    (job,) = yaml.safe_load(config_map["data"]["prometheus.yml"])["scrape_configs"]
    relabels = job["relabel_configs"]
    copied = {r["target_label"]: r["source_labels"] for r in relabels if "target_label" in r}
    assert copied["namespace"] == ["__meta_kubernetes_namespace"]
    assert copied["pod"] == ["__meta_kubernetes_pod_name"]
    (labelmap,) = [r for r in relabels if r.get("action") == "labelmap"]
    assert labelmap.get("replacement", "$1") == "$1"
    for label in naming.POD_TARGET_LABELS:
        name = naming.prometheus_label(label)
        match = re.fullmatch(labelmap["regex"], f"__meta_kubernetes_pod_label_{name}")
        assert match and match.group(1) == name, label
