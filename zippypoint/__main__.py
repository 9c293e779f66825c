"""`python -m zippypoint ...`: the same command line as the `zippypoint` script."""

import sys

from zippypoint.cli import main

sys.exit(main())
