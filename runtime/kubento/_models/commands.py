"""`kubento models list|get|delete|export|import|pull`: the store from the command line.

These never load a service: they work on `$KUBENTO_HOME` (or `--home`) alone, so an init
container or a Dockerfile step can run them with nothing but the runtime installed.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import yaml

from kubento._models.store import ModelStore, ModelStoreError, home
from kubento._models.tag import BadTag


def add_parser(commands: Any) -> None:
    """Add `models` and its subcommands to the top-level subparsers."""
    models = commands.add_parser("models", help="list, inspect, move and fetch stored models")
    models.add_argument("--home", help="the store's root (default: $KUBENTO_HOME or ~/kubento)")
    sub = models.add_subparsers(dest="models_command", required=True)
    listing = sub.add_parser("list", help="list models, oldest first within a name")
    listing.add_argument("name", nargs="?", help="only the versions of this name")
    get = sub.add_parser("get", help="print a model's model.yaml and path")
    get.add_argument("tag", help="name, name:latest or name:version")
    delete = sub.add_parser("delete", help="delete one model version")
    delete.add_argument("tag")
    export = sub.add_parser("export", help="write one model into an archive")
    export.add_argument("tag")
    export.add_argument("path", help="archive path (.tar, .tar.gz) or a directory")
    imported = sub.add_parser("import", help="import an archive made by export")
    imported.add_argument("path")
    pull = sub.add_parser("pull", help="fetch an archive, check its sha256, import it")
    pull.add_argument("tag", help="name:version the archive must hold")
    pull.add_argument("source", help="https://..., s3://bucket/key, pvc://claim/path or a path")
    pull.add_argument("--sha256", required=True, help="the archive's sha256 (64 hex digits)")
    pull.add_argument("--s3-endpoint", help="an S3-compatible endpoint URL")


def run(args: argparse.Namespace) -> int:
    store = ModelStore(args.home) if args.home else ModelStore(home())
    try:
        return _run(store, args)
    except (ModelStoreError, BadTag) as exc:
        print(f"kubento models {args.models_command}: {exc}", file=sys.stderr)
        return 1


def _run(store: ModelStore, args: argparse.Namespace) -> int:
    command = args.models_command
    if command == "list":
        rows = [
            (str(m.tag), m.info.framework, m.info.creation_time.isoformat(timespec="seconds"))
            for m in store.list(args.name)
        ]
        widths = [max(len(r[i]) for r in [("TAG", "FRAMEWORK", ""), *rows]) for i in range(2)]
        for row in [("TAG", "FRAMEWORK", "CREATED"), *rows]:
            print(f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]}")
    elif command == "get":
        model = store.get(args.tag)
        print(yaml.safe_dump({**model.info.to_dict(), "path": str(model.path)}, sort_keys=False))
    elif command == "delete":
        print(f"deleted {store.delete(args.tag).tag}")
    elif command == "export":
        print(store.export_model(args.tag, args.path))
    elif command == "import":
        print(f"imported {store.import_model(args.path).tag}")
    else:
        from kubento._models.pull import pull

        model = pull(args.tag, args.source, args.sha256, store, s3_endpoint=args.s3_endpoint)
        print(f"pulled {model.tag} into {model.path}")
    return 0
