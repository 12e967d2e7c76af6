"""Fixtures of the transport tests: loop devices (tests/discovery/loops.py)."""

from tests.discovery.loops import loop_devices

__all__ = ["loop_devices"]
