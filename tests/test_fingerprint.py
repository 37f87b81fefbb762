import re
from pathlib import Path

from robust_deepfake import fingerprint
from robust_deepfake.fingerprint import script_closure, script_fingerprint, third_party_imports

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "workflow_scripts"


def test_closure_follows_the_scripts_imports_through_the_package():
    closure = script_closure(SCRIPTS / "split.py")
    assert "robust_deepfake.stages.split" in closure and "robust_deepfake.manifest" in closure
    assert "robust_deepfake.atomic" in closure  # manifest imports atomic: reached transitively
    assert "robust_deepfake" in closure  # importing robust_deepfake.stages.split runs the package's __init__
    assert "robust_deepfake.config" not in closure


def test_a_module_imported_by_the_script_itself_is_in_its_closure():
    """train_ddpm.py picks split A's training faces with calibration.defence_faces: editing that
    function must rerun train_ddpm, although the DDPM's own modules never import it."""
    assert "robust_deepfake.defences.calibration" in script_closure(SCRIPTS / "train_ddpm.py")
    assert "robust_deepfake.defences.calibration" not in script_closure(SCRIPTS / "train_generator.py")
    # purify.py imports the DDPM only for the diffusion purifiers, inside an `if`: still its code
    assert "robust_deepfake.defences.ddpm" in script_closure(SCRIPTS / "purify.py")


def test_every_rule_fingerprints_its_own_script():
    """A rule's `code` param names the very script it runs, so a rule cannot be keyed on code it
    does not run (or miss code it does)."""
    checked = 0
    for smk in sorted((REPO / "rules").glob("*.smk")):
        for body in re.split(r"(?m)^(?=(?:rule|checkpoint) )", smk.read_text())[1:]:
            script = re.search(r'script:\s*\n\s*"\.\./workflow_scripts/(\w+\.py)"', body)
            shared = "**fake_generation_params()" in body or "**POISON_PARAMS" in body  # those params: below
            if script and not shared:
                code = re.search(r"code=(.+),\n", body)
                assert code, f"{smk.name}: rule {body.split(':')[0]} has no code param"
                assert code.group(1) == f'script_code("{script.group(1)}")', (smk.name, body.split(":")[0])
                checked += 1
    fake_params = (REPO / "rules" / "common.smk").read_text()
    assert 'code=script_code("generate_fakes.py")' in fake_params  # both fake rules take their params here
    poison_params = (REPO / "rules" / "poison.smk").read_text().split("POISON_PARAMS = dict(", 1)[1].split("\n)", 1)[0]
    assert 'code=script_code("poison.py")' in poison_params  # both poisoning rules take theirs here
    assert checked >= 18


def test_fingerprint_changes_with_a_dependency_source(tmp_path, monkeypatch):
    pkg = tmp_path / "robust_deepfake"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "helper.py").write_text("X = 1\n")
    (pkg / "stage.py").write_text("from robust_deepfake.helper import X\n")
    (pkg / "other.py").write_text("Y = 1\n")
    script = tmp_path / "run_stage.py"
    script.write_text("from robust_deepfake.stage import X\nfrom robust_deepfake import other as _  # noqa\n")
    lazy = tmp_path / "run_lazy.py"
    lazy.write_text("def main():\n    from robust_deepfake.stage import X\n")
    monkeypatch.setattr(fingerprint, "PACKAGE_DIR", pkg)
    fingerprint._module_file.cache_clear()
    fingerprint._module_imports.cache_clear()
    try:
        before, before_lazy = script_fingerprint(script), script_fingerprint(lazy)
        assert script_closure(script) == ("robust_deepfake", "robust_deepfake.helper", "robust_deepfake.other",
                                          "robust_deepfake.stage")
        (pkg / "helper.py").write_text("X = 2\n")
        script_closure.cache_clear()
        assert script_fingerprint(script) != before  # a dependency changed: the rule is stale
        assert script_fingerprint(lazy) != before_lazy  # also through an import inside a function
        after = script_fingerprint(lazy)
        (pkg / "other.py").write_text("Y = 2\n")
        assert script_fingerprint(lazy) == after  # a module the script never imports: no rerun
    finally:
        fingerprint._module_file.cache_clear()
        fingerprint._module_imports.cache_clear()
        script_closure.cache_clear()


def test_third_party_imports_are_those_of_the_script_and_its_closure():
    names = third_party_imports(SCRIPTS / "summarise_experiments.py")
    assert {"pandas", "matplotlib"} <= names  # matplotlib through robust_deepfake.stages.report
    assert not names & {"os", "json", "robust_deepfake", "__future__"}
