"""The harness's version: one place, imported by the package and by what records a run's code."""

__version__ = "0.1.0"
