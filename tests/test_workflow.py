"""The workflow as users run it: `snakemake --cores 2` on the smoke config, in a temporary folder.

These tests drive the real Snakemake CLI, so they check what unit tests cannot: the DAG, the
params that make a config edit rerun exactly the stale stages, and bad inputs inside a full run.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from robust_deepfake.manifest import read_manifest, read_manifests
from robust_deepfake.split import check_disjoint

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
CONFIGS = [str(REPO / "config" / "config.yaml"), str(REPO / "config" / "smoke.yaml")]

pytestmark = pytest.mark.slow


def snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    cmd = SNAKEMAKE + ["--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
                       "--configfile", *CONFIGS, *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1200)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def planned_jobs(workdir: Path, *args: str) -> dict[str, int]:
    """Jobs a dry run would execute, by rule, read from Snakemake's 'Job stats' table."""
    proc = snakemake(workdir, "-n", *args)
    out = proc.stdout + proc.stderr
    if "Nothing to be done" in out:
        return {}
    table = out.split("Job stats:")[1]
    jobs = dict(re.findall(r"^(\w+)\s+(\d+)\s*$", table, flags=re.M))
    jobs.pop("total", None)
    return {rule: int(n) for rule, n in jobs.items()}


def executed_jobs(proc: subprocess.CompletedProcess) -> dict[str, int]:
    """Jobs a real run executed, by rule, from Snakemake's 'Finished jobid: N (Rule: name)' lines."""
    rules = re.findall(r"Finished jobid: \d+ \(Rule: (\w+)\)", proc.stdout + proc.stderr)
    return {rule: rules.count(rule) for rule in set(rules)}


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("smoke_demo")
    snakemake(workdir, "--cores", "2")
    return workdir


def test_demo_dag_runs_and_split_is_identity_disjoint(demo_run):
    results = demo_run / "results" / "smoke"
    parts = {p: read_manifest(results / "split" / f"{p}.parquet") for p in "ABC"}
    assert all(len(parts[p]) > 0 for p in "ABC"), {p: len(t) for p, t in parts.items()}
    check_disjoint(pd.concat(parts.values(), ignore_index=True))
    media = read_manifest(results / "media.parquet")
    assert media["identity"].nunique() == 6 and set(media["kind"]) == {"video", "image"}
    crops = read_manifests(sorted((results / "crops").glob("*.parquet")))
    found = crops["face_path"].notna().mean()
    assert found >= 0.9, f"faces found in only {found:.0%} of demo frames"
    face = cv2.imread(str(demo_run / parts["A"]["face_path"].iloc[0]))  # paths are relative to the workdir
    assert face.shape == (64, 64, 3)
    assert (demo_run / "logs" / "smoke" / "detect_faces").is_dir()


def test_demo_attack_side_outputs(demo_run):
    results = demo_run / "results" / "smoke"
    summary = pd.read_csv(results / "poisoned" / "summary.tsv", sep="\t")
    assert set(summary["attack"]) == {"pgd", "gaussian"}
    assert (summary["pert_linf"] <= 0.05 + 1e-6).all()
    poisoned = read_manifest(results / "poisoned" / "pgd" / "0.5" / "manifest.parquet")
    share = poisoned.groupby("media_id")["poisoned"].first().mean()
    assert 0.3 <= share <= 0.7, share  # half of B's real media, whole videos at a time
    purified = pd.read_csv(results / "purified" / "summary.tsv", sep="\t")
    assert set(purified["purifier"]) == {"none", "diffpure", "adv_generator"}
    assert (purified.loc[purified["purifier"] == "none", "reject_rate"] == 0).all()
    assert (purified.loc[purified["purifier"] == "diffpure", "unet_evals_per_image"] == 5).all()  # ddim_steps
    for generator in ("faceswap_ae", "landmark_swap"):
        fakes = read_manifest(results / "fakes" / generator / "pgd" / "0.5" / "none" / "manifest.parquet")
        assert len(fakes) == len(poisoned) and (fakes["label"] == 1).all()
        assert fakes["real_media_id"].isin(poisoned["media_id"]).all()
        image = cv2.imread(str(demo_run / fakes["face_path"].iloc[0]))
        assert image.shape == (64, 64, 3)


def test_complete_run_plans_nothing(demo_run):
    assert planned_jobs(demo_run) == {}


UPSTREAM_OF_CROPS = {"render_demo", "ingest", "extract_frames", "detect_faces"}


def test_crop_margin_reruns_cropping_and_dependants_only(demo_run):
    jobs = planned_jobs(demo_run, "--config", "crop={margin: 0.45}")
    assert jobs["crop_faces"] == 2 and jobs["split"] == 1
    assert not UPSTREAM_OF_CROPS & set(jobs), jobs


