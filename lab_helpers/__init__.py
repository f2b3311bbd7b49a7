"""Helpers for the agentcore-longrun-lab notebooks: settings, server launching, the training workload, widgets."""

from lab_helpers.config import Settings, load

__all__ = ["Settings", "load"]
