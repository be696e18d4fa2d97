"""Which GPUs each worker sees, decided without GPUs: from device lists."""

from __future__ import annotations

import logging
import sys
from types import SimpleNamespace

import pytest
from prometheus_client import CollectorRegistry

from kubento._runner import gpus, nvml


def never() -> int | None:
    raise AssertionError("the device list was given: the driver is not asked")


@pytest.mark.parametrize(
    ("devices", "workers", "plan"),
    [
        ("0,1,2,3", 4, [["0"], ["1"], ["2"], ["3"]]),  # one GPU per worker
        ("0,1", 4, [["0"], ["1"], ["0"], ["1"]]),  # workers share GPUs round robin
        ("0,1,2,3", 2, [["0", "1"], ["2", "3"]]),  # several GPUs per worker
        ("0,1,2", 2, [["0", "1"], ["2"]]),
        ("", 3, [[], [], []]),
    ],
)
def test_split_gives_each_worker_its_share(
    devices: str, workers: int, plan: list[list[str]]
) -> None:
    visible = gpus.visible_gpus({gpus.CUDA: devices}, never)
    assert gpus.split(visible or [], workers) == plan


def test_the_device_plugins_list_is_the_containers_devices_zero_to_n() -> None:
    assert gpus.visible_gpus({gpus.NVIDIA: "GPU-aa,GPU-bb"}, never) == ["0", "1"]
    assert gpus.visible_gpus({gpus.NVIDIA: "all"}, lambda: 3) == ["0", "1", "2"]
    assert gpus.visible_gpus({gpus.NVIDIA: "void"}, never) == []
    assert gpus.visible_gpus({}, lambda: None) is None


def test_workers_of_a_cpu_runnable_see_no_gpu() -> None:
    envs = gpus.worker_envs(("cpu",), 2, {gpus.CUDA: "0,1"}, never)
    assert envs == [{gpus.CUDA: ""}, {gpus.CUDA: ""}]


def test_unknown_gpus_are_left_to_cuda() -> None:
    assert gpus.worker_envs(("nvidia.com/gpu",), 2, {}, lambda: None) == [{}, {}]


def test_serve_gives_gpu_runners_disjoint_gpus_and_the_others_none() -> None:
    plan = gpus.serve_envs(
        {"vision": ("nvidia.com/gpu",), "speech": ("nvidia.com/gpu",), "tokens": ("cpu",)},
        {},
        lambda: 4,
    )
    assert plan == {
        "vision": {gpus.CUDA: "0,1"},
        "speech": {gpus.CUDA: "2,3"},
        "tokens": {gpus.CUDA: ""},
    }


class FakeNVML:
    """The NVML calls the collector makes, for two GPUs."""

    NVML_TEMPERATURE_GPU = 0

    def nvmlInit(self) -> None: ...

    def nvmlDeviceGetCount(self) -> int:
        return 2

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        return index

    def nvmlDeviceGetUUID(self, handle: int) -> bytes:
        return f"GPU-{handle}".encode()

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> SimpleNamespace:
        return SimpleNamespace(used=(handle + 1) * 2**30, total=16 * 2**30)

    def nvmlDeviceGetUtilizationRates(self, handle: int) -> SimpleNamespace:
        return SimpleNamespace(gpu=40 + handle)

    def nvmlDeviceGetTemperature(self, handle: int, sensor: int) -> int:
        return 60 + handle

    def nvmlDeviceGetPowerUsage(self, handle: int) -> int:
        return 150_000  # milliwatts


def test_gpu_metrics_per_index_and_uuid_of_the_workers_gpus(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", FakeNVML())
    collector = nvml.gpu_collector("vision", "1")
    assert collector is not None
    registry = CollectorRegistry()
    registry.register(collector)
    labels = {"runner": "vision", "gpu": "1", "uuid": "GPU-1"}
    assert registry.get_sample_value("kubento_gpu_utilization_ratio", labels) == 0.41
    assert registry.get_sample_value("kubento_gpu_memory_used_bytes", labels) == 2 * 2**30
    assert registry.get_sample_value("kubento_gpu_memory_total_bytes", labels) == 16 * 2**30
    assert registry.get_sample_value("kubento_gpu_temperature_celsius", labels) == 61
    assert registry.get_sample_value("kubento_gpu_power_watts", labels) == 150
    other = {**labels, "gpu": "0", "uuid": "GPU-0"}
    assert registry.get_sample_value("kubento_gpu_power_watts", other) is None


def test_without_nvml_no_gpu_series_and_one_log_line(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import fails as if not installed
    with caplog.at_level(logging.INFO, logger="kubento.runner"):
        assert nvml.gpu_collector("vision", None) is None
    assert [r.getMessage() for r in caplog.records] == [
        "runner=vision event=no_gpu_metrics reason=nvml_unavailable"
    ]
    assert nvml.device_count() is None
    assert nvml.gpu_collector("tokens", "") is None  # a worker given no GPU does not look
