"""``python -m clothingclf.cli`` runs the command line, as ``python -m clothingclf`` does."""

import sys

from . import main

sys.exit(main())
