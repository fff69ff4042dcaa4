"""``python -m puregrpc_streaming``: the ``puregrpc-streaming`` command."""

import sys

from .cli import main

sys.exit(main())
