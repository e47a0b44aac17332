"""`python -m sync` on a Python older than 3.11: one line that says how to fix it."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from sync import __main__ as entry

ROOT = Path(__file__).resolve().parent.parent


def test_python_3_10_gets_one_line_with_the_fix(capsys):
    code = entry.main((3, 10, 12, "final", 0))
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1
    assert err.startswith(
        "error: spotify-history-sync needs Python 3.11 or newer (this is 3.10.12)"
    )
    assert "python3.11 -m venv .venv" in err


def test_python_3_11_and_newer_pass_the_check():
    assert entry.version_problem((3, 11, 0, "final", 0)) is None
    assert entry.version_problem((3, 13, 1, "final", 0)) is None


def test_entry_point_and_package_parse_with_old_grammar():
    for name in ("__main__.py", "__init__.py"):
        source = (ROOT / "sync" / name).read_text()
        ast.parse(source, feature_version=(3, 6))  # SyntaxError on anything newer


def test_entry_point_imports_nothing_from_the_package_before_the_check():
    tree = ast.parse((ROOT / "sync" / "__main__.py").read_text())
    top_level = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
    assert [alias.name for n in top_level for alias in n.names] == ["sys"]


def test_python_m_sync_still_runs():
    done = subprocess.run([sys.executable, "-m", "sync", "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0 and "COMMAND" in done.stdout


# -- run without the virtual environment: name the package and the two fixes -----------
BASE_PYTHON = getattr(sys, "_base_executable", sys.executable)


def test_without_the_venv_one_line_names_the_package_and_both_fixes(tmp_path):
    """The base interpreter without site-packages (-S) is a shell whose venv is not active."""
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HOME": str(tmp_path)}
    done = subprocess.run([BASE_PYTHON, "-S", "-m", "sync", "run"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith(
        f"error: the Python package 'python-dotenv' is not installed for {BASE_PYTHON}: "
    )
    assert "(. .venv/bin/activate)" in done.stderr
    assert "(pip install -r requirements.txt)" in done.stderr


def test_a_missing_third_party_module_in_process_is_one_line(monkeypatch, capsys):
    import sync.cli

    def missing():
        raise ModuleNotFoundError("No module named 'psycopg'", name="psycopg")

    monkeypatch.setattr(sync.cli, "main", missing)
    assert entry.main() == 2
    err = capsys.readouterr().err
    assert err == (
        f"error: the Python package 'psycopg' is not installed for {sys.executable}: activate "
        "the virtual environment (. .venv/bin/activate) or install the requirements "
        "(pip install -r requirements.txt)\n"
    )


def test_a_missing_module_of_the_package_itself_is_a_bug_and_raises(monkeypatch):
    import sync.cli

    def missing():
        raise ModuleNotFoundError("No module named 'sync.gone'", name="sync.gone")

    monkeypatch.setattr(sync.cli, "main", missing)
    with pytest.raises(ModuleNotFoundError):
        entry.main()
