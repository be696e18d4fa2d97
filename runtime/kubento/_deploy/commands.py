"""`kubento deploy module:EntryService --image IMAGE [-f deploy.yaml] [--dry-run]`."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import yaml

from kubento._deploy.manifest import DeployError, build_manifest

FIELD_MANAGER = "kubento-deploy"


def add_parser(commands: Any) -> None:
    deploy = commands.add_parser(
        "deploy", help="build the BentoDeployment of a @kubento.service graph and apply it"
    )
    deploy.add_argument("service", help="the entry service class as module:Class")
    deploy.add_argument("--image", required=True, help="the image with the service code")
    deploy.add_argument("-f", "--file", help="deploy file (BentoML deployment config shape)")
    deploy.add_argument("--name", help="BentoDeployment name (default: the entry's DNS name)")
    deploy.add_argument("--namespace", help="namespace (default: the kubeconfig context's)")
    deploy.add_argument("--working-dir", default=".", help="directory to import the service from")
    deploy.add_argument("--kubeconfig", help="kubeconfig path (default: $KUBECONFIG, ~/.kube)")
    deploy.add_argument("--dry-run", action="store_true", help="print the YAML, apply nothing")


def run(args: argparse.Namespace) -> int:
    from kubento._sdk.graph import GraphService
    from kubento._sdk.loader import load_service

    try:
        service = load_service(args.service, args.working_dir)
        if not isinstance(service, GraphService):
            raise DeployError(
                f"{args.service!r} is a kubento.Service: write its bentodeployment.yaml by hand "
                f"(see examples/composition), or deploy a @kubento.service class"
            )
        overrides: dict[str, Any] = {}
        if args.file:
            with open(args.file) as handle:
                overrides = yaml.safe_load(handle) or {}
        manifest = build_manifest(
            service.graph,
            import_path=args.service,
            image=args.image,
            name=args.name,
            namespace=args.namespace if args.dry_run else None,
            overrides=overrides,
        )
    except (ValueError, OSError, yaml.YAMLError) as exc:
        print(f"kubento deploy: {exc}", file=sys.stderr)
        return 2
    if args.dry_run:
        sys.stdout.write(yaml.safe_dump(manifest, sort_keys=False))
        return 0
    return apply(manifest, namespace=args.namespace, kubeconfig=args.kubeconfig)


def apply(manifest: dict[str, Any], *, namespace: str | None, kubeconfig: str | None) -> int:
    """Server-side apply with the user's kubeconfig (the Kubernetes client: the operator
    extra)."""
    try:
        from kubernetes import client, config
        from kubernetes.dynamic import DynamicClient
        from kubernetes.dynamic.exceptions import DynamicApiError
    except ImportError:
        print(
            "kubento deploy: the Kubernetes client is missing: pip install 'kubento[operator]' "
            "(or use --dry-run and kubectl apply -f -)",
            file=sys.stderr,
        )
        return 2
    try:
        config.load_kube_config(config_file=kubeconfig)
        _, context = config.list_kube_config_contexts(config_file=kubeconfig)
    except (config.ConfigException, OSError) as exc:
        print(f"kubento deploy: cannot load the kubeconfig: {exc}", file=sys.stderr)
        return 2
    ns = namespace or context.get("context", {}).get("namespace") or "default"
    manifest["metadata"]["namespace"] = ns
    dynamic = DynamicClient(client.ApiClient())
    try:
        resource = dynamic.resources.get(api_version=manifest["apiVersion"], kind=manifest["kind"])
        dynamic.server_side_apply(
            resource,
            body=manifest,
            namespace=ns,
            field_manager=FIELD_MANAGER,
            force_conflicts=True,
        )
    except DynamicApiError as exc:
        print(f"kubento deploy: the API server refused it: {exc.summary()}", file=sys.stderr)
        return 1
    except Exception as exc:  # no CRD (ResourceNotFoundError), unreachable server, ...
        print(f"kubento deploy: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    name = manifest["metadata"]["name"]
    print(f"bentodeployment.serving.kubento.io/{name} applied in namespace {ns}")
    print(f"  kubectl -n {ns} wait --for=condition=Ready bd/{name} --timeout=5m")
    return 0
