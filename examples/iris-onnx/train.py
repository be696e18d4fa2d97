"""Train an iris classifier, convert it to ONNX and save it into the model store:
`python train.py` (needs `skl2onnx` to convert; serving needs only onnxruntime)."""

from __future__ import annotations

import numpy as np
from skl2onnx import to_onnx
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import kubento


def main() -> None:
    features, labels = load_iris(return_X_y=True)
    classifier = LogisticRegression(max_iter=1000).fit(features, labels)
    # Probabilities as one tensor (no ZipMap of dicts): everything crosses the wire as arrays.
    graph = to_onnx(
        classifier,
        features[:1].astype(np.float32),
        options={id(classifier): {"zipmap": False}},
        target_opset=17,
    )
    model = kubento.onnx.save_model(
        "iris-onnx", graph, signatures={"run": {"batchable": True, "batch_dim": 0}}
    )
    print(f"saved {model.tag} into {model.path}")


if __name__ == "__main__":
    main()
