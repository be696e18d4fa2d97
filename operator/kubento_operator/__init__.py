"""Kubento operator: BentoDeployments become Deployments, Services and autoscalers."""

from kubento_operator.render import render
from kubento_operator.spec import SpecError

__all__ = ["SpecError", "render"]
