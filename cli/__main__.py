"""Allow `python -m cli` as well as the `tidegate` console script."""

import sys

from cli.main import main

sys.exit(main())
