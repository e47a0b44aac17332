"""The GitHub workflows: schema-valid, zizmor-clean, and hardened the way the README promises."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"
SYNC = WORKFLOWS / "sync.yml"
TESTS = WORKFLOWS / "tests.yml"
BACKUP = WORKFLOWS / "backup.yml"
SECRETS = {"DATABASE_URL", "SPOTIFY_CLIENT_ID", "SPOTIFY_CLIENT_SECRET"}
PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")


def _tool(name: str) -> str:
    """The dev tool next to this interpreter (the venv), else on PATH; skip when absent."""
    local = Path(sys.executable).with_name(name)
    found = str(local) if local.exists() else shutil.which(name)
    if not found:
        pytest.skip(f"{name} is not installed (pip install -r requirements-dev.txt)")
    return found


def _load(path: Path) -> dict:
    data = yaml.safe_load(path.read_text())
    # YAML 1.1 reads the bare key `on` as the boolean True.
    if True in data:
        data["on"] = data.pop(True)
    return data


def _steps(workflow: dict):
    for job in workflow["jobs"].values():
        yield from job.get("steps", [])


def step(workflow: dict, name: str) -> dict:
    """The step called `name` (the sync job's "Sync", "Sign in", ...)."""
    found = [s for s in _steps(workflow) if s.get("name") == name]
    assert len(found) == 1, f"one step named {name!r}, found {len(found)}"
    return found[0]


def sync_script(path: Path = SYNC) -> str:
    """The Sync step's `run:` script, as the runner writes it to a file for bash."""
    return step(_load(path), "Sync")["run"]


def test_workflows_match_github_schema():
    files = sorted(str(p) for p in WORKFLOWS.glob("*.yml"))
    assert len(files) >= 2
    proc = subprocess.run(
        [_tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", *files],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_zizmor_offline_has_no_findings():
    proc = subprocess.run(
        [_tool("zizmor"), "--offline", "--format", "json", str(WORKFLOWS)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads(proc.stdout) == [], proc.stdout


def test_sync_runs_hourly_at_an_odd_minute():
    crons = [entry["cron"] for entry in _load(SYNC)["on"]["schedule"]]
    assert crons
    for cron in crons:
        minute, hour, *_ = cron.split()
        assert minute.isdigit() and int(minute) % 2 == 1, f"{cron}: pick an odd minute, not :00"
        assert hour == "*", f"{cron}: Spotify keeps only 50 plays, so sync every hour"


def test_sync_manual_dispatch_takes_user_and_dry_run():
    inputs = _load(SYNC)["on"]["workflow_dispatch"]["inputs"]
    assert inputs["user"]["type"] == "string"
    assert inputs["user"].get("required", False) is False
    assert inputs["dry_run"]["type"] == "boolean"
    assert inputs["dry_run"]["default"] is False


# What each job may do beyond the top level's `contents: read`.
JOB_PERMISSIONS = {
    ("sync.yml", "sync"): {"contents": "read", "issues": "write"},  # the owner's inbox
}


@pytest.mark.parametrize("path", [SYNC, TESTS, BACKUP], ids=["sync", "tests", "backup"])
def test_every_step_runs_in_the_shell_its_tests_use(path: Path):
    """Only `shell: bash` gives `bash --noprofile --norc -eo pipefail {0}` (STEP_SHELL, in
    which tests/system runs the step scripts); left unset, the runner uses `bash -e {0}`,
    and `export | tee log` would hide a failed export."""
    from tests.support.runner import STEP_SHELL

    workflow = _load(path)
    assert workflow["defaults"] == {"run": {"shell": "bash"}}
    assert all("shell" not in s for s in _steps(workflow) if "run" in s)
    assert STEP_SHELL == ("bash", "--noprofile", "--norc", "-eo", "pipefail")


@pytest.mark.parametrize("path", [SYNC, TESTS, BACKUP], ids=["sync", "tests", "backup"])
def test_workflow_is_least_privilege_and_bounded(path: Path):
    workflow = _load(path)
    assert workflow["permissions"] == {"contents": "read"}
    for name, job in workflow["jobs"].items():
        wanted = JOB_PERMISSIONS.get((path.name, name), {"contents": "read"})
        assert job.get("permissions", {"contents": "read"}) == wanted, name
        assert 0 < int(job["timeout-minutes"]) <= 60, name


# The first major of each action that runs on Node 24 (Node 20 left the runners on
# 2026-09-16; upload-artifact v5 still declared node20).
NODE24_MAJOR = {"actions/checkout": 5, "actions/setup-python": 6, "actions/upload-artifact": 6}
VERSION_COMMENT = re.compile(r"@([0-9a-f]{40}) # v(\d+)\.\d+\.\d+$")


@pytest.mark.parametrize("path", [SYNC, TESTS, BACKUP], ids=["sync", "tests", "backup"])
def test_actions_pinned_by_sha_and_checkout_drops_credentials(path: Path):
    steps = [s for s in _steps(_load(path)) if "uses" in s]
    assert steps
    for step in steps:
        assert PINNED.match(step["uses"]), f"{step['uses']}: pin by a full commit SHA"
    checkouts = [s for s in steps if s["uses"].startswith("actions/checkout@")]
    assert checkouts and all(s["with"]["persist-credentials"] is False for s in checkouts)


@pytest.mark.parametrize("path", [SYNC, TESTS, BACKUP], ids=["sync", "tests", "backup"])
def test_actions_are_on_a_node24_major_named_beside_the_sha(path: Path):
    lines = [line.strip() for line in path.read_text().splitlines() if "uses:" in line]
    assert lines
    for line in lines:
        action = line.split("uses:", 1)[1].strip().split("@")[0]
        match = VERSION_COMMENT.search(line)
        assert match, f"{line}: pin by SHA with a `# vX.Y.Z` comment"
        assert action in NODE24_MAJOR, f"{action}: add its first Node 24 major here"
        assert int(match.group(2)) >= NODE24_MAJOR[action], f"{line}: not a Node 24 release"


def test_sync_never_cancels_a_running_sync():
    concurrency = _load(SYNC)["concurrency"]
    assert concurrency["group"]
    assert concurrency.get("cancel-in-progress", False) is False


def test_sync_is_skipped_in_the_template_repository():
    job = _load(SYNC)["jobs"]["sync"]
    assert "!github.event.repository.is_template" in job["if"].replace(" ", "")


def test_sync_uses_setup_python_with_pip_cache():
    setups = [
        s for s in _steps(_load(SYNC)) if s.get("uses", "").startswith("actions/setup-python@")
    ]
    assert setups and setups[0]["with"]["cache"] == "pip"


def test_sync_passes_secrets_and_inputs_through_env_only():
    text = SYNC.read_text()
    workflow = _load(SYNC)
    uses = 0
    for each in _steps(workflow):
        run = each.get("run", "")
        assert "${{" not in run, f"expression expanded inside a script: {run!r}"
        for name, value in each.get("env", {}).items():
            if "secrets." in value:
                assert value == f"${{{{ secrets.{name} }}}}", name  # each under its own name
                assert name in SECRETS | {"GITHUB_TOKEN"}, name
                uses += 1
    env = step(workflow, "Sync")["env"]
    for name in SECRETS | {"GITHUB_TOKEN"}:
        assert env[name] == f"${{{{ secrets.{name} }}}}"
    for name in ("SYNC_SHOW_USER_IDS", "SYNC_SUMMARY_DETAILS", "SYNC_NOTIFY"):
        assert env[name] == f"${{{{ vars.{name} }}}}"  # variables, not secrets: they aren't secret
    assert env["INPUT_USER"] == "${{ inputs.user }}"
    assert env["INPUT_DRY_RUN"] == "${{ inputs.dry_run }}"
    assert env["REPO_PRIVATE"] == "${{ github.event.repository.private }}"
    # secrets appear nowhere but in those env entries
    assert text.count("secrets.") == uses
    assert "secrets: inherit" not in text and "toJSON(secrets)" not in text


def test_sync_runs_the_job_with_the_dispatch_inputs():
    run = sync_script()
    assert '--user "$user"' in run
    assert "--dry-run" in run and "INPUT_DRY_RUN" in run
    assert "--time-budget" in run


def test_sync_step_execs_the_sync_so_it_hears_the_runners_signals():
    """On a cancel the runner signals only the step's bash; a child of it would hear nothing
    (tests/system/test_runner_cancel.py runs this script and cancels it the runner's way)."""
    lines = [line.strip() for line in sync_script().strip().splitlines()]
    assert lines[-1] == 'exec python -m sync "${args[@]}"'
    assert not any("python -m sync" in line for line in lines[:-1])


def test_reports_are_their_own_step_that_only_warns():
    workflow = _load(SYNC)
    names = [s.get("name") for s in _steps(workflow)]
    assert names.index("Sync") < names.index("Listening reports") < names.index(
        "Upload listening reports")  # fmt: skip
    report = step(workflow, "Listening reports")
    condition = report["if"].replace(" ", "")
    assert condition.startswith("${{!cancelled()&&vars.SYNC_REPORT=='true'"), condition
    assert "github.event.repository.private" in condition and "!inputs.dry_run" in condition
    assert "python -m sync report" in report["run"]
    assert "::warning::" in report["run"] and "exit 1" not in report["run"]
    assert report["continue-on-error"] is True and int(report["timeout-minutes"]) <= 10
    assert "SYNC_REPORT" not in step(workflow, "Sync")["env"]  # the sync's step: only the sync


def test_sign_in_reads_the_pasted_address_from_the_event_not_env():
    workflow = _load(SYNC)
    sign_in = workflow["on"]["workflow_dispatch"]["inputs"]["sign_in"]
    assert sign_in["type"] == "string" and sign_in["default"] == ""
    assert "127.0.0.1:8888/callback?code=" in sign_in["description"]
    names = [s.get("name") for s in _steps(workflow)]
    assert names.index("Sign in") < names.index("Sync")
    login = step(workflow, "Sign in")
    assert login["if"].replace(" ", "") == "${{inputs.sign_in!=''}}"
    # the runner prints a step's env in the log: the code must not pass through it
    assert not any("sign_in" in value for value in login["env"].values())
    assert login["run"].strip() == (
        "jq -r '.inputs.sign_in // empty' \"$GITHUB_EVENT_PATH\" "
        "| python -m sync login --redirect-url -"
    )
    for name in SECRETS:
        assert login["env"][name] == f"${{{{ secrets.{name} }}}}"
    for name in ("SYNC_SHOW_USER_IDS", "REPO_PRIVATE"):
        assert login["env"][name] == step(workflow, "Sync")["env"][name]
    # no other step sees the input at all
    for each in _steps(workflow):
        if each is not login:
            assert "sign_in" not in json.dumps(each), each.get("name")


def test_tests_workflow_lints_and_tests_against_postgres_service():
    workflow = _load(TESTS)
    job = next(iter(workflow["jobs"].values()))
    service = job["services"]["postgres"]
    assert service["image"].startswith("postgres:17")
    assert "pg_isready" in service["options"]
    assert "5432:5432" in service["ports"]
    assert job["env"]["TEST_DATABASE_URL"].startswith("postgresql://postgres@127.0.0.1:5432/")
    runs = "\n".join(s.get("run", "") for s in job["steps"])
    assert "ruff check ." in runs and "ruff format --check ." in runs
    assert "python -m pytest -q" in runs


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    command = "python -m pytest -q"
    assert f"\n{command}\n" in readme, "the README shows how to run the tests"
    assert command in ci
    assert "TEST_DATABASE_URL=" in ci and "127.0.0.1:5432" in ci
    assert "-eq 5" in ci, "pytest's exit code 5 (no tests collected) must fail CI"


def test_sync_header_names_a_readme_section_that_exists():
    header = [line for line in SYNC.read_text().splitlines() if line.startswith("#")]
    named = re.findall(r'README "([^"]+)"', " ".join(header))
    assert named, "the header should say where in the README the set-up is"
    headings = {line.lstrip("#").strip() for line in (ROOT / "README.md").read_text().splitlines()
                if line.startswith("#")}  # fmt: skip
    for section in named:
        assert section in headings, section


def _github_if(expression: str, context: dict) -> bool:
    """Evaluate a workflow `if:` made of ==, !=, ||, &&, !, names and 'strings' (enough for
    tests.yml), with unknown names as GitHub has them: empty."""
    text = expression.strip().removeprefix("${{").removesuffix("}}")
    tokens = re.findall(r"'[^']*'|[A-Za-z_][\w.-]*|==|!=|\|\||&&|!|\(|\)", text)
    assert "".join(tokens) == re.sub(r"\s+", "", text), f"unexpected syntax in {expression!r}"
    python = []
    for token in tokens:
        if token in ("==", "!=", "(", ")"):
            python.append(token)
        elif token in ("||", "&&", "!"):
            python.append({"||": " or ", "&&": " and ", "!": " not "}[token])
        elif token.startswith("'"):
            python.append(repr(token[1:-1]))
        else:
            python.append(repr(context.get(token, "")))
    return bool(eval("".join(python), {"__builtins__": {}}))  # only the tokens above


@pytest.mark.parametrize(
    ("event", "is_template", "opt_in", "runs"),
    [
        ("push", True, "", True),  # the project's own repository is the template: its CI runs
        ("push", False, "", False),  # a copy made from the template: no 4 minutes per push
        ("push", False, "true", True),  # ... unless its owner sets RUN_TESTS_ON_PUSH
        ("pull_request", False, "", True),  # asking: a pull request, or by hand
        ("workflow_dispatch", False, "", True),
    ],
)
def test_tests_run_on_push_only_in_the_template_or_when_asked(event, is_template, opt_in, runs):
    workflow = _load(TESTS)
    assert set(workflow["on"]) == {"push", "pull_request", "workflow_dispatch"}
    job = next(iter(workflow["jobs"].values()))
    context = {
        "github.event_name": event,
        "github.event.repository.is_template": is_template,
        "vars.RUN_TESTS_ON_PUSH": opt_in,
    }
    assert _github_if(job["if"], context) is runs
    doc = (ROOT / "docs" / "operations.md").read_text()
    assert "RUN_TESTS_ON_PUSH" in doc


# -- the weekly backup (backup.yml) --------------------------------------------------------------
def test_every_workflow_gets_the_hardening_checks_above():
    assert set(WORKFLOWS.glob("*.yml")) == {SYNC, TESTS, BACKUP}


@pytest.mark.parametrize(
    ("opt_in", "private", "is_template", "runs"),
    [
        ("weekly", True, False, True),  # opted in, in a private copy
        ("", True, False, False),  # off by default
        ("true", True, False, False),  # only the one value turns it on
        ("weekly", False, False, False),  # public: anyone signed in could download the artifact
        ("weekly", True, True, False),  # never in the template repository
    ],
)
def test_backup_runs_only_when_opted_in_in_a_private_repository(opt_in, private, is_template, runs):
    job = _load(BACKUP)["jobs"]["backup"]
    context = {
        "vars.SYNC_BACKUP": opt_in,
        "github.event.repository.private": private,
        "github.event.repository.is_template": is_template,
    }
    assert _github_if(job["if"], context) is runs


def test_backup_runs_weekly_at_an_odd_minute_in_its_own_group_and_by_hand():
    workflow = _load(BACKUP)
    (entry,) = workflow["on"]["schedule"]
    minute, hour, day, month, weekday = entry["cron"].split()
    assert minute.isdigit() and int(minute) % 2 == 1 and minute != "17"  # not the sync's minute
    assert hour.isdigit() and (day, month) == ("*", "*") and weekday.isdigit()  # once a week
    assert "workflow_dispatch" in workflow["on"]
    concurrency = workflow["concurrency"]
    assert concurrency == {"group": "${{ github.workflow }}", "cancel-in-progress": False}
    assert workflow["name"] != _load(SYNC)["name"]  # so not the sync's group


def test_backup_artifact_is_kept_90_days_and_the_summary_says_where():
    workflow = _load(BACKUP)
    export, upload, link = (step(workflow, n) for n in
                            ("Export every user", "Upload backup", "Link the backup"))  # fmt: skip
    assert upload["uses"].startswith("actions/upload-artifact@")
    assert upload["with"]["retention-days"] == 90  # the most GitHub allows by default
    assert upload["with"]["path"] == "backup/" and upload["with"]["if-no-files-found"] == "error"
    name = upload["with"]["name"]
    # said only after the upload, never by the export step (it may succeed in a cancelled run)
    assert f"artifact **{name}** of this run, under *Artifacts* below" in link["run"]
    assert "kept 90 days" in link["run"] and "artifact" not in export["run"]
    assert "python -m sync export --all --format spotify --out-dir backup" in export["run"]
    # nothing to upload (no user has plays yet): no upload, no link, a green run
    for each in (upload, link):
        assert _github_if(each["if"], {"steps.export.outputs.files": "0"}) is False
        assert _github_if(each["if"], {"steps.export.outputs.files": "2"}) is True
    assert link["env"] == {"ARTIFACT_URL": "${{ steps.upload.outputs.artifact-url }}"}
    assert "$ARTIFACT_URL" in link["run"] and "GITHUB_STEP_SUMMARY" in link["run"]


def test_a_failed_backup_fails_the_job_so_the_owner_gets_github_s_e_mail():
    export = step(_load(BACKUP), "Export every user")
    assert not export.get("continue-on-error", False)
    assert "exit 1" in export["run"] and "::error" in export["run"]
    assert 0 < int(export["timeout-minutes"]) <= 15


def test_backup_passes_only_the_database_url_and_variables_through_env():
    workflow = _load(BACKUP)
    for each in _steps(workflow):
        assert "${{" not in each.get("run", ""), each.get("name")
    assert step(workflow, "Export every user")["env"] == {
        "DATABASE_URL": "${{ secrets.DATABASE_URL }}",
        "SYNC_SHOW_USER_IDS": "${{ vars.SYNC_SHOW_USER_IDS }}",
    }
    assert BACKUP.read_text().count("secrets.") == 1  # no Spotify secret: it only reads


def test_backup_header_and_docs_name_what_exists():
    header = " ".join(line for line in BACKUP.read_text().splitlines() if line.startswith("#"))
    readme = (ROOT / "README.md").read_text()
    headings = {line.lstrip("#").strip() for line in readme.splitlines() if line.startswith("#")}
    (section,) = re.findall(r'README "([^"]+)"', header)
    assert section == "Backups" and section in headings
    assert (
        "SYNC_BACKUP" in readme and "SYNC_BACKUP" in (ROOT / "docs" / "operations.md").read_text()
    )
