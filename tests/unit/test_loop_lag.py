"""LoopLag on a real event loop: a blocked loop shows as margin, and it fades."""

from __future__ import annotations

import asyncio
import time

from prometheus_client import CollectorRegistry, Gauge

from kubento._api.lag import MAX_SHARE, TICK_S, WINDOW_S, LoopLag


async def test_a_blocked_loop_is_kept_back_then_forgotten() -> None:
    gauge = Gauge("lag", "lag", registry=CollectorRegistry())
    lag = LoopLag(gauge)
    lag.start()
    try:
        await asyncio.sleep(5 * TICK_S)
        assert lag.margin_s < 0.1  # an idle loop runs its timers on time (a loaded CI machine: 0.1)
        time.sleep(0.5)  # what blocking code in an async API does
        await asyncio.sleep(2 * TICK_S)
        assert 0.48 <= lag.margin_s < 1.0
        assert lag.keep_back(60) == lag.margin_s
        assert lag.keep_back(0.1) == MAX_SHARE * 0.1  # never all of a short request's time
        # The window is the last WINDOW_S / TICK_S ticks: about WINDOW_S on an idle machine,
        # longer on a loaded one, whose timers run late; past five windows it is a failure.
        await asyncio.sleep(WINDOW_S)
        deadline = time.monotonic() + 4 * WINDOW_S
        while lag.margin_s >= 0.1 and time.monotonic() < deadline:
            await asyncio.sleep(TICK_S)
        assert lag.margin_s < 0.1
        assert gauge._value.get() < 0.1
    finally:
        lag.stop()
