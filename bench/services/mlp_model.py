"""The bench MLPs as plain numpy, shared by the Kubento and BentoML bench services."""

from __future__ import annotations

import itertools

import numpy as np

SEED = 20240601
MAX_BATCH_SIZE = 64
MAX_LATENCY_MS = 100
HEAVY = (512, 4096, 4096, 16)
LIGHT = (256, 1024, 16)
MODELS = {"heavy": HEAVY, "light": LIGHT}


def make_weights(widths: tuple[int, ...], seed: int = SEED) -> list[tuple[np.ndarray, np.ndarray]]:
    """He-initialised float32 layers; the same seed always gives the same model."""
    rng = np.random.default_rng(seed)
    layers = []
    for fan_in, fan_out in itertools.pairwise(widths):
        weight = rng.standard_normal((fan_in, fan_out), dtype=np.float32)
        weight *= np.float32(np.sqrt(2.0 / fan_in))
        layers.append((weight, np.zeros(fan_out, dtype=np.float32)))
    return layers


def forward(layers: list[tuple[np.ndarray, np.ndarray]], x: np.ndarray) -> np.ndarray:
    for index, (weight, bias) in enumerate(layers):
        x = x @ weight + bias
        if index < len(layers) - 1:
            np.maximum(x, 0, out=x)
    return x
