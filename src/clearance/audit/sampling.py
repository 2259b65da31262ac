"""Which decisions are recorded: every denial; allowed ones on, off, or sampled.

``CLEARANCE["RECORD_ALLOWED"]`` is False (denials only), True (everything) or a rate between 0
and 1: each allowed decision is then recorded with that probability. The draw uses one
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


def should_record(decision: Decision) -> bool:
    """Whether the sinks record ``decision``: always for a denial, per the setting otherwise."""
    if not decision.allowed:
        return True
    rate = clearance_settings.RECORD_ALLOWED
    if rate is True:
        return True
    if rate is False or rate <= 0:
        return False
    if rate >= 1:
        return True
    return sampler.random() < float(rate)
