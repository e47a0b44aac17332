"""Record one scripted `python -m sync setup` session against the stand-ins.

The stand-in Spotify (tests/standin.py), a fake `gh` (tests/fake_gh.py) and a scratch
database on the server in TEST_DATABASE_URL; answers are typed by a script, secrets are
fake. Prints the session as a terminal would show it (hidden input stays hidden) and the
wall time of the setup command, which docs/setup-transcript.md quotes:

    TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test \\
        python -m tests.setup_transcript > docs/setup-transcript.md
"""

from __future__ import annotations

import io
import os
import tempfile
import time
from contextlib import redirect_stderr, redirect_stdout
from datetime import UTC, datetime
from pathlib import Path

from dotenv import dotenv_values

from sync.cli import build_parser, configure_logging
from sync.commands.setup import cmd_setup
from sync.redact import Redactor
from sync.setup.prompts import SetupIO
from tests import fake_gh
from tests.pg import PgCluster
from tests.setup_support import CLIENT_ID, CLIENT_SECRET, NOW, Person, base_env, with_password
from tests.standin import Standin, StandinState


def _session(out: io.StringIO, env: dict[str, str], answers: list) -> tuple[float, int]:
    out.write("$ python -m sync setup --headless\n")
    person = Person(out, answers)
    sio = SetupIO(out=out, interactive=True, read_line=person.line, read_secret=person.secret,
                  sleep=lambda s: None, now=lambda: NOW, redactor=Redactor())  # fmt: skip
    args = build_parser().parse_args(["setup", "--headless"])
    started = time.perf_counter()
    with redirect_stdout(out), redirect_stderr(out):  # print() and log lines, in order
        configure_logging(False, sio.redactor)
        code = cmd_setup(args, None, io=sio, env=env)
    took = time.perf_counter() - started
    out.write(f"$ echo $?\n{code}\n")
    return took, code


def main() -> None:
    cluster = PgCluster()
    cluster.build_template()
    db_url = cluster.create(migrated=False)
    try:
        with (
            tempfile.TemporaryDirectory() as tmp,
            Standin(StandinState(client_id=CLIENT_ID, client_secret=CLIENT_SECRET)) as standin,
        ):
            standin.state.authorize_user = "alice"
            bin_dir = fake_gh.install(Path(tmp) / "bin", polls_to_finish=1)
            os.environ["PATH"] = f"{bin_dir}{os.pathsep}{os.environ['PATH']}"
            work = Path(tmp) / "spotify-history"
            work.mkdir()
            os.chdir(work)
            out = io.StringIO()
            first = [
                ("Client ID", CLIENT_ID),
                ("Client secret", f'"{CLIENT_SECRET}"'),
                ("Connection string", with_password(db_url)),
                ("Set the repository secrets", "y"),
                ("Enable the workflow", "y"),
                ("Start a run now", ""),
            ]
            took, _ = _session(out, base_env(standin), first)
            again = [("Sign in another", ""), ("Replace them", ""), ("Start another run", "")]
            out.write("\n# later, the same command again: .env is read, what works is skipped\n")
            _session(out, {**base_env(standin), **dotenv_values(".env")}, again)
    finally:
        cluster.drop(db_url)
        cluster.close()
    text = out.getvalue().replace(standin.base, "http://127.0.0.1:PORT").replace(tmp, "~")
    print(HEADER.format(day=f"{datetime.now(UTC):%Y-%m-%d}", took=f"{took:.1f}"))
    print("```text")
    print(text.rstrip())
    print("```")


HEADER = """# A `python -m sync setup` session

Recorded {day} by `python -m tests.setup_transcript`: a first session in an empty clone,
answered by a script. Spotify is the local stand-in (`tests/standin.py`), `gh` is the
fake from `tests/fake_gh.py` (its first run "succeeds" without running anything, so
doctor still reports no run recorded), and the database is a scratch one on a local
PostgreSQL 15, which is why setup warns that GitHub's runners cannot reach it. Secrets
are fake; hidden input (the client secret and the connection string) is not shown, as
in a terminal. The first session's own work took {took} s. A second session follows: it finds
everything in place and skips it.
"""


if __name__ == "__main__":
    main()
