"""Kubento operator: BentoDeployments become Deployments, Services and autoscalers.

Modules by concept: `spec` (the API types), `crd` (CRD generation), `render`
(spec -> child objects), `status` (children -> conditions), `reconcile`
(apply, prune, status), `handlers` (kopf wiring), `cli`.
"""
