"""Small real models for the framework tests: a fitted sklearn classifier, an ONNX graph."""

from typing import Any

import numpy as np

BATCHED = {"batchable": True, "batch_dim": 0}


def iris_classifier() -> Any:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    features, labels = load_iris(return_X_y=True)
    return LogisticRegression(max_iter=500).fit(features, labels)


def iris_rows(count: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform([4.0, 2.0, 1.0, 0.1], [8.0, 4.5, 7.0, 2.5], size=(count, 4)).round(2)


def affine_graph(outputs: int = 1) -> Any:
    """y = x @ W + b over float32 [N, 4] -> [N, 3]; with outputs=2 also softmax(y)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = np.arange(12, dtype=np.float32).reshape(4, 3) / 7
    bias = np.array([0.5, -1.0, 2.0], dtype=np.float32)
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["xw"]),
        helper.make_node("Add", ["xw", "b"], ["y"]),
    ]
    graph_outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])]
    if outputs == 2:
        nodes.append(helper.make_node("Softmax", ["y"], ["p"], axis=1))
        graph_outputs.append(helper.make_tensor_value_info("p", TensorProto.FLOAT, ["batch", 3]))
    graph = helper.make_graph(
        nodes,
        "affine",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        graph_outputs,
        initializer=[numpy_helper.from_array(weights, "w"), numpy_helper.from_array(bias, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model
