from robust_deepfake import fingerprint
from robust_deepfake.fingerprint import code_fingerprint, module_closure


def test_closure_follows_package_imports():
    closure = module_closure("split")
    assert "robust_deepfake.split" in closure and "robust_deepfake.manifest" in closure
    assert "robust_deepfake.atomic" in closure  # manifest imports atomic: reached transitively
    assert "robust_deepfake.config" not in closure


def test_fingerprint_changes_with_a_dependency_source(tmp_path, monkeypatch):
    pkg = tmp_path / "robust_deepfake"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "helper.py").write_text("X = 1\n")
    (pkg / "stage.py").write_text("from robust_deepfake.helper import X\n")
    (pkg / "other.py").write_text("Y = 1\n")
    monkeypatch.setattr(fingerprint, "PACKAGE_DIR", pkg)
    fingerprint.module_closure.cache_clear()
    before = code_fingerprint("stage")
    (pkg / "other.py").write_text("Y = 2\n")
    assert code_fingerprint("stage") == before  # unrelated module: no rerun
    (pkg / "helper.py").write_text("X = 2\n")
    assert code_fingerprint("stage") != before  # a dependency changed: stage is stale
    fingerprint.module_closure.cache_clear()
