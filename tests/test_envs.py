"""The conda environments of the rules (envs/*.yaml, for cluster users): each rule's environment
holds every package its script imports, directly or through the package (read statically)."""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

import yaml

from robust_deepfake.fingerprint import third_party_imports

REPO = Path(__file__).resolve().parents[1]

# distribution name (PyPI, as pip installs it here) -> its name in the envs' conda channels
CONDA_NAMES = {"torch": "pytorch", "opencv-python-headless": "py-opencv", "opencv-python": "py-opencv"}


def _name(requirement: str) -> str:
    return re.split(r"[\s<>=!~\[;]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def env_packages(path: Path) -> set[str]:
    """Package names an environment file installs, conda and pip sections alike."""
    names = set()
    for dep in yaml.safe_load(path.read_text())["dependencies"]:
        entries = dep["pip"] if isinstance(dep, dict) else [dep]
        names.update(_name(entry) for entry in entries)
    return names


def needed_packages(script: Path) -> dict[str, str]:
    """import name -> the package (conda name) an environment must hold for it."""
    installed = importlib.metadata.packages_distributions()
    needed = {}
    for module in sorted(third_party_imports(script)):
        assert module in installed, f"{script.name} imports {module}, which no installed distribution provides"
        dist = _name(installed[module][0])
        needed[module] = CONDA_NAMES.get(dist, dist)
    return needed


def rule_environments() -> list[tuple[str, Path, Path]]:
    """(rule, its conda env file, its script) for every rule with both."""
    found = []
    for smk in sorted((REPO / "rules").glob("*.smk")):
        for body in re.split(r"(?m)^(?=(?:rule|checkpoint) )", smk.read_text())[1:]:
            env = re.search(r'conda:\s*\n\s*"\.\./(envs/[\w.]+)"', body)
            script = re.search(r'script:\s*\n\s*"\.\./(workflow_scripts/\w+\.py)"', body)
            if env and script:
                found.append((body.split()[1].rstrip(":"), REPO / env.group(1), REPO / script.group(1)))
    return found


def test_every_rules_environment_holds_what_its_script_imports():
    rules = rule_environments()
    assert len(rules) >= 20
    problems = []
    for rule, env, script in rules:
        missing = {m: p for m, p in needed_packages(script).items() if p not in env_packages(env)}
        if missing:
            problems.append(f"rule {rule} ({script.name}) imports {sorted(missing)}, but {env.name} lacks "
                            f"{sorted(set(missing.values()))}")
    assert not problems, "\n".join(problems)


def test_the_torch_environment_holds_every_runtime_dependency_of_the_package():
    """Some imports happen inside the libraries (diffusers loads transformers for Stable Diffusion):
    the neural rules' environment holds all of the package's own dependencies, as pip users have."""
    pyproject = (REPO / "pyproject.toml").read_text()
    dependencies = re.search(r"(?ms)^dependencies = \[(.*?)\]", pyproject).group(1)
    wanted = {CONDA_NAMES.get(_name(d), _name(d)) for d in re.findall(r'"([^"]+)"', dependencies)}
    wanted -= {"snakemake", "snakemake-executor-plugin-slurm"}  # the workflow's host, not a job's
    assert wanted - env_packages(REPO / "envs" / "torch.yaml") == set()
