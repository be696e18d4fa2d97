"""Pre-built runners for PyTorch `nn.Module`s (`pip install 'kubento[pytorch]'`).

    model = kubento.pytorch.save_model("mnist", net,
                                       signatures={"__call__": {"batchable": True}})
    runner = kubento.pytorch.get("mnist:latest").to_runner()

Stored with `torch.save(module)` as `model.pt`: a pickle of the whole module, so its class
must be importable where it loads, and loading it runs code the file names. That is a
trust decision about your own store (load only models you saved or imported from an
archive whose sha256 you pinned); nothing is ever unpickled from the network by a runner.
Calls run under `torch.inference_mode()`, on the first GPU the worker was given when
CUDA is available (else the CPU), with `torch.set_num_threads` from the worker's thread
budget. numpy arrays in become tensors on that device; tensors out come back as arrays.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubento._models import framework
from kubento._models.store import Model, ModelStore, home
from kubento._models.tag import Tag

FRAMEWORK = "pytorch"
MODEL_FILE = "model.pt"
DEFAULT_SIGNATURES: dict[str, dict[str, Any]] = {"__call__": {"batchable": False}}

__all__ = ["get", "load_model", "runnable_class", "save_model"]


def save_model(
    name: str,
    model: Any,
    *,
    signatures: Mapping[str, Mapping[str, Any]] | None = None,
    labels: Mapping[str, str] | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Model:
    """Save an `nn.Module`; signatures name its methods (default `__call__`, i.e. forward)."""
    import torch

    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"kubento.pytorch.save_model needs a torch.nn.Module, got {model!r}")
    checked = framework.signatures_of(model, signatures, DEFAULT_SIGNATURES, FRAMEWORK)
    with ModelStore(home()).create(
        name,
        framework=FRAMEWORK,
        signatures=checked,
        labels=labels,
        metadata=metadata,
        options={"model_class": f"{type(model).__module__}.{type(model).__qualname__}"},
        framework_versions=framework.versions_of("torch"),
    ) as saved:
        torch.save(model, saved.path / MODEL_FILE)
    return saved


def get(tag: str | Tag) -> Model:
    model = ModelStore(home()).get(tag)
    framework.require_framework(model, FRAMEWORK)
    return model


def device() -> Any:
    import torch

    return torch.device(
        "cuda:0" if framework.gpu_visible() and torch.cuda.is_available() else "cpu"
    )


def load_model(tag: str | Tag | Model, device_id: str | None = None) -> Any:
    """The module, unpickled (see the trust note above), in eval mode on `device_id`."""
    import torch

    model = tag if isinstance(tag, Model) else get(tag)
    framework.require_framework(model, FRAMEWORK)
    target = torch.device(device_id) if device_id else device()
    module = torch.load(model.path / MODEL_FILE, map_location=target, weights_only=False)
    module.eval()
    return module


def _load_for_worker(model: Model) -> Any:
    import torch

    threads = framework.thread_budget()
    if threads:
        torch.set_num_threads(threads)
    return load_model(model)


def _to_numpy(value: Any) -> Any:
    import torch

    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    if isinstance(value, tuple | list):
        return tuple(_to_numpy(item) for item in value)
    return value


def _call(module: Any, method: str, args: tuple[Any, ...]) -> Any:
    import numpy as np
    import torch

    parameter = next(module.parameters(), None)
    target = parameter.device if parameter is not None else torch.device("cpu")
    tensors = [
        # Arrays decoded from the wire are read-only views; torch wants writable memory.
        torch.as_tensor(arg if arg.flags.writeable else arg.copy(), device=target)
        if isinstance(arg, np.ndarray)
        else arg
        for arg in args
    ]
    with torch.inference_mode():
        output = getattr(module, method)(*tensors)
    return _to_numpy(output)


def runnable_class(model: Model) -> type:
    return framework.build_runnable(
        model,
        framework=FRAMEWORK,
        load=_load_for_worker,
        call=_call,
        supported_resources=("nvidia.com/gpu", "cpu"),
        multi_threading=True,
    )
