"""Train an iris classifier and save it into the model store: `python train.py`.

Then serve it (`kubento serve service:svc`), bake it into an image (see the Dockerfile),
or export it and print a BentoDeployment that fetches it when pods start:

    python train.py --export iris-clf.tar --source https://models.example.com/iris-clf.tar
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import yaml
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import kubento

MODEL = "iris-clf"
SIGNATURES = {
    "predict": {"batchable": True, "batch_dim": 0},
    "predict_proba": {"batchable": True, "batch_dim": 0},
}


def train() -> kubento.models.Model:
    features, labels = load_iris(return_X_y=True)
    classifier = LogisticRegression(max_iter=1000).fit(features, labels)
    return kubento.sklearn.save_model(
        MODEL, classifier, signatures=SIGNATURES, labels={"dataset": "iris"}
    )


def fetching_deployment(tag: str, source: str, archive: Path, image: str) -> dict[str, object]:
    """A BentoDeployment whose runner pods pull the exported archive at start."""
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    # The API imports the service, which resolves the model's signatures: it gets it too.
    models = [{"tag": tag, "source": source, "sha256": digest}]
    return {
        "apiVersion": "serving.kubento.io/v1alpha1",
        "kind": "BentoDeployment",
        "metadata": {"name": "iris"},
        "spec": {
            "image": image,
            "service": "service:svc",
            "envs": [{"name": "IRIS_MODEL", "value": tag}],
            "models": models,
            "runners": [
                {
                    "name": MODEL,
                    "models": models,
                    "envs": [{"name": "IRIS_MODEL", "value": tag}],
                }
            ],
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--export", type=Path, help="also write the model archive here")
    parser.add_argument("--source", help="where pods will fetch the archive from")
    parser.add_argument("--image", default="iris:latest", help="the service image")
    args = parser.parse_args()
    model = train()
    print(f"saved {model.tag} into {model.path}")
    if args.export:
        archive = kubento.models.export_model(model.tag, args.export)
        print(f"exported {model.tag} to {archive}")
        if args.source:
            print("---")
            print(
                yaml.safe_dump(
                    fetching_deployment(str(model.tag), args.source, archive, args.image),
                    sort_keys=False,
                ),
                end="",
            )


if __name__ == "__main__":
    main()
