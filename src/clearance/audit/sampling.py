"""Which decisions are recorded: every denied attempt; allowed ones and probes on, off, or sampled.

``CLEARANCE["RECORD_ALLOWED"]`` is False (denials only), True (everything) or a rate between 0
and 1: each allowed decision is then recorded with that probability. A probe (a decision that
only decides what to show, ``Decision.probe``) is recorded only when
``CLEARANCE["RECORD_PROBES"]`` selects it (False by default, True, or a rate), and then like an
attempt (a denial always, an allowed probe per ``RECORD_ALLOWED``). The draw uses one
``random.Random`` instance, :data:`sampler`, which tests can make deterministic with
:func:`seed`.
"""

from __future__ import annotations

import random

from ..conf import clearance_settings
from ..decisions import Decision

__all__ = ["sampler", "seed", "should_record"]

#: The random source of the sampling draws.
sampler = random.Random()


def seed(value: int | None) -> None:
    """Make the sampling draws reproducible (``None`` reseeds from the system)."""
    sampler.seed(value)


def _drawn(rate: bool | float) -> bool:
    if rate is True:
        return True
    if rate is False or rate <= 0:
        return False
    if rate >= 1:
        return True
    return sampler.random() < float(rate)


def should_record(decision: Decision) -> bool:
    """Whether the sinks record ``decision``: a denied attempt always, the rest per the settings."""
    if decision.probe and not _drawn(clearance_settings.RECORD_PROBES):
        return False
    if not decision.allowed:
        return True
    return _drawn(clearance_settings.RECORD_ALLOWED)
