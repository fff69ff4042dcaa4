"""``python -m puregrpc.trace``: the same as the ``puregrpc`` command."""

import sys

from .cli import main

sys.exit(main())
