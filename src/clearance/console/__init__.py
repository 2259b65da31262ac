"""The clearance console: the rule set, the group matrix, explanations and the audit trail.

An optional, read-only Django app for staff members. Add ``"clearance.console"`` to
``INSTALLED_APPS`` and include its URLs::

    path("clearance/", include("clearance.console.urls")),

Pages: the actions (every action with its permission, policies, invariants and reasons), the
matrix (actions by groups), explain (the three gates of one decision, rule by rule) and the
audit trail (filtered, paginated, with a chart of decisions per day). Plain Django templates
and one stylesheet; no JavaScript.
"""
