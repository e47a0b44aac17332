"""The package's shape (docs/design.md, "Map of the package"): imports flow one way, no cycles,
and modules stay small unless they say why."""

from __future__ import annotations

import ast
from pathlib import Path

SYNC = Path(__file__).resolve().parent.parent / "sync"
# Lower numbers are lower layers; a module may import its own layer or lower ones.
LAYERS = (
    (5, ("sync.cli", "sync.__main__")),
    (4, ("sync.commands",)),
    (3, ("sync.job", "sync.history_import", "sync.analytics", "sync.reports", "sync.signin",
         "sync.doctor", "sync.setup", "sync.notify", "sync.export")),
    (2, ("sync.store", "sync.spotify")),
)  # fmt: skip


def _layer(module: str) -> int:
    for level, prefixes in LAYERS:
        if module.startswith(prefixes):
            return level
    return 1  # db, schema, config, control, names, statuses, locks, text, ...


def _is_module(dotted: str) -> bool:
    path = SYNC.parent / dotted.replace(".", "/")
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def _imports() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in SYNC.rglob("*.py"):
        name = ".".join(path.relative_to(SYNC.parent).with_suffix("").parts)
        name = name.removesuffix(".__init__")
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("sync"):
                for alias in node.names:  # `from sync.db import schema` imports sync.db.schema
                    sub = f"{node.module}.{alias.name}"
                    found.add(sub if _is_module(sub) else node.module)
        graph[name] = found
    return graph


def test_imports_flow_one_way():
    upward = [
        (module, imported)
        for module, imports in _imports().items()
        for imported in imports
        if _layer(imported) > _layer(module)
    ]
    assert upward == []


def test_no_import_cycles():
    graph = _imports()
    state: dict[str, int] = {}
    cycles = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in graph.get(module, ()):
            if target not in graph:
                continue
            if state.get(target) == 1:
                cycles.append(path + [module, target])
            elif not state.get(target):
                visit(target, path + [module])
        state[module] = 2

    for module in graph:
        if not state.get(module):
            visit(module, [])
    assert cycles == []


def test_long_modules_say_why_at_their_top():
    long = []
    for path in SYNC.rglob("*.py"):
        text = path.read_text()
        if text.count("\n") > 420:
            doc = ast.get_docstring(ast.parse(text)) or ""
            if "400" not in doc:
                long.append(path.name)
    assert long == []


def test_system_tests_are_marked_slow_and_others_are_not():
    from tests import conftest

    class Item:
        def __init__(self, nodeid: str) -> None:
            self.nodeid, self.marks = nodeid, []

        def add_marker(self, mark) -> None:
            self.marks.append(mark.name)

    items = [Item(f"{prefix}test_x.py::t" if prefix.endswith("/") else f"{prefix}::t")
             for prefix in conftest.SLOW] + [Item("tests/job/test_pipeline.py::t")]  # fmt: skip
    conftest.pytest_collection_modifyitems(None, items)
    assert [i.marks for i in items] == [["slow"]] * len(conftest.SLOW) + [[]]
    assert all((SYNC.parent / prefix).exists() for prefix in conftest.SLOW)


def test_tests_mirror_the_package():
    tests = SYNC.parent / "tests"
    folders = {p.name for p in tests.iterdir() if (p / "__init__.py").exists()}
    packages = {p.name for p in SYNC.iterdir() if (p / "__init__.py").exists()}
    assert folders - packages <= {"support", "tools", "system", "bench"}
    assert list(tests.glob("*_support.py")) == [] and list(tests.glob("*fake*.py")) == []


def test_at_most_twelve_modules_at_the_top_of_the_package():
    top = sorted(p.name for p in SYNC.glob("*.py"))
    assert len(top) <= 12, top


def test_the_lease_length_has_one_home():
    from sync.job import pipeline
    from sync.store import outcome, users

    homes = [p for p in SYNC.rglob("*.py") if "timedelta(minutes=15)" in p.read_text()]
    assert homes == [SYNC / "store" / "users.py"]
    assert [p for p in SYNC.rglob("*.py") if "15 minutes" in p.read_text()] == []  # texts too
    assert pipeline.LEASE is users.LEASE
    assert outcome.save.__defaults__[-1] is users.LEASE


