"""Rules: ``where`` (ORM lookups), ``predicate`` (Python), placeholders and their algebra.

A rule answers one question about one decision: does it hold? Every rule can be evaluated on a
single object in Python (:meth:`Rule.evaluate`), and ``where`` rules also compile to a ``Q`` for
querysets (:meth:`Rule.to_q`), with the same answer, NULLs included.

Per-object evaluation reads local fields and foreign-key ids from the object without touching
the database (``where(owner=ACTOR)`` compares ``owner_id`` with ``actor.pk``). A lookup that
crosses a to-many relation (``tenant__memberships__user=ACTOR``) costs one query, and when it
is tied to the actor, the set of matching ids is computed once and cached on the actor object
(as Django caches ``_perm_cache``), so the next decision for the same actor object is free.

The package holds one concept per module: :mod:`~clearance.rules.context` (the decision
context), :mod:`~clearance.rules.placeholders` (``ACTOR``, ``CTX``), :mod:`~clearance.rules.tree`
(the rule tree, its algebra and predicates), :mod:`~clearance.rules.evaluate` (Python
evaluation of a lookup), :mod:`~clearance.rules.sql` (SQL compilation) and
:mod:`~clearance.rules.lookups` (``where()``). Every name is importable from here.
"""

from .context import Context
from .evaluate import NOTHING as NOTHING
from .evaluate import fold_case as fold_case
from .lookups import ACTOR_CACHE_ATTR as ACTOR_CACHE_ATTR
from .lookups import Where, where
from .lookups import clear_actor_cache as clear_actor_cache
from .lookups import freeze as freeze
from .placeholders import ACTOR, CTX, Expr, Ref
from .placeholders import contains_ref as contains_ref
from .sql import CodePointOrder as CodePointOrder
from .tree import All as All
from .tree import Any_ as Any_
from .tree import Not as Not
from .tree import Predicate, PredicateResultError, Rule, predicate, unfilterable_reason
from .tree import RuleNotFilterable as RuleNotFilterable
from .tree import describe_result as describe_result
from .tree import predicate_result_watchers as predicate_result_watchers

# The names above imported "as" themselves are importable from here too (the rest of the
# package uses them), but are not part of ``from clearance.rules import *``.
__all__ = [
    "ACTOR",
    "CTX",
    "Context",
    "Expr",
    "Predicate",
    "PredicateResultError",
    "Ref",
    "Rule",
    "Where",
    "predicate",
    "unfilterable_reason",
    "where",
]
