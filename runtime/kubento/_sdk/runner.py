"""`Runner`: a named, deployable instance of a `Runnable`, and how calls reach it.

A runner is called through a *handle* (`kubento._sdk.handles`): in-process after
`init_local()`, or over gRPC to a runner worker when an API server serves the request.
User code looks the same either way: `runner.predict.run(x)` or `await runner.predict.async_run(x)`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from kubento._sdk.handles import Handle, LocalHandle, Unbound, lookup
from kubento._sdk.runnable import MethodSpec, Runnable
from kubento.batching.config import BatchingConfig
from kubento.contract import AUTO, check_knobs, check_name

if TYPE_CHECKING:
    from kubento.contract import BatchingOverrides


class RunnerMethod:
    """`runner.<method>`: `.run(*args)` and `await .async_run(*args)`."""

    def __init__(self, runner: Runner, spec: MethodSpec, config: Mapping[str, float | int]):
        self.runner = runner
        self.spec = spec
        self.config = config

    @property
    def name(self) -> str:
        return self.spec.name

    def run(self, *args: Any) -> Any:
        return self.runner.handle.call(self.spec.name, args)

    async def async_run(self, *args: Any) -> Any:
        return await self.runner.handle.async_call(self.spec.name, args)

    def __call__(self, *args: Any) -> Any:
        return self.run(*args)

    def __repr__(self) -> str:
        return f"<RunnerMethod {self.runner.name}.{self.spec.name} batchable={self.spec.batchable}>"


class Runner:
    """A named instance of a Runnable, with its batching configuration.

    `method_configs` maps a method name to overrides of `max_batch_size`,
    `max_latency_ms`, `max_queue_size` and `timeout_ms` for that method.
    `models` declares the stored models (`kubento.models.Model`) the runnable loads, so
    a deployment knows which models this runner needs.
    """

    def __init__(
        self,
        runnable_class: type[Runnable],
        *,
        name: str | None = None,
        runnable_init_params: Mapping[str, Any] | None = None,
        max_batch_size: int | None = None,
        max_latency_ms: int | None = None,
        method_configs: Mapping[str, Mapping[str, int | float]] | None = None,
        models: Sequence[Any] | None = None,
    ) -> None:
        if not (isinstance(runnable_class, type) and issubclass(runnable_class, Runnable)):
            raise TypeError(f"Runner needs a Runnable subclass, got {runnable_class!r}")
        if not runnable_class.methods:
            raise ValueError(
                f"{runnable_class.__name__} has no methods: decorate at least one with "
                f"@kubento.Runnable.method"
            )
        if name is None:
            name = re.sub(r"[^a-z0-9]+", "-", runnable_class.__name__.lower()).strip("-")
        self.name = check_name("runner", name)
        self.runnable_class = runnable_class
        self.runnable_init_params = dict(runnable_init_params or {})
        self.models = list(models or [])
        for model in self.models:
            if not hasattr(model, "tag") or not hasattr(model, "path"):
                raise TypeError(
                    f"runner {self.name!r}: models must be kubento.models.Model (from "
                    f"kubento.models.get or a framework's save_model/get), got {model!r}"
                )
        defaults = check_knobs(
            {"max_batch_size": max_batch_size, "max_latency_ms": max_latency_ms},
            what=f"runner {self.name!r}",
        )
        configs = dict(method_configs or {})
        unknown_methods = set(configs) - set(runnable_class.methods)
        if unknown_methods:
            raise ValueError(
                f"runner {self.name!r}: method_configs names unknown methods "
                f"{sorted(unknown_methods)}; {runnable_class.__name__} has "
                f"{sorted(runnable_class.methods)}"
            )
        self._local: Handle = Unbound(f"runner {self.name!r}")
        self.methods: dict[str, RunnerMethod] = {}
        for method_name, spec in runnable_class.methods.items():
            what = f"runner {self.name!r}: method_configs[{method_name!r}]"
            config: dict[str, Any] = {
                **defaults,
                **check_knobs(configs.get(method_name, {}), what=what),
            }
            if spec.batchable:
                # The whole config, defaults included, fails here rather than when served.
                try:
                    BatchingConfig(**config)
                except ValueError as exc:
                    raise ValueError(f"{what}: {exc}") from None
            self.methods[method_name] = RunnerMethod(self, spec, config)
        if "run" in self.methods:
            # A method named `run` (the ONNX runner's) shadows the single-method shortcut:
            # `runner.run.run(x)` reaches it, and `runner.run(x)` still runs it.
            self.run = self.methods["run"]  # type: ignore[method-assign]

    def __getattr__(self, item: str) -> RunnerMethod:
        methods = self.__dict__.get("methods", {})
        if item in methods:
            return methods[item]  # type: ignore[no-any-return]
        raise AttributeError(
            f"runner {self.__dict__.get('name')!r} has no method {item!r}; it has {sorted(methods)}"
        )

    def _only_method(self) -> RunnerMethod:
        if len(self.methods) != 1:
            raise TypeError(
                f"runner {self.name!r} has several methods {sorted(self.methods)}: "
                f"call runner.<method>.run() instead of runner.run()"
            )
        return next(iter(self.methods.values()))

    def run(self, *args: Any) -> Any:
        return self._only_method().run(*args)

    async def async_run(self, *args: Any) -> Any:
        return await self._only_method().async_run(*args)

    def batching_configs(
        self, overrides: BatchingOverrides | None = None
    ) -> dict[str, BatchingConfig]:
        """Each batchable method's batching config, with the deployment's overrides applied."""
        configs = {}
        for name, method in self.methods.items():
            if method.spec.batchable:
                settings: dict[str, Any] = {k: v for k, v in method.config.items() if v is not None}
                config = BatchingConfig(**settings)
                configs[name] = config.with_overrides(overrides) if overrides else config
        return configs

    def concurrency(self, overrides: BatchingOverrides | None = None) -> int | str:
        """The largest max_concurrency of the batchable methods; "auto" when one has it."""
        values = [config.max_concurrency for config in self.batching_configs(overrides).values()]
        if AUTO in values:
            return AUTO
        return max((int(value) for value in values), default=1)

    def model_threads(self, overrides: BatchingOverrides | None = None, auto: int = 1) -> int:
        """Model calls that may run at once in one worker: the largest max_concurrency,
        counting `auto` (the worker's lane bound) for a method under "auto"."""
        configs = self.batching_configs(overrides).values()
        return max(
            (auto if c.max_concurrency == AUTO else int(c.max_concurrency) for c in configs),
            default=1,
        )

    def create_runnable(self) -> Runnable:
        return self.runnable_class(**self.runnable_init_params)

    @property
    def handle(self) -> Handle:
        """The serving process's handle for this runner, else the local one."""
        return lookup(self) or self._local

    def client(self, target: str) -> Any:
        """The gRPC client a serving process calls this runner's worker at `target` with."""
        from kubento._remote.client import RunnerClient

        return RunnerClient(self.name, target)

    def init_local(self) -> None:
        """Instantiate the runnable in this process; calls then run here, unbatched."""
        self._local = LocalHandle(self.create_runnable())

    def __repr__(self) -> str:
        return f"<Runner {self.name} of {self.runnable_class.__name__}>"
