"""`kubento api | runner | service | serve | deploy | openapi | models`: the runtime's command
line (shapes in contract.py)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from typing import TYPE_CHECKING

from kubento import contract
from kubento._deploy import commands as deploy_commands
from kubento._models import commands as models_commands

if TYPE_CHECKING:
    from kubento._sdk.runner import Runner


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kubento", description="Kubento model-serving runtime.")
    commands = parser.add_subparsers(dest="command", required=True)

    def common(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("service", help="the Service as module:attribute, e.g. service:svc")
        sub.add_argument("--working-dir", default=".", help="directory to import the service from")
        sub.add_argument("--log-level", default=os.environ.get("KUBENTO_LOG_LEVEL", "info"))

    api = commands.add_parser("api", help="run the HTTP API server")
    common(api)
    api.add_argument("--host", default="0.0.0.0")
    api.add_argument("--port", type=int, default=contract.API_PORT)
    api.add_argument(
        "--probe-port",
        type=int,
        default=None,
        help="also answer the probes on this port, from a process of their own (what pods are "
        "probed on)",
    )
    api.add_argument(
        "--runner-map",
        default=os.environ.get(contract.ENV_RUNNER_MAP),
        help=f"JSON object runner name -> gRPC target (default: ${contract.ENV_RUNNER_MAP})",
    )
    api.add_argument(
        "--max-request-bytes",
        type=int,
        default=int(
            os.environ.get(contract.ENV_MAX_REQUEST_BYTES, contract.DEFAULT_MAX_REQUEST_BYTES)
        ),
    )
    api.add_argument(
        "--request-timeout",
        type=float,
        default=float(
            os.environ.get(contract.ENV_REQUEST_TIMEOUT, contract.DEFAULT_REQUEST_TIMEOUT_S)
        ),
        help="seconds one HTTP request may take end to end (504 past it)",
    )
    api.add_argument(
        "--workers",
        type=int,
        default=int(os.environ.get(contract.ENV_API_WORKERS, "1")),
        help="HTTP server processes sharing the port",
    )

    runner = commands.add_parser("runner", help="run a runner worker (gRPC)")
    common(runner)
    runner.add_argument("--name", default=os.environ.get(contract.ENV_RUNNER_NAME))
    runner.add_argument("--host", default="0.0.0.0")
    runner.add_argument("--port", type=int, default=contract.RUNNER_PORT)
    runner.add_argument("--metrics-port", type=int, default=contract.RUNNER_METRICS_PORT)
    runner.add_argument(
        "--workers", type=int, default=int(os.environ.get(contract.ENV_WORKERS, "1"))
    )

    dependency = commands.add_parser(
        "service", help="run a dependency service of a @kubento.service graph (gRPC)"
    )
    common(dependency)
    dependency.add_argument("--name", default=os.environ.get(contract.ENV_SERVICE_NAME))
    dependency.add_argument("--host", default="0.0.0.0")
    dependency.add_argument("--port", type=int, default=contract.RUNNER_PORT)
    dependency.add_argument("--metrics-port", type=int, default=contract.RUNNER_METRICS_PORT)
    dependency.add_argument(
        "--workers", type=int, default=int(os.environ.get(contract.ENV_WORKERS, "1"))
    )

    serve = commands.add_parser("serve", help="run the whole service locally")
    common(serve)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=contract.API_PORT)
    serve.add_argument(
        "--probe-port",
        type=int,
        default=None,
        help="the API server also answers its probes here, as pods do (not --single-process)",
    )
    serve.add_argument(
        "--single-process",
        action="store_true",
        help="run every service of a @kubento.service graph in this process (debugging)",
    )

    openapi = commands.add_parser(
        "openapi", help="print the service's OpenAPI document (as served at /docs.json)"
    )
    common(openapi)

    models_commands.add_parser(commands)
    deploy_commands.add_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if args.command == "models":
        return models_commands.run(args)
    if args.command == "deploy":
        return deploy_commands.run(args)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s level=%(levelname)s logger=%(name)s %(message)s",
    )
    from kubento._sdk.loader import load_service

    try:
        single = args.command == "serve" and args.single_process
        service = load_service(args.service, args.working_dir, local=single)
    except ValueError as exc:
        print(f"kubento {args.command}: {exc}", file=sys.stderr)
        return 2
    if args.command == "openapi":
        from kubento._api.openapi import document

        print(json.dumps(document(service), indent=2))
        return 0
    try:
        if args.command == "api":
            return _api(service, args)
        if args.command in ("runner", "service"):
            return _runner(service, args)
        if single:
            if args.probe_port is not None:
                raise ValueError("--probe-port is not served with --single-process")
            from kubento._local.single import serve_single

            return serve_single(service, port=args.port, host=args.host)
        from kubento._local.supervisor import serve

        return serve(
            service,
            args.service,
            working_dir=args.working_dir,
            port=args.port,
            host=args.host,
            probe_port=args.probe_port,
        )
    except ValueError as exc:
        print(f"kubento {args.command}: {exc}", file=sys.stderr)
        return 2


def _api(service: object, args: argparse.Namespace) -> int:
    import uvicorn

    from kubento._api.app import ENV_APP, AppSettings, build_app, require_targets
    from kubento._api.protocol import server_options
    from kubento._sdk.service import Service

    assert isinstance(service, Service)
    if args.workers < 1:
        raise ValueError(f"--workers must be at least 1, got {args.workers}")
    settings = AppSettings(
        service=args.service,
        working_dir=os.path.abspath(args.working_dir),
        runner_map=contract.decode_runner_map(args.runner_map) if args.runner_map else {},
        max_request_bytes=args.max_request_bytes,
        request_timeout_s=args.request_timeout,
        probes_at=None if args.probe_port is None else (args.host, args.probe_port),
    )
    require_targets(service, settings.runner_map)
    _prepare_entry(service, settings.runner_map)
    options = {"host": args.host, "port": args.port, **server_options()}
    if args.workers == 1:
        app = build_app(
            service,
            settings.runner_map,
            max_request_bytes=settings.max_request_bytes,
            request_timeout_s=settings.request_timeout_s,
            probes_at=settings.probes_at,
        )
        uvicorn.run(app, **options)  # type: ignore[arg-type]
    else:
        # Each worker process builds its own app (and gRPC channels) from the settings.
        os.environ[ENV_APP] = settings.model_dump_json()
        uvicorn.run(
            "kubento._api.app:app_from_env",
            factory=True,
            workers=args.workers,
            **options,  # type: ignore[arg-type]
        )
    return 0


def _runner(service: object, args: argparse.Namespace) -> int:
    from kubento._runner import cpus, gpus, nvml
    from kubento._runner.processes import run_workers
    from kubento._runner.worker import serve_runner
    from kubento._sdk.service import Service

    assert isinstance(service, Service)
    name_env = contract.ENV_SERVICE_NAME if args.command == "service" else contract.ENV_RUNNER_NAME
    if not args.name:
        raise ValueError(f"--name (or ${name_env}) is required")
    runner = _component(service, args.command, args.name)
    if args.workers < 1:
        raise ValueError(f"--workers must be at least 1, got {args.workers}")
    overrides = contract.BatchingOverrides.from_env(os.environ)
    share = max(1, cpus.available_cpus().count // args.workers)
    budget = cpus.plan(
        runner.runnable_class.SUPPORTS_CPU_MULTI_THREADING, runner.concurrency(overrides), share
    )
    devices = gpus.worker_envs(
        runner.runnable_class.SUPPORTED_RESOURCES, args.workers, os.environ, nvml.device_count
    )
    if args.workers > 1:

        def argv_for(index: int) -> list[str]:
            # Only the first worker serves probes and (all workers') metrics.
            metrics_port = args.metrics_port if index == 0 else 0
            return [
                *_self_argv(),
                args.command, args.service, "--working-dir", args.working_dir,
                "--name", args.name, "--host", args.host, "--port", str(args.port),
                "--workers", "1", "--metrics-port", str(metrics_port),
                "--log-level", args.log_level,
            ]  # fmt: skip

        return run_workers(
            argv_for,
            args.workers,
            budget=budget,
            worker_envs=devices,
        )
    threads = cpus.thread_env(budget)
    if devices[0] and os.environ.get(gpus.CUDA) != devices[0][gpus.CUDA]:
        threads |= devices[0]
    if threads:
        # BLAS/OpenMP read their thread counts when they load, which importing the
        # service already did: start again with the budget in the environment.
        os.execve(sys.executable, [*_self_argv(), *args.argv], {**os.environ, **threads})
    asyncio.run(
        serve_runner(
            runner,
            host=args.host,
            port=args.port,
            metrics_port=args.metrics_port or None,
            overrides=overrides,
        )
    )
    return 0


def _component(service: object, command: str, name: str) -> Runner:
    """The runner (`kubento runner`) or dependency service (`kubento service`) to serve."""
    from kubento._sdk.graph import GraphService, runner_of
    from kubento._sdk.service import Service

    assert isinstance(service, Service)
    if command == "service":
        if not isinstance(service, GraphService):
            raise ValueError(f"{service.name!r} is a kubento.Service; it has no service classes")
        return runner_of(service.graph.find(name).cls)
    runners = service.graph.runners() if isinstance(service, GraphService) else service.runners
    found = {runner.name: runner for runner in runners} if isinstance(runners, list) else runners
    runner = found.get(name)
    if runner is None:
        raise ValueError(f"service {service.name!r} has no runner {name!r}; it has {sorted(found)}")
    return runner


def _prepare_entry(service: object, runner_map: dict[str, str]) -> None:
    """An entry service class: every dependency has an address, and its models load now."""
    from kubento._sdk.graph import GraphService, require_addresses

    if isinstance(service, GraphService):
        require_addresses(service.entry, runner_map)
        service.instance()


def _self_argv() -> list[str]:
    return [sys.executable, "-m", "kubento"]


if __name__ == "__main__":
    sys.exit(main())
