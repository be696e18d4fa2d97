"""One `depends()` hop for `bench/graph.py`: an identity method on the wire."""

import numpy as np

import kubento


@kubento.service
class Identity:
    @kubento.api
    def same(self, x: np.ndarray) -> np.ndarray:
        return x


@kubento.service
class Caller:
    identity = kubento.depends(Identity)
