"""`python -m mpibench` is the same as the `mpibench` command."""

import sys

from mpibench.cli import main

sys.exit(main())
