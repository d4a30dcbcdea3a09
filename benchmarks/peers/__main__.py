"""``python -m benchmarks.peers``: see :mod:`benchmarks.peers`."""

import sys

from . import main

sys.exit(main())
