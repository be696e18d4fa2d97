"""`Runnable`: the user's model class, and `@Runnable.method` to expose its methods."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar, overload

F = TypeVar("F", bound=Callable[..., Any])

_METHOD_ATTR = "__kubento_method__"


@dataclass(frozen=True)
class MethodSpec:
    """How a runnable method is called: batchable or not, and along which dimension."""

    name: str
    batchable: bool = False
    batch_dim: tuple[int, int] = (0, 0)
    is_async: bool = False


def _normalise_batch_dim(batch_dim: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(batch_dim, bool):
        raise TypeError("batch_dim must be an int or an (input, output) tuple of ints")
    if isinstance(batch_dim, int):
        return (batch_dim, batch_dim)
    if (
        isinstance(batch_dim, tuple)
        and len(batch_dim) == 2
        and all(isinstance(d, int) and not isinstance(d, bool) for d in batch_dim)
    ):
        return (batch_dim[0], batch_dim[1])
    raise TypeError(
        f"batch_dim must be an int or an (input, output) tuple of ints, got {batch_dim!r}"
    )


class Runnable:
    """Base class for models. Subclass it and decorate methods with `Runnable.method`.

    `SUPPORTED_RESOURCES` names what the model can use (e.g. ``("nvidia.com/gpu", "cpu")``);
    `SUPPORTS_CPU_MULTI_THREADING` tells the runner whether to give a worker all CPU threads.
    """

    SUPPORTED_RESOURCES: ClassVar[tuple[str, ...]] = ("cpu",)
    SUPPORTS_CPU_MULTI_THREADING: ClassVar[bool] = False
    methods: ClassVar[dict[str, MethodSpec]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        methods: dict[str, MethodSpec] = {}
        for klass in reversed(cls.__mro__):
            for attr, value in vars(klass).items():
                spec = getattr(value, _METHOD_ATTR, None)
                if isinstance(spec, MethodSpec):
                    methods[attr] = MethodSpec(
                        name=attr,
                        batchable=spec.batchable,
                        batch_dim=spec.batch_dim,
                        is_async=spec.is_async,
                    )
        cls.methods = methods

    @overload
    @staticmethod
    def method(fn: F, /) -> F: ...

    @overload
    @staticmethod
    def method(
        *, batchable: bool = False, batch_dim: int | tuple[int, int] = 0
    ) -> Callable[[F], F]: ...

    @staticmethod
    def method(
        fn: Any = None, /, *, batchable: bool = False, batch_dim: int | tuple[int, int] = 0
    ) -> Any:
        """Expose a method to runners: ``@Runnable.method(batchable=True, batch_dim=0)``."""
        dims = _normalise_batch_dim(batch_dim)

        def decorate(func: F) -> F:
            spec = MethodSpec(
                name=func.__name__,
                batchable=batchable,
                batch_dim=dims,
                is_async=inspect.iscoroutinefunction(func),
            )
            setattr(func, _METHOD_ATTR, spec)
            return func

        return decorate(fn) if fn is not None else decorate
