"""The package reads as its architecture: stages apart from the algorithm families and the
plumbing, each stage where its rule's name says, no stage importing another, no module too long,
and the registry readable without torch."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "src" / "robust_deepfake"
FAMILIES = {"attacks", "defences", "generators", "detectors", "datasets", "faces"}


def imports(path: Path) -> set[str]:
    """Every robust_deepfake module a file imports, anywhere in it."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("robust_deepfake"):
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("robust_deepfake"))
    return found


def layer(module: str) -> str:
    """stages, a family, or plumbing (the package's top-level modules)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 2 and parts[1] in FAMILIES | {"stages"} else "plumbing"


def test_a_stage_imports_plumbing_and_algorithm_families_never_another_stage():
    for path in sorted((PACKAGE / "stages").glob("*.py")):
        own = f"robust_deepfake.stages.{path.stem}"
        other_stages = {m for m in imports(path) if m.startswith("robust_deepfake.stages.") and not m.startswith(own)}
        assert not other_stages, f"{path.name} imports other stages: {sorted(other_stages)}"


def test_families_and_plumbing_never_import_a_stage():
    for path in sorted(PACKAGE.rglob("*.py")):
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if layer(module) == "stages":
            continue
        stages = {m for m in imports(path) if m.startswith("robust_deepfake.stages")}
        assert not stages, f"{module} imports {sorted(stages)}"


def test_plumbing_imports_no_family():
    for path in sorted(PACKAGE.glob("*.py")):
        if path.name in ("cli.py", "predict.py"):
            continue
        families = {m for m in imports(path) if layer(m) in FAMILIES}
        assert not families, f"{path.name} (plumbing) imports {sorted(families)}"


# The algorithm families in layers: a family imports only those of lower layers, so that none of
# them needs another's internals to be read (an attack sees a purifier as a function of the images;
# the defence that knows each purifier builds that function: defences.anticipated).
FAMILY_LAYERS = {"faces": 0, "datasets": 0, "generators": 0, "attacks": 1, "defences": 2, "detectors": 2}


def test_a_family_imports_only_families_of_lower_layers():
    assert set(FAMILY_LAYERS) == FAMILIES
    for path in sorted(PACKAGE.rglob("*.py")):
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        family = layer(module)
        if family not in FAMILIES:
            continue
        upward = {m for m in imports(path)
                  if layer(m) in FAMILIES and layer(m) != family and FAMILY_LAYERS[layer(m)] >= FAMILY_LAYERS[family]}
        assert not upward, f"{module} imports {sorted(upward)}, of its own layer or above"


def test_each_rule_file_has_its_stage_module_and_each_script_its_rule():
    rules = {p.stem for p in (REPO / "rules").glob("*.smk")} - {"common", "demo"}  # demo: datasets/demo.py
    assert rules == {p.stem for p in (PACKAGE / "stages").glob("*.py")} - {"__init__"}
    scripts = {p.stem for p in (REPO / "workflow_scripts").glob("*.py")}
    named = set(re.findall(r'"\.\./workflow_scripts/(\w+)\.py"', "".join(p.read_text() for p in (REPO / "rules").glob("*.smk"))))
    assert scripts == named, "a script no rule runs, or a rule without its script"


def test_no_module_over_400_lines():
    long = {str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py") if (n := len(p.read_text().splitlines())) > 400}
    assert not long, long


def test_the_registry_and_the_config_check_import_without_torch():
    code = ("import sys; import robust_deepfake.registry, robust_deepfake.config, robust_deepfake.fingerprint; "
            "print(sorted(m for m in ('torch', 'timm', 'diffusers', 'cv2') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_readme_stage_table_lists_every_rule():
    rules = set(re.findall(r"^(?:rule|checkpoint) (\w+):", "".join(p.read_text() for p in (REPO / "rules").glob("*.smk")),
                           re.M))
    table = (REPO / "README.md").read_text().split("## The stages", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"^\| `(\w+)`", table, re.M))
    assert rules - {"all"} <= listed, sorted(rules - listed - {"all"})


def test_every_name_in_the_registry_has_its_implementation_and_no_more():
    from robust_deepfake import registry
    from robust_deepfake.attacks.linf import ATTACKS
    from robust_deepfake.defences.purifiers import PURIFIERS
    from robust_deepfake.detectors.network import FAMILIES as DETECTOR_BUILDERS
    from robust_deepfake.generators.loading import FAMILIES as GENERATOR_FAMILIES

    # a poisoning attack runs an attacks.linf attack of its own name, or the one it names (adaptive ones)
    assert {registry.linf_attack(name) for name in registry.POISON_ATTACKS} == set(ATTACKS)
    assert set(ATTACKS) >= set(registry.EVASION_ATTACKS)
    assert set(registry.ADAPTIVE_ATTACKS) == {"adaptive_pgd"}
    assert set(PURIFIERS) == set(registry.PURIFIERS)
    assert set(GENERATOR_FAMILIES) == set(registry.TRAINED_GENERATORS)
    assert set(DETECTOR_BUILDERS) == set(registry.DETECTOR_FAMILIES)
    from robust_deepfake.attacks.distortions import KINDS as DISTORTIONS

    assert registry.DISTORTION_KINDS == DISTORTIONS
