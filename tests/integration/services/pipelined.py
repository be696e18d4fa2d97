"""An API-only service whose `hog` holds the event loop (as blocking code in an async API
does) and whose `wait` takes 0.4 s, to show where a request's end-to-end time starts."""

import asyncio
import time

import kubento
from kubento.io import JSON

svc = kubento.Service("pipelined")


@svc.api(input=JSON(), output=JSON())
async def hog(seconds: float) -> str:
    time.sleep(seconds)  # blocks the loop: every other request waits
    return "hogged"


@svc.api(input=JSON(), output=JSON())
async def wait(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "waited"
