"""Code fingerprints that go into rules' `params:` so that editing a stage's library code makes
that stage (and, through its outputs, everything after it) stale.

Snakemake's own code trigger sees only the rule body and its `script:` file, not the package the
script calls. We hash the source of the stage module and of every package module it imports,
found by reading import statements (no import happens: the Snakefile stays fast to parse and does
not load torch).
"""

from __future__ import annotations

import ast
import json
import hashlib
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


@lru_cache(maxsize=None)
def _direct_imports(module: str) -> frozenset[str]:
    """Read and parse each module once per process: every rule's closure shares manifest.py & co."""
    return frozenset(_package_imports(module, _module_file(module).read_text()))


def _package_imports(module: str, source: str) -> set[str]:
    found = set()
    is_package = _module_file(module) is not None and _module_file(module).name == "__init__.py"
    base = module.split(".") if is_package else module.split(".")[:-1]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == PACKAGE)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parent = base[: len(base) - (node.level - 1)]
                target = ".".join(parent + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != PACKAGE:
                continue
            found.add(target)
            # `from pkg import module` names a module, not an attribute, when the file exists
            found.update(f"{target}.{a.name}" for a in node.names if _module_file(f"{target}.{a.name}"))
    return {m for m in found if _module_file(m)}


@lru_cache(maxsize=None)
def module_closure(module: str) -> tuple[str, ...]:
    """The package modules `module` depends on, itself included, sorted."""
    seen: set[str] = set()
    todo = [module if module.startswith(PACKAGE) else f"{PACKAGE}.{module}"]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        path = _module_file(name)
        if path is None:
            raise ModuleNotFoundError(f"no module {name} in {PACKAGE_DIR}")
        seen.add(name)
        todo.extend(_direct_imports(name) - seen)
    return tuple(sorted(seen))


def code_fingerprint(module: str) -> str:
    """sha256 (12 hex digits) over the source of `module` and its package dependencies."""
    digest = hashlib.sha256()
    for name in module_closure(module):
        digest.update(name.encode())
        digest.update(_module_file(name).read_bytes())
    return digest.hexdigest()[:12]


def settings_key(settings, seed: int) -> str:
    """A short name for a training run's settings: resumable training state is kept under it, so a
    killed job resumes and a changed setting starts afresh instead of resuming a different run."""
    return hashlib.sha256(json.dumps([settings, seed], sort_keys=True, default=str).encode()).hexdigest()[:12]