def test_the_refresh_token_lifetime_has_one_home():
    code = [p for p in SYNC.rglob("*.py") if "interval '6 months'" in p.read_text()]
    assert code == []
    from sync.job import tokens
    from sync.store import users

    assert tokens.REFRESH_TOKEN_LIFETIME_MONTHS is users.REFRESH_TOKEN_LIFETIME_MONTHS


def _texts(path: Path) -> list[str]:
    """The string literals of a module's code, docstrings left out."""
    tree = ast.parse(path.read_text())
    docs = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs
    ]


def test_texts_take_the_refresh_token_lifetime_from_its_home():
    left = {"analytics/listening.py"}  # "last 6 months" of listening: not the sign-in
    written = {
        str(path.relative_to(SYNC))
        for path in SYNC.rglob("*.py")
        if any("6 month" in t or "6-month" in t for t in _texts(path))
    }
    assert written <= left


def test_stand_in_servers_never_block_in_accept():
    from tests.support.github_standin import GitHubStandin
    from tests.support.standin import Standin, returns_without_a_connection

    with Standin() as spotify, GitHubStandin() as github:
        assert returns_without_a_connection(spotify._server)
        assert returns_without_a_connection(github.server)


# -- writes only in store/ (docs/design.md, "Map of the package") -----------------------
# Every execute/executemany/copy outside these is read-only (tests/support/sql_writes.py).
WRITES_BELONG = {
    "sync/store/": "the store: every statement that writes",
    "sync/db/schema.py": "migrations: DDL, schema_files, the migration's advisory lock "
    "(its key in db/locks.py)",
}
# Calls outside those that change state on purpose: path -> how many (a stale entry fails).
WRITES_NOT_MOVED_YET = {
    # the worker pool's `set lock_timeout; set statement_timeout` on each new connection:
    # session settings, no data, kept beside the pool that opens the connections
    "sync/job/pipeline.py": 1,
}


def test_statements_that_write_live_in_the_store():
    from tests.support.sql_writes import scan

    outside = [c for c in scan() if not c.path.startswith(tuple(WRITES_BELONG))]
    writing = [c for c in outside if c.problem]
    per_file = {p: sum(c.path == p for c in writing) for p in {c.path for c in writing}}
    too_many = {p: n for p, n in per_file.items() if n > WRITES_NOT_MOVED_YET.get(p, 0)}
    assert too_many == {}, [f"{c.path}:{c.line} {c.problem}" for c in writing
                            if c.path in too_many]  # fmt: skip
    stale = {p: n for p, n in WRITES_NOT_MOVED_YET.items() if per_file.get(p, 0) < n}
    assert stale == {}, "lower or remove these allow-list entries"
    assert len(outside) > 30  # the scan found the read-only calls too


def test_the_write_checker_tells_writes_from_reads():
    from tests.support.sql_writes import calls, writing_functions

    writers = writing_functions()
    assert {"sync_store_user", "analytics_rebuild", "catalogue_upsert"} <= writers
    assert "listening_top" not in writers

    def verdicts(source: str) -> list[str | None]:
        return [c.problem for c in calls(source, writers=writers)]

    reads = """
Q = "select 1"
NAMES = {1: "select a from t", 2: f"select {Q}"}
def f(conn, lock, kind):
    part = "x = 1" if lock else "true"
    conn.execute(Q)
    conn.execute(f"select * from t where {part}")
    conn.execute(NAMES[kind])
    conn.execute("with t as (select 1) select * from t")
    conn.cursor().copy("copy (select 1) to stdout")
    conn.execute("select listening_top(1, 2::smallint, null, null, 5)")
"""
    assert verdicts(reads) == [None] * 6
    writes = """
U = "update user_tokens set status = %s"
def f(conn, text):
    conn.execute("insert into t values (1)")
    conn.execute(U)
    conn.execute("with gone as (delete from t returning 1) select count(*) from gone")
    conn.execute("select * from user_tokens where id = %s" + (" for update" if x else ""))
    conn.execute("select analytics_rebuild(%s)", (1,))
    conn.execute("select pg_advisory_xact_lock(1)")
    conn.cursor().copy("copy t (a, b) from stdin")
    conn.executemany("merge into t using s on true when matched then do nothing", [])
    conn.execute("set lock_timeout = '1s'")
    conn.execute(text)
"""
    assert all(verdicts(writes)) and len(verdicts(writes)) == 10
    # one write added to a module outside store/ is the one call the gate above finds
    upkeep = (SYNC / "analytics" / "upkeep.py").read_text()
    added = upkeep + '\n\ndef wipe(conn):\n    conn.execute("delete from listening_days")\n'
    assert [c for c in calls(upkeep, writers=writers) if c.problem] == []
    assert [c.line for c in calls(added, writers=writers) if c.problem] == [added.count("\n")]


