"""A tiny nn.Module in an importable module, as `torch.load` of a whole module needs."""

from typing import Any

import torch


class Doubler(torch.nn.Module):
    def __init__(self, linear: torch.nn.Module) -> None:
        super().__init__()
        self.linear = linear

    def forward(self, x: Any) -> Any:
        return self.linear(x) * 2
