"""Pre-built runners for ONNX models on onnxruntime (`pip install 'kubento[onnx]'`).

    model = kubento.onnx.save_model("iris-onnx", onnx_model,
                                    signatures={"run": {"batchable": True, "batch_dim": 0}})
    runner = kubento.onnx.get("iris-onnx:latest").to_runner()
    labels, probabilities = await runner.run.async_run(features)

Stored as `model.onnx`, the serialised protobuf (no pickle). `run(*inputs)` feeds the
arguments to the graph's inputs in order and returns its output, or a tuple when the graph
has several; the inputs and outputs (name, type, shape) are recorded in the signature.
A worker that was given a GPU uses the CUDA execution provider when onnxruntime has it,
else the CPU one, with the worker's thread budget for intra-op threads.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kubento._models import framework
from kubento._models.store import Model, ModelStore, home
from kubento._models.tag import Tag

FRAMEWORK = "onnx"
MODEL_FILE = "model.onnx"
DEFAULT_SIGNATURES: dict[str, dict[str, Any]] = {"run": {"batchable": False}}
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"

__all__ = ["get", "load_model", "runnable_class", "save_model"]


def _serialised(model: Any) -> bytes:
    if isinstance(model, bytes):
        return model
    if isinstance(model, str | os.PathLike):
        return Path(model).read_bytes()
    if hasattr(model, "SerializeToString"):
        return bytes(model.SerializeToString())
    raise TypeError(
        f"kubento.onnx.save_model needs an onnx.ModelProto, its bytes or a .onnx path, "
        f"got {type(model).__name__}"
    )


def _io(nodes: Any) -> list[dict[str, Any]]:
    return [
        {
            "name": node.name,
            "type": node.type,
            # An int, a symbolic dimension's name, or None for an unnamed free dimension.
            "shape": [d if d is None or isinstance(d, int) else str(d) for d in node.shape],
        }
        for node in nodes
    ]


def save_model(
    name: str,
    model: Any,
    *,
    signatures: Mapping[str, Mapping[str, Any]] | None = None,
    labels: Mapping[str, str] | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Model:
    """Save an ONNX model; the only signature is `run` (batchable if you say so)."""
    import onnxruntime

    data = _serialised(model)
    checked = framework.signatures_of(None, signatures, DEFAULT_SIGNATURES, FRAMEWORK)
    if set(checked) != {"run"}:
        raise ValueError(f"onnx: the only signature is 'run', got {sorted(checked)}")
    # Opening a session checks the graph and tells its inputs and outputs.
    session = onnxruntime.InferenceSession(data, providers=[CPU])
    checked["run"]["inputs"] = _io(session.get_inputs())
    checked["run"]["outputs"] = _io(session.get_outputs())
    with ModelStore(home()).create(
        name,
        framework=FRAMEWORK,
        signatures=checked,
        labels=labels,
        metadata=metadata,
        framework_versions=framework.versions_of("onnxruntime", "onnx"),
    ) as saved:
        (saved.path / MODEL_FILE).write_bytes(data)
    return saved


def get(tag: str | Tag) -> Model:
    model = ModelStore(home()).get(tag)
    framework.require_framework(model, FRAMEWORK)
    return model


def default_providers() -> list[str]:
    import onnxruntime

    available = onnxruntime.get_available_providers()
    return [CUDA, CPU] if CUDA in available and framework.gpu_visible() else [CPU]


def load_model(tag: str | Tag | Model, providers: list[str] | None = None) -> Any:
    """An `onnxruntime.InferenceSession` over the stored model."""
    import onnxruntime

    model = tag if isinstance(tag, Model) else get(tag)
    framework.require_framework(model, FRAMEWORK)
    options = onnxruntime.SessionOptions()
    threads = framework.thread_budget()
    if threads:
        options.intra_op_num_threads = threads
    return onnxruntime.InferenceSession(
        str(model.path / MODEL_FILE),
        sess_options=options,
        providers=providers or default_providers(),
    )


def _call(session: Any, method: str, args: tuple[Any, ...]) -> Any:
    inputs = [node.name for node in session.get_inputs()]
    if len(args) != len(inputs):
        raise TypeError(f"the ONNX model takes {len(inputs)} inputs {inputs}, got {len(args)}")
    outputs = session.run(None, dict(zip(inputs, args, strict=True)))
    return outputs[0] if len(outputs) == 1 else tuple(outputs)


def runnable_class(model: Model) -> type:
    return framework.build_runnable(
        model,
        framework=FRAMEWORK,
        load=load_model,
        call=_call,
        supported_resources=("nvidia.com/gpu", "cpu"),
        multi_threading=True,
    )
