"""The ``lmbridge`` command: ``compile``, ``evaluate``, ``inspect`` and ``migrate``, one module per subcommand."""

from lmbridge.cli._main import main

__all__ = ["main"]
