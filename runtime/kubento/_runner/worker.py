"""The runner worker: a gRPC server in front of one runner's runnable.

Batchable methods go through a `Dispatcher` (see batching.py); the others are
called directly. Model code runs on dedicated model threads (the largest
`max_concurrency` of the runner's methods, or under "auto" the lane bound of the
worker's thread budget, `cpus.plan`) so the event loop keeps accepting and
batching calls while the model computes.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NoReturn

import grpc
import uvicorn
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from kubento import _tracing, contract
from kubento._memory import Trimmer, pin_mmap_threshold
from kubento._proto import runner_pb2 as pb
from kubento._remote import codec
from kubento._remote.client import CALL_METHOD, MAX_MESSAGE_BYTES, RETRY_AFTER_METADATA
from kubento._runner import cpus, gpus, nvml
from kubento._runner.processes import ENV_WORKER_INDEX, metrics_registry
from kubento._sdk.handles import deadline as request_deadline
from kubento._sdk.handles import request_id
from kubento._sdk.runner import Runner
from kubento.batching import BadBatch, Dispatcher, DispatcherMetrics, Overloaded, Rejected

log = logging.getLogger("kubento.runner")

MethodCall = Callable[[tuple[Any, ...], float | None], Awaitable[Any]]
SHUTDOWN_GRACE_S = float(contract.SHUTDOWN_GRACE_S)
SHUTDOWN_GRACE_MS = int(SHUTDOWN_GRACE_S * 1000)
MAX_CONNECTION_AGE_MS = 20_000
"""How soon callers find runner pods a scale-up added: each connection gets a GOAWAY at this
age (gRPC adds up to 10% jitter), its calls finish, and the caller's channel re-resolves the
headless Service. At 60 s new pods of an HPA's scale-up idled for most of a minute (the e2e:
517 calls on the old pod, 63 and 65 on the new ones over 90 s)."""


class RunnerWorker:
    """Holds the runnable and routes `Call` RPCs to its methods."""

    def __init__(self, runner: Runner, overrides: contract.BatchingOverrides) -> None:
        self.runner = runner
        self.registry = CollectorRegistry()
        self.metrics = DispatcherMetrics(self.registry)
        self.gpu_registry = CollectorRegistry()
        """GPU samples, read from the devices at scrape time by the process serving them."""
        self.overrides = overrides
        self.configs = runner.batching_configs(overrides)
        self.cpus = cpus.worker_cpus()
        self.budget = cpus.plan(
            runner.runnable_class.SUPPORTS_CPU_MULTI_THREADING,
            runner.concurrency(overrides),
            self.cpus.count,
        )
        self.executor = ThreadPoolExecutor(
            runner.model_threads(overrides, self.budget.lanes),
            thread_name_prefix=f"runner-{runner.name}",
        )
        self.methods: dict[str, MethodCall] = {}
        self.dispatchers: list[Dispatcher] = []
        self.torch_threads: int | None = None
        self.ready = False
        self.trimmer = Trimmer()
        pin_mmap_threshold()  # large calls go back to the system as they are freed
        self.tracing = _tracing.start(runner.name)

    async def load(self) -> None:
        """Instantiate the runnable (off the event loop: model loads can be slow)."""
        loop = asyncio.get_running_loop()
        runnable = await loop.run_in_executor(self.executor, self.runner.create_runnable)
        self.torch_threads = cpus.apply_torch(self.budget)
        for name, method in self.runner.methods.items():
            fn = getattr(runnable, name)
            call = fn if method.spec.is_async else self._on_model_thread(fn)
            if method.spec.batchable:
                config = self.configs[name]
                tracing = self.tracing
                traced = None if tracing is None else tracing.dispatcher(self.runner.name, name)
                dispatcher = Dispatcher(
                    call,
                    config,
                    batch_dim=method.spec.batch_dim,
                    name=self.runner.name,
                    method=name,
                    metrics=self.metrics,
                    tracing=traced,
                    lane_bound=self.budget.lanes,
                )
                self.dispatchers.append(dispatcher)
                self.methods[name] = _batched(dispatcher)
            else:
                self.methods[name] = _direct(call)
        self.ready = True

    def _on_model_thread(self, fn: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
        async def call(*args: Any) -> Any:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self.executor, functools.partial(fn, *args))

        return call

    async def call(self, raw: bytes, context: grpc.aio.ServicerContext) -> pb.CallResponse:
        try:  # parsed here, not by gRPC, so a malformed message is the caller's INVALID_ARGUMENT
            request = pb.CallRequest.FromString(raw)
        except Exception as exc:
            await _abort(context, grpc.StatusCode.INVALID_ARGUMENT, f"malformed CallRequest: {exc}")
        if not self.ready:
            await _abort(
                context,
                grpc.StatusCode.UNAVAILABLE,
                f"runner {self.runner.name!r} is still loading",
            )
        method = self.methods.get(request.method)
        if method is None:
            await _abort(
                context,
                grpc.StatusCode.UNIMPLEMENTED,
                f"runner {self.runner.name!r} has no method {request.method!r}; "
                f"it has {sorted(self.methods)}",
            )
        try:
            args = tuple(codec.decode(value) for value in request.args)
        except codec.CodecError as exc:
            await _abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        remaining = _finish_within(context)
        deadline = time.monotonic() + remaining if remaining is not None else None
        request_deadline.set(deadline)  # what a dependency call made from here may use
        rid = _request_id(context)
        request_id.set(rid)  # and the id it carries on, so every hop logs the same one
        try:
            if self.tracing is None:
                result = await method(args, deadline)
            else:
                work = method(args, deadline)
                result = await self.tracing.serve(self.runner.name, request, context, work)
            return pb.CallResponse(result=codec.encode(result))
        except Rejected as exc:
            code = (
                grpc.StatusCode.RESOURCE_EXHAUSTED
                if isinstance(exc, Overloaded)
                else grpc.StatusCode.UNAVAILABLE
            )
            context.set_trailing_metadata(((RETRY_AFTER_METADATA, f"{exc.retry_after_s:.3f}"),))
            await _abort(context, code, str(exc))
        except BadBatch as exc:  # the caller's rows cannot be batched: its mistake, not ours
            await _abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except Exception as exc:
            # Only the error path needs the request ids (several when the API server
            # coalesced callers): they tie each caller's 500 to this log line. The
            # answer does not carry them, so no caller learns another's id.
            log.warning(
                "runner=%s method=%r request_id=%s error=%r",
                self.runner.name,
                request.method,
                rid or "-",
                exc,
            )
            await _abort(context, grpc.StatusCode.INTERNAL, f"{type(exc).__name__}: {exc}")
        finally:
            self.trimmer.after(len(raw))  # runs once this call's buffers are freed

    async def close(self) -> None:
        for dispatcher in self.dispatchers:
            await dispatcher.close()
        self.executor.shutdown(wait=True)


def _finish_within(context: grpc.aio.ServicerContext) -> float | None:
    """Seconds the call has to finish in: its deadline's, or less when the caller keeps some
    back for the answer's way out (`contract.FINISH_WITHIN_METADATA`). None: no deadline."""
    remaining: float | None = context.time_remaining()
    for key, value in context.invocation_metadata() or ():
        if key == contract.FINISH_WITHIN_METADATA:
            within = contract.finish_within(value)
            if within is not None:
                return within if remaining is None else min(remaining, within)
            return remaining
    return remaining


