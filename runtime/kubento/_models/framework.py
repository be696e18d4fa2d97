"""What the framework modules share: signatures, and turning a saved model into a Runner.

A framework module supplies how to load the saved files and how to call one signature;
this module builds a Runnable class per model whose methods are the model's signatures
(with their `batchable` and `batch_dim`) and wraps it in a Runner named after the model.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import re
from collections.abc import Callable, Mapping
from typing import Any

import kubento
from kubento._models.store import Model, ModelStore, ModelStoreError, home

# framework name in model.yaml -> the module whose `runnable_class(model)` serves it.
FRAMEWORK_MODULES = {
    "sklearn": "kubento.sklearn",
    "onnx": "kubento.onnx",
    "pytorch": "kubento.pytorch",
}
SIGNATURE_KEYS = frozenset({"batchable", "batch_dim"})


def signatures_of(
    model: object,
    signatures: Mapping[str, Mapping[str, Any]] | None,
    default: Mapping[str, Mapping[str, Any]],
    framework: str,
) -> dict[str, dict[str, Any]]:
    """Check `signatures` (method -> {batchable, batch_dim}) against the model's methods."""
    chosen = {name: dict(options) for name, options in (signatures or default).items()}
    if not chosen:
        raise ValueError(f"{framework}: signatures must name at least one method")
    for name, options in chosen.items():
        unknown = set(options) - SIGNATURE_KEYS
        if unknown:
            raise ValueError(
                f"{framework}: signature {name!r} has unknown keys {sorted(unknown)}; "
                f"allowed: {sorted(SIGNATURE_KEYS)}"
            )
        if model is not None and not callable(getattr(model, name, None)):
            raise ValueError(f"{framework}: the model has no method {name!r} to make a signature")
        batch_dim = options.get("batch_dim", 0)
        options["batchable"] = bool(options.get("batchable", False))
        options["batch_dim"] = list(batch_dim) if isinstance(batch_dim, tuple | list) else batch_dim
    return chosen


def versions_of(*distributions: str) -> dict[str, str]:
    found = {}
    for distribution in distributions:
        try:
            found[distribution] = importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


def runner_name(model: Model) -> str:
    """The model name as a runner name (runner names have no '.')."""
    return re.sub(r"[^a-z0-9_]+", "-", model.tag.name).strip("-_") or "model"


def require_framework(model: Model, framework: str) -> None:
    if model.info.framework != framework:
        raise ModelStoreError(
            f"model {model.tag} was saved by kubento.{model.info.framework}, not "
            f"kubento.{framework}: load it with kubento.{model.info.framework}.load_model"
        )


def thread_budget() -> int | None:
    """Threads for one model call, as the runner worker's budget set them (`_runner.cpus`)."""
    from kubento._runner.cpus import threads_per_call

    return threads_per_call()


def gpu_visible() -> bool:
    """Whether this worker was given a GPU (an unset variable leaves it to the framework)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    return visible is None or visible.strip() not in ("", "-1")


def build_runnable(
    model: Model,
    *,
    framework: str,
    load: Callable[[Model], Any],
    call: Callable[[Any, str, tuple[Any, ...]], Any],
    supported_resources: tuple[str, ...],
    multi_threading: bool,
) -> type[kubento.Runnable]:
    """A Runnable class whose methods are `model`'s signatures; it loads the model on init."""
    tag = str(model.tag)

    def __init__(self: Any) -> None:
        self.model = load(ModelStore(home()).get(tag))

    attrs: dict[str, Any] = {
        "__init__": __init__,
        "__doc__": f"kubento.{framework} runnable for model {tag}.",
        "SUPPORTED_RESOURCES": supported_resources,
        "SUPPORTS_CPU_MULTI_THREADING": multi_threading,
        "model_tag": tag,
    }
    for method_name, options in model.info.signatures.items():
        batch_dim = options.get("batch_dim", 0)
        attrs[method_name] = kubento.Runnable.method(
            batchable=bool(options.get("batchable", False)),
            batch_dim=tuple(batch_dim) if isinstance(batch_dim, list) else batch_dim,
        )(_method(method_name, call))
    class_name = f"{framework.capitalize()}Runnable_{runner_name(model).replace('-', '_')}"
    return type(class_name, (kubento.Runnable,), attrs)


def _method(name: str, call: Callable[[Any, str, tuple[Any, ...]], Any]) -> Callable[..., Any]:
    def method(self: Any, *args: Any) -> Any:
        return call(self.model, name, args)

    method.__name__ = method.__qualname__ = name
    return method


def to_runner(
    model: Model,
    *,
    name: str | None = None,
    max_batch_size: int | None = None,
    max_latency_ms: int | None = None,
    method_configs: Mapping[str, Mapping[str, int | float]] | None = None,
) -> kubento.Runner:
    """The pre-built Runner for a saved model (framework taken from its model.yaml)."""
    module_name = FRAMEWORK_MODULES.get(model.info.framework)
    if module_name is None:
        raise ModelStoreError(
            f"model {model.tag} has framework {model.info.framework!r}, which has no pre-built "
            f"runner (known: {sorted(FRAMEWORK_MODULES)}): write a kubento.Runnable that loads "
            f"it and pass models=[model] to kubento.Runner"
        )
    module = importlib.import_module(module_name)
    return kubento.Runner(
        module.runnable_class(model),
        name=name or runner_name(model),
        max_batch_size=max_batch_size,
        max_latency_ms=max_latency_ms,
        method_configs=method_configs,
        models=[model],
    )
