"""Which GPUs each runner worker process sees: the one place that decides (as BentoML's
allocator does). Testable without GPUs: give the process a device list.

The GPUs a process is given come from `CUDA_VISIBLE_DEVICES`, else from
`NVIDIA_VISIBLE_DEVICES` as Kubernetes' device plugin sets it (the container then sees
them as CUDA devices 0..n-1). They are split among a runner's worker processes: with at
least as many workers as GPUs each worker gets one (workers share GPUs round robin past
that, BentoML's `workers_per_resource` > 1); with fewer, each gets a contiguous share. A
runnable whose `SUPPORTED_RESOURCES` has no GPU sees none (`CUDA_VISIBLE_DEVICES=""`), so
it can never grab GPU memory by accident.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

CUDA = "CUDA_VISIBLE_DEVICES"
NVIDIA = "NVIDIA_VISIBLE_DEVICES"
GPU_RESOURCES = frozenset({"nvidia.com/gpu", "gpu"})
_NO_DEVICES = frozenset({"", "none", "void"})


def uses_gpu(supported_resources: Sequence[str]) -> bool:
    return any(resource in GPU_RESOURCES for resource in supported_resources)


def visible_gpus(env: Mapping[str, str], count: Callable[[], int | None]) -> list[str] | None:
    """The CUDA device ids this process was given, or None when nothing says: no variable
    set and `count` (the driver's device count) unknown. `count` also answers NVIDIA's
    `all`."""
    if CUDA in env:
        return [device.strip() for device in env[CUDA].split(",") if device.strip()]
    devices = env.get(NVIDIA)
    if devices is not None and devices.strip().lower() in _NO_DEVICES:
        return []
    if devices is not None and devices.strip().lower() != "all":
        return [str(index) for index in range(len(devices.split(",")))]
    found = count()
    return None if found is None else [str(index) for index in range(found)]


def split(gpus: Sequence[str], workers: int) -> list[list[str]]:
    """Each worker's GPUs: one each, shared round robin, or contiguous shares."""
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    if not gpus:
        return [[] for _ in range(workers)]
    if workers >= len(gpus):
        return [[gpus[index % len(gpus)]] for index in range(workers)]
    share, extra = divmod(len(gpus), workers)
    plan, start = [], 0
    for index in range(workers):
        stop = start + share + (1 if index < extra else 0)
        plan.append(list(gpus[start:stop]))
        start = stop
    return plan


def worker_envs(
    supported_resources: Sequence[str],
    workers: int,
    env: Mapping[str, str],
    count: Callable[[], int | None],
) -> list[dict[str, str]]:
    """`CUDA_VISIBLE_DEVICES` for each of a runner's worker processes (nothing set when
    the GPUs cannot be known: CUDA's own default then applies)."""
    if not uses_gpu(supported_resources):
        return [{CUDA: ""} for _ in range(workers)]
    gpus = visible_gpus(env, count)
    if gpus is None:
        return [{} for _ in range(workers)]
    return [{CUDA: ",".join(share)} for share in split(gpus, workers)]


def serve_envs(
    runners: Mapping[str, Sequence[str]],
    env: Mapping[str, str],
    count: Callable[[], int | None],
) -> dict[str, dict[str, str]]:
    """`kubento serve`: the machine's GPUs split among the runners that use GPUs (disjoint
    when there are enough), and none for the others. `runners`: name -> its resources."""
    gpus = visible_gpus(env, count)
    gpu_runners = [name for name, resources in runners.items() if uses_gpu(resources)]
    shares = split(gpus or [], len(gpu_runners) or 1)
    plan: dict[str, dict[str, str]] = {}
    for name in runners:
        if name not in gpu_runners:
            plan[name] = {CUDA: ""}
        elif gpus is None:
            plan[name] = {}
        else:
            plan[name] = {CUDA: ",".join(shares[gpu_runners.index(name)])}
    return plan
