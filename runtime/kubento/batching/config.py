"""Batching configuration and the errors admission control raises."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any, cast

from kubento.contract import KNOBS, check_knobs

if TYPE_CHECKING:
    from kubento.contract import BatchingOverrides


@dataclass(frozen=True)
class BatchingConfig:
    """Batching knobs of one runner method, as declared (with what they mean, their bounds
    and defaults) in the knob table, `kubento.contract.BATCHING_KNOBS`."""

    max_batch_size: int = cast(int, KNOBS["max_batch_size"].default)
    max_latency_ms: float = cast(float, KNOBS["max_latency_ms"].default)
    max_queue_size: int = cast(int, KNOBS["max_queue_size"].default)
    timeout_ms: float | None = cast(float | None, KNOBS["timeout_ms"].default)
    max_queue_wait_ms: float | None = cast(float | None, KNOBS["max_queue_wait_ms"].default)
    max_concurrency: int | str = cast(int | str, KNOBS["max_concurrency"].default)
    """A number of lanes, or "auto" (`kubento.batching.lanes`)."""

    def __post_init__(self) -> None:
        check_knobs({knob.name: getattr(self, knob.name) for knob in fields(self)})

    def with_overrides(self, overrides: BatchingOverrides) -> BatchingConfig:
        """This config with every knob the deployment sets (not None) replaced."""
        changes: dict[str, Any] = dict(overrides.values)
        return replace(self, **changes) if changes else self


class Rejected(Exception):
    """Admission control turned a request away; `retry_after_s` hints when to retry."""

    def __init__(self, message: str, *, retry_after_s: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Overloaded(Rejected):
    """The queue is full (gRPC RESOURCE_EXHAUSTED, HTTP 429)."""


class DeadlineUnmeetable(Rejected):
    """The request cannot be served within its budget or deadline (gRPC UNAVAILABLE, HTTP 503)."""


class BatchOutputError(ValueError):
    """The batched function returned something that cannot be split back per caller."""


class BadBatch(TypeError, ValueError):
    """A caller's arguments cannot be batched (no rows, mismatched rows, wrong kind): the
    caller's mistake, answered as gRPC INVALID_ARGUMENT and HTTP 400."""


class NeverFits(BadBatch):
    """A call has more rows than the queue can ever hold: retrying cannot help (HTTP 400)."""


def check_fits(rows: int, max_queue_size: int) -> None:
    """Raise `NeverFits` when a call of `rows` rows can never be queued (0: unbounded)."""
    if max_queue_size and rows > max_queue_size:
        raise NeverFits(
            f"the request has {rows} rows, more than the queue holds "
            f"(max_queue_size={max_queue_size}): send it in smaller requests"
        )
