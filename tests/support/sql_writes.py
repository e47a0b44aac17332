"""Which statements in Python source write: the checker behind "writes only in store/".

It finds every execute/executemany/copy call, reads the call's SQL text out of the source
(string literals, f-strings, `+`, `%`, `.format()`, psycopg's sql.SQL, and names bound to
those in the function, the module or a sync module it imports from) and tells a
read-only statement from one that writes, takes a lock, or calls a SQL function that
writes (found in sql/: a function whose body writes, or calls one that does).
tests/test_layout.py runs it over sync/; docs/design.md states the rule.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CALLS = {"execute", "executemany", "copy"}
READ_ONLY_START = re.compile(r"^[\s(]*(select|with|show|values|table|explain)\b")
READ_ONLY_COPY = re.compile(r"^\s*copy\b.*\bto\s+stdout\b", re.S)
WRITES = re.compile(
    r"\b(insert\s+into|delete\s+from|merge\s+into|truncate"
    r"|update\s+(?:only\s+)?[\w.]+(?:\s+(?:as\s+)?\w+)?\s+set"
    r"|copy\s+[\w.]+(?:\s*\([^)]*\))?\s+from"
    r"|for\s+(?:no\s+key\s+)?update|for\s+(?:key\s+)?share|pg_advisory\w*)\b"
)
_FUNCTION = re.compile(r"create\s+(?:or\s+replace\s+)?function\s+(\w+)\s*\(")


def _plain(sql: str) -> str:
    """Lower case, without -- comments."""
    return re.sub(r"--[^\n]*", " ", sql).lower()


def writing_functions(sql_dir: Path = ROOT / "sql") -> set[str]:
    """SQL functions that write: their body writes, or calls one that does (repeatable
    definitions win over the numbered migrations' older ones)."""
    bodies: dict[str, str] = {}
    for path in sorted(sql_dir.glob("0*.sql")) + sorted((sql_dir / "repeatable").glob("*.sql")):
        text = _plain(path.read_text())
        starts = list(_FUNCTION.finditer(text))
        ends = [m.start() for m in starts[1:]] + [len(text)] if starts else []
        for m, end in zip(starts, ends, strict=True):
            bodies[m.group(1)] = text[m.end() : end]
    writers = {name for name, body in bodies.items() if WRITES.search(body)}
    while True:
        more = {
            name
            for name, body in bodies.items()
            if name not in writers and any(re.search(rf"\b{w}\s*\(", body) for w in writers)
        }
        if not more:
            return writers
        writers |= more


@dataclass(frozen=True)
class Call:
    path: str  # relative to the root
    line: int
    sql: str | None  # None: not readable from the source
    problem: str | None  # None: read-only


class _Resolver:
    """Reads a statement's text out of one module's source."""

    def __init__(self, tree: ast.Module, modules: dict[str, ast.Module]):
        self.modules = modules
        self.constants: dict[str, ast.expr] = {}
        self.imported: dict[str, tuple[str, str | None]] = {}  # local -> (module, name)
        for node in tree.body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                if isinstance(node.targets[0], ast.Name):
                    self.constants[node.targets[0].id] = node.value
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                if node.value is not None:
                    self.constants[node.target.id] = node.value
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sync"):
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    target = (sub, None) if sub in modules else (node.module, alias.name)
                    self.imported[alias.asname or alias.name] = target

    def text(self, node: ast.AST, function: ast.AST | None, depth: int = 0) -> str | None:
        if depth > 20:
            return None
        again = lambda n: self.text(n, function, depth + 1)  # noqa: E731
        if isinstance(node, ast.Constant):
            return node.value if isinstance(node.value, str) else ""
        if isinstance(node, ast.JoinedStr):
            parts = [
                again(v.value if isinstance(v, ast.FormattedValue) else v) for v in node.values
            ]
            return None if None in parts else "".join(parts)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            left, right = again(node.left), again(node.right)
            return None if left is None or right is None else left + right
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod):
            return again(node.left)  # "..." % values: values are data
        if isinstance(node, ast.IfExp):  # either branch may run: both are checked
            body, orelse = again(node.body), again(node.orelse)
            return None if body is None or orelse is None else f"{body} {orelse}"
        if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            parts = [again(e) for e in node.elts]
            return None if None in parts else " ; ".join(parts)
        if isinstance(node, ast.Dict):
            parts = [again(v) for v in node.values]
            return None if None in parts else " ; ".join(parts)
        if isinstance(node, ast.Subscript):
            return again(node.value)
        if isinstance(node, ast.Call):
            return self._call(node, again)
        if isinstance(node, ast.Name):
            return self._name(node.id, function, depth)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            module, name = self.imported.get(node.value.id, (None, None))
            if module in self.modules and name is None:
                return _Resolver(self.modules[module], self.modules).text(
                    ast.Name(node.attr), None, depth + 1
                )
        return None

    def _call(self, node: ast.Call, again) -> str | None:
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if name in ("Identifier", "Literal", "Placeholder", "Jsonb", "str", "int", "len"):
            return ""  # an identifier or a value, never a statement's words
        parts = []
        if name == "SQL" and node.args:
            parts.append(again(node.args[0]))
        elif name in ("format", "join") and isinstance(func, ast.Attribute):
            parts.append(again(func.value))
            parts += [again(a) for a in node.args] + [again(k.value) for k in node.keywords]
        else:
            return None
        return None if None in parts else " ".join(parts)

    def _name(self, name: str, function: ast.AST | None, depth: int) -> str | None:
        if function is not None:  # every value the function binds to the name
            bound = [
                n.value
                for n in ast.walk(function)
                if isinstance(n, ast.Assign)
                and any(isinstance(t, ast.Name) and t.id == name for t in n.targets)
            ]
            if bound:
                parts = [self.text(v, function, depth + 1) for v in bound]
                return None if None in parts else " ; ".join(parts)
            args = function.args if isinstance(function, ast.FunctionDef) else None
            if args and name in {a.arg for a in args.args + args.kwonlyargs}:
                return None  # a parameter: the caller's text, not readable here
        if name in self.constants:
            return self.text(self.constants[name], None, depth + 1)
        module, imported = self.imported.get(name, (None, None))
        if module in self.modules and imported is not None:
            return _Resolver(self.modules[module], self.modules).text(
                ast.Name(imported), None, depth + 1
            )
        return None


