"""The library's version, in one place: ``lmbridge.__version__``, saved programs, OpenTelemetry spans,
``lmbridge --version`` and the package metadata (pyproject.toml reads it from here) all use it."""

__version__ = "0.1.0"
