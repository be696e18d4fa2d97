"""Adaptive batching: where a runner decides which callers' rows go into one model call.

Each layer imports alone, in this order:

- `config`: `BatchingConfig` (from the knob table) and the errors admission raises;
- `rows`: cut and glue arrays or lists along a batch dimension (no metrics, no asyncio);
- `latency`: the online estimates of model time per batch size and of arrivals;
- `lanes`: `LaneTuner`, how many batches run at once under `max_concurrency="auto"`;
- `policy`: `BatchPolicy`, the pure decision core, driven by an injected clock;
- `dispatcher`: `Dispatcher`, the asyncio engine in front of each batchable method, with
  the metrics its serving process creates (`DispatcherMetrics`) and an injected `Timer`.
"""

from kubento.batching.config import (
    BadBatch,
    BatchingConfig,
    BatchOutputError,
    DeadlineUnmeetable,
    NeverFits,
    Overloaded,
    Rejected,
    check_fits,
)
from kubento.batching.dispatcher import Dispatcher, DispatcherMetrics, LoopTimer, Timer
from kubento.batching.lanes import LaneChange, LaneTuner
from kubento.batching.latency import ArrivalRate, LatencyModel
from kubento.batching.policy import Batch, BatchPolicy, Clock, Decision, Part, Request
from kubento.batching.rows import count_rows, join_rows, split_rows, take_rows

__all__ = [
    "ArrivalRate",
    "BadBatch",
    "Batch",
    "BatchOutputError",
    "BatchPolicy",
    "BatchingConfig",
    "Clock",
    "DeadlineUnmeetable",
    "Decision",
    "Dispatcher",
    "DispatcherMetrics",
    "LaneChange",
    "LaneTuner",
    "LatencyModel",
    "LoopTimer",
    "NeverFits",
    "Overloaded",
    "Part",
    "Rejected",
    "Request",
    "Timer",
    "check_fits",
    "count_rows",
    "join_rows",
    "split_rows",
    "take_rows",
]