def problem(sql: str | None, writers: set[str]) -> str | None:
    """Why this statement is not read-only; None when it is."""
    if sql is None:
        return "its SQL is not readable from the source (use a literal or a module constant)"
    text = _plain(sql)
    found = WRITES.search(text)
    if found:
        return f"writes or locks ({found.group(0)!r})"
    called = sorted(w for w in writers if re.search(rf"\b{w}\s*\(", text))
    if called:
        return f"calls {', '.join(called)}, which writes"
    if not (READ_ONLY_START.match(text) or READ_ONLY_COPY.match(text)):
        return f"is not a select ({text.strip()[:30]!r})"
    return None


def _modules(root: Path) -> dict[str, ast.Module]:
    out = {}
    for path in (root / "sync").rglob("*.py"):
        dotted = ".".join(path.relative_to(root).with_suffix("").parts).removesuffix(".__init__")
        out[dotted] = ast.parse(path.read_text())
    return out


def calls(
    source: str,
    path: str = "<source>",
    writers: set[str] | None = None,
    modules: dict[str, ast.Module] | None = None,
) -> list[Call]:
    """Every execute/executemany/copy call in one module's source, with its verdict."""
    writers = writing_functions() if writers is None else writers
    tree = ast.parse(source)
    resolver = _Resolver(tree, modules or {})
    found = []

    def visit(node: ast.AST, function: ast.AST | None) -> None:
        for child in ast.iter_child_nodes(node):
            inner = child if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else None
            if (
                isinstance(child, ast.Call)
                and isinstance(child.func, ast.Attribute)
                and child.func.attr in CALLS
            ):
                query = child.args[0] if child.args else None
                query = query or next((k.value for k in child.keywords if k.arg == "query"), None)
                if query is not None:
                    sql = resolver.text(query, function)
                    found.append(Call(path, child.lineno, sql, problem(sql, writers)))
            visit(child, inner or function)

    visit(tree, None)
    return found


def scan(root: Path = ROOT) -> list[Call]:
    """Every execute/executemany/copy call under sync/."""
    writers = writing_functions(root / "sql")
    modules = _modules(root)
    out = []
    for path in sorted((root / "sync").rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        out += calls(path.read_text(), rel, writers, modules)
    return out
