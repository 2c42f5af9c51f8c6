"""python -m handlers.loader (the same CLI as graphrec-load)."""

import sys

from handlers.loader.cli import main

sys.exit(main())
