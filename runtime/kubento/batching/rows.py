"""Row helpers: cut and glue numpy arrays (or lists) along a batch dimension.

Shared by the API server's coalescer and the runner's dispatcher; no metrics, no asyncio.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np

from kubento.batching.config import BadBatch, BatchOutputError


def _row_count(value: Any, dim: int, what: str) -> int:
    if isinstance(value, np.ndarray):
        if value.ndim <= dim:
            raise BadBatch(
                f"{what} has shape {value.shape}: no batch dimension {dim} "
                f"(batch_dim needs at least {dim + 1} dimensions)"
            )
        return int(value.shape[dim])
    if isinstance(value, list):
        if dim != 0:
            raise BadBatch(f"{what} is a list: lists batch along dimension 0 only, not {dim}")
        return len(value)
    raise BadBatch(
        f"{what} is a {type(value).__name__}: batchable methods take numpy arrays or lists"
    )


def count_rows(args: Sequence[Any], dim: int) -> tuple[int, Hashable]:
    """Rows along `dim` shared by every argument, and a signature of their layout.

    Two requests with equal signatures (same kinds, dtypes and non-batch shape)
    can be concatenated into one batch; different ones never share a batch, so
    one malformed caller cannot fail the others' call.
    """
    if not args:
        raise BadBatch("a batchable call needs at least one argument")
    rows = -1
    signature: list[Hashable] = []
    for index, value in enumerate(args):
        n = _row_count(value, dim, f"argument {index}")
        if rows == -1:
            rows = n
        elif n != rows:
            raise BadBatch(
                f"argument {index} has {n} rows along batch dimension {dim}, "
                f"argument 0 has {rows}: every batched argument needs the same row count"
            )
        if isinstance(value, np.ndarray):
            signature.append((value.dtype.str, value.shape[:dim] + value.shape[dim + 1 :]))
        else:
            signature.append("list")
    if rows == 0:
        raise BadBatch(f"the call has 0 rows along batch dimension {dim}: send at least one row")
    return rows, tuple(signature)


def take_rows(value: Any, start: int, stop: int, dim: int) -> Any:
    """Rows start:stop of one value along `dim` (a view for arrays)."""
    if isinstance(value, np.ndarray):
        index = (slice(None),) * dim + (slice(start, stop),)
        return value[index]
    return value[start:stop]


def join_rows(pieces: Sequence[Any], dim: int) -> Any:
    """Concatenate pieces along `dim`; lists stay lists, anything else becomes an array."""
    if len(pieces) == 1:
        return pieces[0]
    if all(isinstance(piece, list) for piece in pieces):
        joined: list[Any] = []
        for piece in pieces:
            joined.extend(piece)
        return joined
    return np.concatenate(pieces, axis=dim)


def split_rows(output: Any, sizes: Sequence[int], dim: int) -> list[Any]:
    """Cut a batched output (a value or a tuple of values) into consecutive row groups."""
    total = sum(sizes)
    if isinstance(output, tuple):
        columns = [split_rows(item, sizes, dim) for item in output]
        return [tuple(column[i] for column in columns) for i in range(len(sizes))]
    try:
        rows = _row_count(output, dim, "the batched output")
    except (TypeError, ValueError) as exc:
        raise BatchOutputError(f"{exc}; it cannot be split back to the callers") from None
    if rows != total:
        raise BatchOutputError(
            f"the batched output has {rows} rows along dimension {dim} for a batch of {total} "
            "input rows: a batchable method must return one output row per input row"
        )
    pieces = []
    start = 0
    for size in sizes:
        pieces.append(take_rows(output, start, start + size, dim))
        start += size
    return pieces
