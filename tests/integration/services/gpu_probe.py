"""Runnables that report which GPUs their worker process was given."""

import os

import kubento


class OnGPU(kubento.Runnable):
    SUPPORTED_RESOURCES = ("nvidia.com/gpu", "cpu")

    @kubento.Runnable.method
    def devices(self) -> str:
        return os.environ.get("CUDA_VISIBLE_DEVICES", "<unset>")


class OnCPU(kubento.Runnable):
    @kubento.Runnable.method
    def devices(self) -> str:
        return os.environ.get("CUDA_VISIBLE_DEVICES", "<unset>")


svc = kubento.Service(
    "gpu-probe",
    runners=[
        kubento.Runner(OnGPU, name="vision"),
        kubento.Runner(OnGPU, name="speech"),
        kubento.Runner(OnCPU, name="tokens"),
    ],
)