def _request_id(context: grpc.aio.ServicerContext) -> str:
    """The call's request id, "" when it has none or one not safe to log or forward."""
    for key, value in context.invocation_metadata() or ():
        if key == contract.REQUEST_ID_METADATA:
            return value if isinstance(value, str) and contract.valid_request_id(value) else ""
    return ""


async def _abort(
    context: grpc.aio.ServicerContext, code: grpc.StatusCode, message: str
) -> NoReturn:
    await context.abort(code, message)
    raise AssertionError("grpc.aio abort() always raises")


class _ProbeServer(uvicorn.Server):
    """Serves probes and metrics; signals belong to the runner, which stops it last."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _batched(dispatcher: Dispatcher) -> MethodCall:
    async def call(args: tuple[Any, ...], deadline: float | None) -> Any:
        return await dispatcher.submit(*args, deadline=deadline)

    return call


def _direct(fn: Callable[..., Awaitable[Any]]) -> MethodCall:
    async def call(args: tuple[Any, ...], deadline: float | None) -> Any:
        return await fn(*args)

    return call


def _probe_app(worker: RunnerWorker) -> Starlette:
    async def livez(request: Request) -> Response:
        return JSONResponse({"status": "alive"})

    async def readyz(request: Request) -> Response:
        if worker.ready:
            return JSONResponse({"status": "ready"})
        return JSONResponse(contract.error_content("runner not ready"), status_code=503)

    async def metrics(request: Request) -> Response:
        text = generate_latest(metrics_registry(worker.registry))
        text += generate_latest(worker.gpu_registry)
        return Response(text, media_type=CONTENT_TYPE_LATEST)

    return Starlette(
        routes=[
            Route(contract.LIVENESS_PATH, livez),
            Route(contract.READINESS_PATH, readyz),
            Route(contract.METRICS_PATH, metrics),
        ]
    )


async def serve_runner(
    runner: Runner,
    *,
    host: str,
    port: int,
    metrics_port: int | None,
    overrides: contract.BatchingOverrides,
) -> None:
    """Serve one runner until SIGTERM/SIGINT, then finish in-flight calls and exit."""
    worker = RunnerWorker(runner, overrides)
    server = grpc.aio.server(
        options=[
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            # Clients reconnect now and then, which re-resolves a headless Service
            # (new runner pods get traffic) and lets the kernel rehash connections
            # over `--workers` processes that started listening late.
            ("grpc.max_connection_age_ms", MAX_CONNECTION_AGE_MS),
            ("grpc.max_connection_age_grace_ms", SHUTDOWN_GRACE_MS),
        ]
    )
    handler = grpc.method_handlers_generic_handler(
        "kubento.runner.v1.Runner",
        {
            CALL_METHOD.rsplit("/", 1)[1]: grpc.unary_unary_rpc_method_handler(
                worker.call,
                request_deserializer=None,  # bytes: `call` parses them
                response_serializer=pb.CallResponse.SerializeToString,
            )
        },
    )
    server.add_generic_rpc_handlers((handler,))
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    await health_servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise OSError(f"runner {runner.name!r} cannot listen on {host}:{port}")
    await server.start()

    probes: _ProbeServer | None = None
    probe_task: asyncio.Task[None] | None = None
    if metrics_port:
        probes = _ProbeServer(
            uvicorn.Config(_probe_app(worker), host=host, port=metrics_port, log_level="warning")
        )
        probe_task = asyncio.create_task(probes.serve())

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    await worker.load()
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    visible = os.environ.get(gpus.CUDA)
    if metrics_port:
        collector = nvml.gpu_collector(runner.name, visible)
        if collector is not None:
            worker.gpu_registry.register(collector)
    log.info(
        "runner=%s event=ready port=%d pid=%d worker=%s gpus=%s",
        runner.name,
        port,
        os.getpid(),
        os.environ.get(ENV_WORKER_INDEX, "0"),
        "all" if visible is None else (visible or "none"),
    )
    log.info(
        "runner=%s event=threads %s",
        runner.name,
        cpus.describe(worker.budget, worker.cpus, worker.torch_threads),
    )

    await stop.wait()
    log.info("runner=%s event=stopping", runner.name)
    await health_servicer.enter_graceful_shutdown()
    await server.stop(SHUTDOWN_GRACE_S)
    await worker.close()
    if probes is not None and probe_task is not None:
        probes.should_exit = True
        await probe_task
    log.info("runner=%s event=stopped", runner.name)
