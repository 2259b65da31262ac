"""Benchmarks: django-clearance side by side with the hand-written check and the peers.

Run everything with ``make bench`` (``python -m benchmarks``). Each module measures one thing
and returns the text of its table; ``docs/benchmarks.md`` holds the figures of one run.

Shared pieces: :mod:`benchmarks.settings` (Django settings, a SQLite database in a temporary
directory), :mod:`benchmarks.env` (``setup()`` configures Django and creates the database),
:mod:`benchmarks.harness` (timing, query counting, tables) and the ``bench`` app
(:mod:`benchmarks.benchapp`: the invoice-approval scenario written once per library).
"""