def test_no_module_over_500_lines_and_no_repeatable_sql_file_over_400():
    modules = {
        p.relative_to(SYNC).as_posix(): p.read_text().count("\n") for p in SYNC.rglob("*.py")
    }
    sql = {p.name: p.read_text().count("\n") for p in (SYNC.parent / "sql").rglob("*.sql")
           if p.parent.name != "sql"}  # fmt: skip
    assert len(modules) > 50 and len(sql) >= 7  # found them
    assert {m: n for m, n in modules.items() if n > 500} == {}
    assert {f: n for f, n in sql.items() if n > 400} == {}


def test_placeholder_prefixes_in_sql_are_the_ones_of_store_catalogue():
    import re

    from sync.store import catalogue

    homes = {v for k, v in vars(catalogue).items() if k.startswith("PLACEHOLDER_")}
    sql = "\n".join(p.read_text() for p in (SYNC.parent / "sql" / "repeatable").glob("*.sql"))
    spelled = set(re.findall(r"'(spotify:export[a-z-]*:)", sql))
    assert spelled and spelled <= homes, spelled - homes


def test_no_function_over_60_lines():
    long = {
        f"{path.relative_to(SYNC)}:{node.name}"
        for path in SYNC.rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and node.end_lineno - node.lineno + 1 > 60
    }
    assert long == set()


def test_the_import_sends_its_statements_through_store():
    """history_import/ parses and plans; what it writes or reads goes through
    store/imports.py (the set logic in sql/repeatable/25_import.sql)."""
    calls = [
        f"{path.relative_to(SYNC)}:{node.lineno}"
        for path in (SYNC / "history_import").rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in ("execute", "executemany", "copy")
    ]
    assert calls == []


# -- commands own their flags (issue 17) -------------------------------------------------
def test_the_command_line_stays_thin():
    assert (SYNC / "cli.py").read_text().count("\n") < 150


def test_no_command_builds_a_namespace():
    """A command calls another's typed function; only argparse itself makes Namespaces."""
    built = [p.name for p in SYNC.rglob("*.py") if "Namespace(" in p.read_text()]
    assert built == []


def test_the_user_flag_is_written_once():
    homes = [p.relative_to(SYNC).as_posix() for p in SYNC.rglob("*.py")
             if '"--user"' in p.read_text()]  # fmt: skip
    assert homes == ["commands/__init__.py"]


def test_each_command_module_registers_its_own_parser():
    import argparse
    import importlib

    from sync.commands import COMMANDS

    modules = {p.stem for p in (SYNC / "commands").glob("*.py")} - {"__init__"}
    assert sorted(COMMANDS.values()) == sorted(modules)  # every module is listed, once
    for name, module in COMMANDS.items():
        sub = argparse.ArgumentParser().add_subparsers()
        importlib.import_module(f"sync.commands.{module}").add_parser(sub)
        assert list(sub.choices) == [name], module
        assert sub.choices[name].get_default("handler") or sub.choices[name]._subparsers, name
