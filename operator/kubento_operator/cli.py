"""`kubento-operator`: run the operator, render children as a dry run, write the CRD."""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from kubento_operator import crd, naming, render, spec


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kubento-operator", description="The Kubento operator for BentoDeployments."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run the operator against the current kubeconfig")
    scope = run.add_mutually_exclusive_group()
    scope.add_argument(
        "--all-namespaces", action="store_true", help="watch every namespace (the default)"
    )
    scope.add_argument(
        "--namespace",
        "-n",
        action="append",
        default=[],
        metavar="NS",
        help="watch this namespace (repeatable)",
    )
    peering = run.add_mutually_exclusive_group()
    peering.add_argument(
        "--standalone", action="store_true", help="no leader election (the default)"
    )
    peering.add_argument(
        "--peering",
        metavar="NAME",
        help="leader election through the kopf.dev (Cluster)KopfPeering object NAME",
    )
    run.add_argument("--health-port", type=int, default=8080, help="serves /healthz")
    run.add_argument("--metrics-port", type=int, default=9091, help="serves Prometheus /metrics")
    run.add_argument("--log-format", choices=["plain", "json"], default="plain")
    run.add_argument("--verbose", "-v", action="store_true")

    dry_run = commands.add_parser(
        "render", help="print the objects a BentoDeployment becomes, as a YAML stream"
    )
    dry_run.add_argument(
        "-f", "--filename", required=True, metavar="FILE", help="BentoDeployment YAML ('-' = stdin)"
    )

    crds = commands.add_parser("crds", help="write the CustomResourceDefinition YAML")
    crds.add_argument("--output", "-o", type=Path, required=True, metavar="DIR")
    crds.add_argument(
        "--readme", type=Path, metavar="FILE", help="also regenerate its batching knob table"
    )
    return parser


def _render(filename: str) -> int:
    try:
        text = sys.stdin.read() if filename == "-" else Path(filename).read_text()
    except OSError as exc:
        print(f"error: cannot read {filename}: {exc.strerror}", file=sys.stderr)
        return 2
    try:
        documents = [doc for doc in yaml.safe_load_all(text) if doc is not None]
    except yaml.YAMLError as exc:
        print(f"error: {filename} is not valid YAML: {exc}", file=sys.stderr)
        return 2
    manifests: list[dict[str, Any]] = []
    for index, document in enumerate(documents):
        if isinstance(document, dict) and document.get("kind") not in (None, naming.KIND):
            continue
        try:
            manifests += render.render(document)
        except spec.SpecError as exc:
            where = f"{filename}" + (f" (document {index + 1})" if len(documents) > 1 else "")
            print(f"error: {where}: invalid BentoDeployment: {exc}", file=sys.stderr)
            return 1
    if not manifests:
        print(f"error: {filename} holds no {naming.KIND}", file=sys.stderr)
        return 1
    sys.stdout.write(yaml.safe_dump_all(manifests, sort_keys=False))
    return 0


def _run(args: argparse.Namespace) -> int:
    import kopf

    from kubento_operator import handlers, metrics

    kopf.configure(
        verbose=args.verbose,
        log_format=kopf.LogFormat.JSON if args.log_format == "json" else kopf.LogFormat.FULL,
    )
    assert handlers  # imported for its kopf registrations
    metrics.serve(args.metrics_port)
    kopf.run(
        clusterwide=not args.namespace,
        namespaces=args.namespace,
        standalone=args.peering is None,
        peering_name=args.peering,
        # kopf pauses every operator that sees a peer of equal priority; a random
        # one per process makes the highest replica the leader and the rest standby.
        priority=random.randint(1, 2**31 - 1) if args.peering else None,
        liveness_endpoint=f"http://0.0.0.0:{args.health_port}/healthz",
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "render":
        return _render(args.filename)
    if args.command == "crds":
        path = crd.write(args.output)
        print(f"wrote {path}")
        if args.readme is not None:
            args.readme.write_text(crd.with_knob_table(args.readme.read_text()))
            print(f"updated the batching knob table in {args.readme}")
        return 0
    return _run(args)


if __name__ == "__main__":
    sys.exit(main())
