"""The command line the analysis scripts share: a results file in, PNG files out."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from mpibench.contention import EXCLUDE_HELP
from mpibench.store.hdf5 import ResultsFileError


def plot_command(draw: Callable[[str, Path, bool], list[Path]], description: str, argv: list[str] | None) -> int:
    """Parse `results [--out DIR] [--exclude-contended]`, draw, print the files written; a bad file is one line
    and exit 2."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("results")
    parser.add_argument("--out", help="folder for the PNG files (default: plots/ beside the results)")
    parser.add_argument("--exclude-contended", action="store_true", help=EXCLUDE_HELP)
    args = parser.parse_args(argv)
    out = Path(args.out) if args.out else Path(args.results).parent / "plots"
    try:
        for path in draw(args.results, out, args.exclude_contended):
            print(path)
    except ResultsFileError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # the folder cannot be made or written
        print(f"error: cannot write the plots to {out}: {error.strerror or error}", file=sys.stderr)
        return 2
    return 0
