"""`python -m sync`: check the Python version first, then run the command line.

Kept to syntax that Python 3.6 can parse (no annotations, no walrus), and nothing
from the package is imported before the check: sync.cli and everything it imports
need Python 3.11 (datetime.UTC, for one), and an older interpreter would
otherwise stop with an ImportError traceback instead of saying what to do.
"""

import sys

MINIMUM = (3, 11)


def version_problem(version_info=None):
    """The one-line message when this interpreter is too old, else None."""
    version_info = sys.version_info if version_info is None else version_info
    if tuple(version_info[:2]) >= MINIMUM:
        return None
    this = ".".join(str(part) for part in version_info[:3])
    return (
        f"spotify-history-sync needs Python 3.11 or newer (this is {this}): install Python 3.11+ "
        "(Ubuntu 22.04: sudo apt install python3.11 python3.11-venv) and recreate the "
        "virtual environment with it: rm -rf .venv && python3.11 -m venv .venv && "
        ". .venv/bin/activate && pip install -r requirements.txt"
    )


def main(version_info=None):
    problem = version_problem(version_info)
    if problem:
        sys.stderr.write("error: " + problem + "\n")
        return 2
    from sync.cli import main as cli_main

    return cli_main()


if __name__ == "__main__":
    sys.exit(main())
