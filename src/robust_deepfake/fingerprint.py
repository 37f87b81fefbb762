"""Code fingerprints that go into rules' `params:` so that editing the code a job runs makes that
job (and, through its outputs, everything after it) stale.

Snakemake's own code trigger sees only the rule body and its `script:` file, not the package the
script calls. A rule's fingerprint is taken from its script: the script's source and that of every
package module the script imports, directly or through other modules (parent packages included,
since importing `a.b` runs `a/__init__.py`), found by reading import statements. Nothing is
imported, so the Snakefile stays fast to parse and does not load torch, and a function can move
from one module to another without any rule having to be told.
"""

from __future__ import annotations

import ast
import hashlib
import sys
from functools import lru_cache
from pathlib import Path

PACKAGE = "robust_deepfake"
PACKAGE_DIR = Path(__file__).resolve().parent


@lru_cache(maxsize=None)
def _module_file(module: str) -> Path | None:
    parts = module.split(".")[1:]
    if not parts:
        return PACKAGE_DIR / "__init__.py"
    rel = Path(*parts)
    for candidate in (PACKAGE_DIR / rel.with_suffix(".py"), PACKAGE_DIR / rel / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _optional(tree: ast.AST) -> set[ast.AST]:
    """Import statements inside `try: ... except ImportError:` (used only when installed)."""
    nodes = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(
                isinstance(h.type, ast.Name) and h.type.id in ("ImportError", "ModuleNotFoundError")
                for h in node.handlers):
            nodes.update(n for stmt in node.body for n in ast.walk(stmt) if isinstance(n, (ast.Import, ast.ImportFrom)))
    return nodes


def _imported_names(source: str, base: list[str], required_only: bool = False) -> set[str]:
    """Absolute names of every module `source` imports, anywhere in it (lazy imports inside
    functions included; with `required_only`, not those in a `try` that catches ImportError);
    relative imports are resolved against the package path `base`. For `from pkg import name`
    both `pkg` and `pkg.name` are given: `name` may be a module."""
    found = set()
    tree = ast.parse(source)
    skip = _optional(tree) if required_only else set()
    for node in ast.walk(tree):
        if node in skip:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            parent = base[: len(base) - (node.level - 1)] if node.level else []
            target = ".".join(parent + ([node.module] if node.module else []))
            found.add(target)
            found.update(f"{target}.{a.name}" for a in node.names)
    return found


def _with_parents(module: str) -> set[str]:
    parts = module.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts) + 1)}


@lru_cache(maxsize=None)
def _module_imports(module: str, required_only: bool = False) -> frozenset[str]:
    """Every name a package module imports. Read and parsed once per process: every rule's
    closure shares manifest.py & co."""
    path = _module_file(module)
    base = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    return frozenset(_imported_names(path.read_text(), base, required_only))


def _closure(names: set[str], required_only: bool = False) -> tuple[set[str], set[str]]:
    """(package modules reached from the imported `names`, every other name imported on the way)."""
    seen: set[str] = set()
    others: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name.split(".")[0] != PACKAGE:
            others.add(name)
            continue
        for module in _with_parents(name):
            if module not in seen and _module_file(module) is not None:
                seen.add(module)
                todo.extend(_module_imports(module, required_only))
    return seen, others


@lru_cache(maxsize=None)
def script_closure(script: str | Path) -> tuple[str, ...]:
    """The package modules a workflow script runs when imported, sorted."""
    return tuple(sorted(_closure(_imported_names(Path(script).read_text(), []))[0]))


def script_fingerprint(script: str | Path) -> str:
    """sha256 (12 hex digits) over a workflow script's source and the sources of its closure."""
    digest = hashlib.sha256(Path(script).read_bytes())
    for name in script_closure(script):
        digest.update(name.encode())
        digest.update(_module_file(name).read_bytes())
    return digest.hexdigest()[:12]


def third_party_imports(script: str | Path) -> set[str]:
    """Top-level names of the modules outside the package and the standard library that a script
    imports, directly or through its package closure, not counting those it uses only when
    installed: what the environment of its rule must hold."""
    others = _closure(_imported_names(Path(script).read_text(), [], required_only=True), required_only=True)[1]
    tops = {name.split(".")[0] for name in others if name}
    return {top for top in tops if top not in sys.stdlib_module_names and top not in ("__future__", "snakemake")}
