"""GPU metrics from NVML (`nvidia-ml-py`, the `kubento[gpu]` extra) on a runner's metrics
endpoint: utilisation, memory, temperature and power per GPU index and UUID, labelled by
runner (the scrape adds the pod). Without the package or a driver the process starts
normally, logs once and exports no GPU series.

The collector reads the devices when scraped, so it is multiprocess-safe by construction:
only the process serving the metrics port registers it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from types import ModuleType
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger("kubento.runner")

_LABELS = ("runner", "gpu", "uuid")
"""No `pod`: Prometheus puts the pod on every series as a target label, and one of ours of
that name would come out renamed `exported_pod`."""


def load() -> ModuleType | None:
    """pynvml, initialised; None (logged once by the caller) when there is no driver."""
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except Exception:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...
        return None
    return pynvml


def device_count() -> int | None:
    """The driver's GPU count, or None when it cannot be known (no NVML, no driver)."""
    nvml = load()
    if nvml is None:
        return None
    try:
        return int(nvml.nvmlDeviceGetCount())
    except Exception:
        return None


class GPUCollector(Collector):
    """Samples the GPUs this process was given (`CUDA_VISIBLE_DEVICES` indices, or all)."""

    def __init__(self, nvml: ModuleType, runner: str, devices: list[int] | None = None) -> None:
        self.nvml = nvml
        self.runner = runner
        self.devices = devices

    def collect(self) -> Iterator[GaugeMetricFamily]:
        nvml = self.nvml
        families = {
            "utilization": GaugeMetricFamily(
                "kubento_gpu_utilization_ratio", "GPU busy time share (0-1).", labels=_LABELS
            ),
            "used": GaugeMetricFamily(
                "kubento_gpu_memory_used_bytes", "GPU memory in use.", labels=_LABELS
            ),
            "total": GaugeMetricFamily(
                "kubento_gpu_memory_total_bytes", "GPU memory in all.", labels=_LABELS
            ),
            "temperature": GaugeMetricFamily(
                "kubento_gpu_temperature_celsius", "GPU core temperature.", labels=_LABELS
            ),
            "power": GaugeMetricFamily(
                "kubento_gpu_power_watts", "GPU power draw.", labels=_LABELS
            ),
        }
        indices = self.devices
        if indices is None:
            indices = list(range(nvml.nvmlDeviceGetCount()))
        for index in indices:
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            uuid = _text(nvml.nvmlDeviceGetUUID(handle))
            labels = [self.runner, str(index), uuid]
            memory = nvml.nvmlDeviceGetMemoryInfo(handle)
            utilization = nvml.nvmlDeviceGetUtilizationRates(handle)
            families["utilization"].add_metric(labels, utilization.gpu / 100)
            families["used"].add_metric(labels, memory.used)
            families["total"].add_metric(labels, memory.total)
            families["temperature"].add_metric(
                labels, nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU)
            )
            families["power"].add_metric(labels, nvml.nvmlDeviceGetPowerUsage(handle) / 1000)
        yield from families.values()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def gpu_collector(runner: str, visible: str | None) -> GPUCollector | None:
    """The collector for this runner process, or None (logged once) without NVML."""
    if visible is not None and not visible.strip():
        return None  # this worker was given no GPU
    nvml = load()
    if nvml is None:
        log.info("runner=%s event=no_gpu_metrics reason=nvml_unavailable", runner)
        return None
    devices = None
    if visible:
        devices = [int(d) for d in visible.split(",") if d.strip().isdigit()]
    return GPUCollector(nvml, runner, devices)
