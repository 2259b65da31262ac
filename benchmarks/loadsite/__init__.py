"""The example project as :mod:`benchmarks.load` serves it, plus hand-written twins of its views."""
