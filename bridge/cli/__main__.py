"""``python -m lmbridge.cli``: the same as the ``lmbridge`` command."""

import sys

from lmbridge.cli import main

sys.exit(main())
