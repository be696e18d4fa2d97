"""Find the user's `Service` (or entry service class) from a `module:attribute` path."""

from __future__ import annotations

import importlib
import os
import sys

from kubento._sdk.classes import config_of
from kubento._sdk.service import Service


def load_service(import_path: str, working_dir: str = ".", *, local: bool = False) -> Service:
    """The Service at `module:attribute`; a `@kubento.service` class becomes its graph's entry
    (`local`: the whole graph in this process)."""
    module_name, sep, attr_path = import_path.partition(":")
    if not sep or not module_name or not attr_path:
        raise ValueError(f"service {import_path!r} must look like 'module:attribute'")
    directory = os.path.abspath(working_dir)
    if not os.path.isdir(directory):
        raise ValueError(f"working directory {working_dir!r} does not exist")
    if directory not in sys.path:
        sys.path.insert(0, directory)
    try:
        obj: object = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name.split(".")[0] and exc.name != module_name:
            raise
        raise ValueError(f"cannot import module {module_name!r} from {directory}") from None
    for attr in attr_path.split("."):
        try:
            obj = getattr(obj, attr)
        except AttributeError:
            raise ValueError(f"module {module_name!r} has no attribute {attr_path!r}") from None
    if isinstance(obj, type) and config_of(obj) is not None:
        from kubento._sdk.graph import GraphError, GraphService

        try:
            return GraphService(obj, local=local)
        except GraphError as exc:
            raise ValueError(str(exc)) from None
    if not isinstance(obj, Service):
        raise ValueError(
            f"{import_path!r} is a {type(obj).__name__}, not a kubento.Service or a "
            f"@kubento.service class"
        )
    return obj
