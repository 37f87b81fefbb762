"""Wheels of what the pipeline needs beyond a GPU node's own Python, for a node with no package index.

A cluster's GPU image (a site PyTorch module or container) brings PyTorch and the scientific stack
but seldom Snakemake, PyAV, facenet-pytorch or diffusers, and its compute nodes often reach no
package index. This writes, as wheels for the node's Python, every runtime requirement of
robust-deepfake (followed through their own requirements) that the node lacks, at the versions this
checkout's environment holds (those the tests ran with):

    .venv/bin/python bench/wheelhouse.py --have node_packages.txt --python-version 3.12 --out .whl
    # on the node, in the checkout: install them beside the image's packages, then the GPU check
    WHEELS=.whl bench/gpu_check.sh

`--have` lists the node's installed distributions: its `python3 -m pip list --format=freeze`, or
bare names separated by commas or lines; a name there is taken as present whatever its version.
`--leave-out` drops packages the run does without (pulp: Snakemake's ILP scheduler, 16 MB, which
falls back to its greedy scheduler without it). Run it with the checkout's .venv: the versions
come from its installed metadata.
"""

from __future__ import annotations

import argparse
import importlib.metadata as metadata
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_24_x86_64",
             "manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux1_x86_64")


def read_have(path: Path) -> set[str]:
    """Names from a `pip list --format=freeze` file or a comma/line separated list of names."""
    names = re.split(r"[,\n]", path.read_text())
    return {canonicalize_name(re.split(r"[=<>@ ]", n.strip(), maxsplit=1)[0]) for n in names if n.strip()}


def missing(root: str, have: set[str], python_version: str) -> dict[str, str]:
    """name -> version of every distribution `root` needs at run time (no extras; markers read for
    the node's Python, the rest of their environment this interpreter's: Linux x86-64 CPython, as
    the wheels fetched) that is not in `have`, as installed here. A requirement present on the node
    is not followed further: its own requirements came with it."""
    node_python = {"python_version": python_version, "python_full_version": f"{python_version}.0"}
    found: dict[str, str] = {}
    todo = [root]
    while todo:
        dist = metadata.distribution(todo.pop())
        for line in dist.requires or []:
            req = Requirement(line)
            if req.marker is not None and not req.marker.evaluate(node_python):
                continue
            name = canonicalize_name(req.name)
            if name in have or name in found:
                continue
            found[name] = metadata.version(req.name)
            todo.append(req.name)
    return found


def fetch(name: str, version: str, python_version: str, out: Path) -> None:
    """A wheel for the node: the index's binary for its Python and platform, else (a package the
    index has only as source) one built here, which must be pure Python to run there."""
    tag = python_version.replace(".", "")
    platforms = [arg for platform in (*PLATFORMS, "any") for arg in ("--platform", platform)]
    download = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                "--python-version", python_version, "--implementation", "cp", "--abi", f"cp{tag}",
                "--abi", "abi3", "--abi", "none", *platforms, "-d", str(out), f"{name}=={version}"]
    if subprocess.run(download, capture_output=True).returncode == 0:
        return
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", tmp,
                        f"{name}=={version}"], check=True, capture_output=True)
        (wheel,) = Path(tmp).glob("*.whl")
        if not wheel.name.endswith("-none-any.whl"):
            raise SystemExit(f"{name} {version}: no wheel for Python {python_version} on the index, and the "
                             f"one built here ({wheel.name}) is not pure Python")
        wheel.rename(out / wheel.name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--have", type=Path, required=True, help="the node's installed distributions")
    parser.add_argument("--python-version", required=True, help="the node's Python, e.g. 3.12")
    parser.add_argument("--out", type=Path, default=Path(".whl"))
    parser.add_argument("--leave-out", nargs="*", default=["pulp"])
    parser.add_argument("--root", default="robust-deepfake", help="the distribution whose needs are collected")
    args = parser.parse_args()

    wanted = missing(args.root, read_have(args.have), args.python_version)
    for name in map(canonicalize_name, args.leave_out):
        wanted.pop(name, None)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, version in sorted(wanted.items()):
        fetch(name, version, args.python_version, args.out)
    wheels = sorted(args.out.glob("*.whl"))
    size = sum(w.stat().st_size for w in wheels) / 2**20
    print(f"{len(wanted)} distributions the node lacks ({', '.join(sorted(wanted))}); "
          f"{len(wheels)} wheels, {size:.1f} MiB, in {args.out}")


if __name__ == "__main__":
    main()
