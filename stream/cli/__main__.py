"""``python -m fraudstream.stream.cli``: the ``fraudstream`` command (the processes the
benchmarks, the demo and the tests start run it this way)."""

import sys

from . import main

sys.exit(main())
