"""Fixtures of the sync tests: a hand-driven chain, its clock, and Services on key 0."""

from __future__ import annotations

from tests.sync.harness import chain, clock, make_services, services

__all__ = ["chain", "clock", "make_services", "services"]
