"""The bench's pre-built-runner model: logistic regression on 256 features, saved into
Kubento's or BentoML's own store (`python lr_model.py kubento|bentoml`, with the store's
home in `KUBENTO_HOME` or `BENTOML_HOME`)."""

from __future__ import annotations

import sys

import numpy as np
from sklearn.linear_model import LogisticRegression

NAME = "bench-lr"
FEATURES = 256
SEED = 20240601


def train() -> LogisticRegression:
    rng = np.random.default_rng(SEED)
    x = rng.standard_normal((4096, FEATURES))
    y = (x[:, :4] @ rng.standard_normal((4, 4))).argmax(axis=1)
    return LogisticRegression(max_iter=300).fit(x, y)


def main(store: str) -> None:
    if store == "kubento":
        import kubento

        signatures = {"predict_proba": {"batchable": True, "batch_dim": 0}}
        kubento.sklearn.save_model(NAME, train(), signatures=signatures)
    elif store == "bentoml":
        import bentoml

        signatures = {"predict_proba": {"batchable": True, "batch_dim": 0}}
        bentoml.sklearn.save_model(NAME, train(), signatures=signatures)
    else:
        raise SystemExit(f"usage: lr_model.py kubento|bentoml, not {store!r}")


if __name__ == "__main__":
    main(sys.argv[1])
