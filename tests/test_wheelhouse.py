"""bench/wheelhouse.py: the wheels an offline GPU node needs are exactly what it lacks of the
package's run-time requirements (read from this environment's installed metadata)."""

from __future__ import annotations

import importlib.metadata
import importlib.util
from pathlib import Path

from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("wheelhouse", REPO / "bench" / "wheelhouse.py")
wheelhouse = importlib.util.module_from_spec(spec)
spec.loader.exec_module(wheelhouse)

INSTALLED = {canonicalize_name(d.metadata["Name"]) for d in importlib.metadata.distributions()}


def test_a_node_that_lacks_two_packages_gets_those_two_at_the_versions_tested_here():
    have = INSTALLED - {"snakemake", "av"}
    assert wheelhouse.missing("robust-deepfake", have, "3.12") == {
        "snakemake": importlib.metadata.version("snakemake"), "av": importlib.metadata.version("av")}


def test_an_empty_node_gets_the_whole_run_time_closure_but_no_test_extras():
    needed = wheelhouse.missing("robust-deepfake", set(), "3.12")
    assert {"torch", "snakemake", "facenet-pytorch", "diffusers", "av", "pulp"} <= set(needed)
    assert "filelock" in needed  # torch's own requirement: followed through
    assert "pytest" not in needed and "robust-deepfake" not in needed


def test_the_node_list_is_read_from_pip_freeze_or_bare_names(tmp_path):
    freeze = tmp_path / "freeze.txt"
    freeze.write_text("Pillow==12.0.0\ntyping_extensions==4.15\ntorch @ file:///opt/torch.whl\n")
    assert wheelhouse.read_have(freeze) == {"pillow", "typing-extensions", "torch"}
    names = tmp_path / "names.txt"
    names.write_text("absl-py, Jinja2,\nscikit_learn")
    assert wheelhouse.read_have(names) == {"absl-py", "jinja2", "scikit-learn"}
