"""The emulator's former name, kept so that ``python -m lab_helpers.agentcore_local serve`` still works.

The emulator lives in :mod:`lab_helpers.emulator`.
"""
