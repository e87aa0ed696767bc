"""``python -m recon`` is the ``recon`` command line (:mod:`recon.cli`)."""

import sys

from .cli import main

sys.exit(main())