AFTER_POISON = {"poison": 2, "purify": 6, "generate_fakes": 12, "summarise_poisoning": 1,
                "summarise_purification": 1, "all": 1}


def test_poison_rate_reruns_poisoning_and_after_not_generator_training(demo_run):
    assert planned_jobs(demo_run, "--config", "poison={poison_rate: [0.7]}") == AFTER_POISON
    # the adversarially trained generator learns against the attacker's budget, so it follows epsilon
    assert planned_jobs(demo_run, "--config", "poison={epsilon: 0.03}") == {**AFTER_POISON, "train_adv_generator": 1}


def test_t_star_reruns_diffpure_and_after_not_ddpm_training(demo_run):
    jobs = planned_jobs(demo_run, "--config", "purify={t_star: 0.2}")
    assert jobs == {"purify": 2, "generate_fakes": 4, "summarise_purification": 1, "all": 1}


def test_negative_margin_is_refused_before_any_job(demo_run):
    proc = snakemake(demo_run, "--cores", "1", "--config", "crop={margin: -0.1}", check=False)
    assert proc.returncode != 0
    assert "crop.margin" in proc.stderr and "-0.1" in proc.stderr and ">= 0" in proc.stderr
    assert "rule " not in proc.stdout  # nothing was scheduled


@pytest.fixture(scope="module")
def messy_dataset(tmp_path_factory) -> Path:
    """A folders-layout dataset of good demo media plus every kind of bad input the issue names."""
    from robust_deepfake.demo import render_demo

    root = tmp_path_factory.mktemp("messy")
    render_demo(root, identities=4, videos_per_identity=1, frames_per_video=10, fps=10, size=160,
                images_per_identity=1, seed=1)
    bad = root / "real" / "zz_bad"
    bad.mkdir(parents=True)
    clip = next((root / "real").glob("*/clip*.mp4")).read_bytes()
    (bad / "truncated.mp4").write_bytes(clip[: len(clip) // 3])
    (bad / "not_a_video.mp4").write_text("this is a text file, not an mp4\n")
    (bad / "unreadable.png").write_bytes(np.random.default_rng(0).bytes(2000))
    blank = np.full((240, 320, 3), 90, np.uint8)
    cv2.putText(blank, "no face here", (20, 120), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (255, 255, 255), 2)
    cv2.imwrite(str(bad / "no_face.png"), blank)
    return root


def test_bad_inputs_are_reported_and_the_run_completes(messy_dataset, tmp_path):
    args = ["--config", "dataset={name: messy, layout: folders}", f"dataset_root={messy_dataset}", "shards=2",
            "--", *(f"results/messy/split/{p}.parquet" for p in "ABC")]
    snakemake(tmp_path, "--cores", "2", *args)
    results = tmp_path / "results" / "messy"
    crops = read_manifests(sorted((results / "crops").glob("*.parquet")))
    errors = crops.groupby("media_id")["error"].first()
    for name, words in {"truncated.mp4": "not a readable video", "not_a_video.mp4": "not a readable video",
                        "unreadable.png": "unreadable image", "no_face.png": "no face above confidence"}.items():
        msg = errors[f"real/zz_bad/{name}"]
        assert isinstance(msg, str) and words in msg, (name, msg)
        if name != "no_face.png":  # the no-face text is per frame; its row and log name the media
            assert name in msg
    summary = pd.read_csv(results / "split" / "summary.tsv", sep="\t")
    lost = dict(zip(summary["part"], summary["media"]))
    assert lost["lost: not a readable video"] == 2 and lost["lost: no face above confidence 0.9"] == 1
    good = crops[~crops["media_id"].str.contains("zz_bad")]
    assert good["face_path"].notna().mean() >= 0.9
    split = read_manifests([results / "split" / f"{p}.parquet" for p in "ABC"])
    assert not split["media_id"].str.contains("zz_bad").any()
    assert split["media_id"].nunique() == good["media_id"].nunique()

    # one added video reruns only its shard and the aggregates. ingest is a checkpoint, so a dry
    # run cannot know the shard before ingest has run: run for real and count the executed jobs.
    new = messy_dataset / "real" / "lfw_extra"
    new.mkdir()
    shutil.copy(next((messy_dataset / "real").glob("*/clip*.mp4")), new / "clip0.mp4")
    try:
        assert executed_jobs(snakemake(tmp_path, "--cores", "2", *args)) == {
            "ingest": 1, "extract_frames": 1, "detect_faces": 1, "crop_faces": 1, "split": 1}
    finally:
        shutil.rmtree(new)
