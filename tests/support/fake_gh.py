"""A stand-in for the GitHub CLI, installed as `gh` on PATH by tests/setup/test_setup.py.

Every call appends {"argv": [...], "stdin": ..., "env": {...}} to calls.jsonl next to its state file
(stdin is read only by `secret set`, which is where gh reads a secret's value). The state
(secrets set, workflow state, runs) lives in state.json, so a second `setup` sees what
the first one did. Options in state.json: "auth" (false: not signed in), "polls_to_finish"
(how many `run list` calls a new run stays queued / in progress), "conclusion".
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
STATE = HERE / "state.json"
CALLS = HERE / "calls.jsonl"
REPO_URL = "https://github.com/someone/spotify-history"


def install(bin_dir: Path, **options: object) -> Path:
    """Write an executable `gh` into bin_dir; return the directory holding its records."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    script = bin_dir / "gh"
    script.write_text(f"#!{sys.executable}\n" + Path(__file__).read_text())
    script.chmod(0o755)
    state = {"auth": True, "polls_to_finish": 2, "conclusion": "success", "secrets": {},
             "workflow": "disabled_manually", "runs": [], **options}  # fmt: skip
    (bin_dir / "state.json").write_text(json.dumps(state))
    return bin_dir


def calls(bin_dir: Path) -> list[dict]:
    path = bin_dir / "calls.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _answer(argv: list[str], state: dict) -> tuple[int, object]:
    words = [a for a in argv if not a.startswith("-")]
    verb = tuple(words[:2])
    if verb == ("auth", "status"):
        return (0, "Logged in to github.com") if state["auth"] else (1, "not logged in")
    if verb == ("secret", "list"):
        return 0, [{"name": name} for name in state["secrets"]]
    if verb == ("secret", "set"):
        state["secrets"][words[2]] = "set"
        return 0, ""
    if verb == ("workflow", "list"):
        return 0, [{"path": ".github/workflows/sync.yml", "state": state["workflow"]}]
    if verb == ("workflow", "enable"):
        state["workflow"] = "active"
        return 0, ""
    if verb == ("workflow", "run"):
        number = 1000 + len(state["runs"])
        state["runs"].append({"databaseId": number, "status": "queued", "conclusion": "",
                              "url": f"{REPO_URL}/actions/runs/{number}", "polls": 0})  # fmt: skip
        return 0, ""
    if verb == ("run", "list"):
        if not state["runs"]:
            return 0, []
        run = state["runs"][-1]
        run["polls"] += 1
        if run["polls"] > state["polls_to_finish"]:
            run.update(status="completed", conclusion=state["conclusion"])
        elif run["polls"] > 1:
            run["status"] = "in_progress"
        return 0, [{k: v for k, v in run.items() if k != "polls"}]
    return 2, f"fake gh: unknown command {' '.join(argv)}"


def main() -> int:
    argv = sys.argv[1:]
    stdin = sys.stdin.read() if argv[:2] == ["secret", "set"] else None
    with CALLS.open("a") as f:
        f.write(json.dumps({"argv": argv, "stdin": stdin, "env": dict(os.environ)}) + "\n")
    state = json.loads(STATE.read_text())
    code, answer = _answer(argv, state)
    STATE.write_text(json.dumps(state))
    text = answer if isinstance(answer, str) else json.dumps(answer)
    print(text, file=sys.stdout if code == 0 else sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
