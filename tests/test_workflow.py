"""The workflow as users run it: `snakemake --cores 2` on the smoke config, in a temporary folder.

These tests drive the real Snakemake CLI, so they check what unit tests cannot: the DAG, the
params that make a config edit rerun exactly the stale stages, and bad inputs inside a full run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from robust_deepfake.cli import DEFAULT_CHECKPOINT
from robust_deepfake.detectors.network import read_checkpoint
from robust_deepfake.manifest import read_manifest, read_manifests
from robust_deepfake.stages.split import check_disjoint

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
CONFIGS = [str(REPO / "config" / "config.yaml"), str(REPO / "config" / "smoke.yaml")]

pytestmark = pytest.mark.slow


def snakemake(workdir: Path, *args: str, check: bool = True,
              configs: list[str] = CONFIGS) -> subprocess.CompletedProcess:
    cmd = SNAKEMAKE + ["--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir), "--configfile", *configs,
                       *args]
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
    assert set(summary["attack"]) == {"pgd", "gaussian"}  # the clean reference (none/0) is not a smoke rate
    assert (summary["pert_linf"] <= 0.05 + 1e-6).all()
    poisoned = read_manifest(results / "poisoned" / "pgd" / "mse" / "0.5" / "manifest.parquet")
    share = poisoned.groupby("media_id")["poisoned"].first().mean()
    assert 0.3 <= share <= 0.7, share  # half of B's real media, whole videos at a time
    purified = pd.read_csv(results / "purified" / "summary.tsv", sep="\t")
    assert set(purified["defence"]) == {"none", "diffpure", "adv_generator"}
    assert (purified.loc[purified["defence"] == "none", "reject_rate"] == 0).all()
    assert (purified.loc[purified["defence"] == "diffpure", "unet_evals_per_image"] == 5).all()  # ddim_steps
    for generator in ("faceswap_ae", "landmark_swap"):
        fakes = read_manifest(results / "fakes" / generator / "pgd" / "mse" / "0.5" / "none" / "manifest.parquet")
        assert len(fakes) == len(poisoned) and (fakes["label"] == 1).all()
        assert fakes["real_media_id"].isin(poisoned["media_id"]).all()
        image = cv2.imread(str(demo_run / fakes["face_path"].iloc[0]))
        assert image.shape == (64, 64, 3)


def test_demo_detectors_are_trained_evaluated_and_reported(demo_run):
    results = demo_run / "results" / "smoke"
    table = pd.read_parquet(results / "studies" / "demo" / "summary.parquet")
    assert len(table) == 4 and set(table["training"]) == {"plain", "pgd_finetune"} and set(table["backbone"]) == {
        "resnet18", "spectrum"}
    assert set(table["defence"]) == {"none", "diffpure"} and (table["poison_rate"] == 0.5).all()
    for column in ("acc", "auc", "eer", "ap", "video_auc", "auc_faceswap_ae", "auc_landmark_swap", "pgd_asr",
                   "fgsm_asr", "distorted_auc_mean", "auc_released_pgd_mse", "acc_released_gaussian_none"):
        assert table[column].between(0, 1).all(), column
    # the attacker's own fakes: G of every real face of C as each poisoning left it, poisoned all
    released = read_manifest(results / "test_fakes" / "faceswap_ae" / "released" / "pgd" / "mse" / "manifest.parquet")
    poisoned_c = read_manifest(results / "poisoned_test" / "pgd" / "mse" / "manifest.parquet")
    reals_c = read_manifest(results / "split" / "C.parquet").query("label == 0")
    assert poisoned_c["poisoned"].all() and len(poisoned_c) == len(reals_c)
    assert set(released["real_media_id"]) == set(reals_c["media_id"]) and (released["label"] == 1).all()
    assert "auc_released_pgd_mse" in (results / "studies" / "demo" / "summary.md").read_text()
    # two seeds of the plain resnet18: the summary's mean and sd are those of the per-seed rows
    per_seed = pd.read_parquet(results / "studies" / "demo" / "summary_seeds.parquet")
    assert len(per_seed) == 6
    plain = per_seed[(per_seed["backbone"] == "resnet18") & (per_seed["training"] == "plain")
                     & (per_seed["defence"] == "none")]
    row = table.set_index(["backbone", "training", "defence"]).loc[("resnet18", "plain", "none")]
    assert plain["seed"].tolist() == [0, 1] and row["seeds"] == 2
    assert row["auc"] == pytest.approx(plain["auc"].mean()) and row["auc_sd"] == pytest.approx(plain["auc"].std())
    thresholds = pd.read_parquet(next((results / "evaluation").rglob("metrics.parquet")))["threshold"]
    assert thresholds.between(0, 1).all() and thresholds.nunique() == 1  # the detector's calibrated threshold
    metrics = pd.read_parquet(next((results / "evaluation").rglob("metrics.parquet")))
    assert {"clean", "fgsm", "pgd", "GB-1", "GB-5", "VC-1", "VC-5", "VC-1-video", "VC-5-video"} == set(
        metrics["condition"])
    assert table["video_distorted_auc_mean"].between(0, 1).all()
    distorted = read_manifest(results / "distorted_test" / "VC" / "5" / "manifest.parquet")
    assert set(distorted["test_set"]) == {"real", "faceswap_ae", "landmark_swap"}  # reals and pasted fakes alike
    found = distorted.groupby("test_set")["image_path"].apply(lambda paths: paths.notna().mean())
    assert found["real"] == 1.0 and found["landmark_swap"] > 0.5  # CRF 40 over the whole clip leaves the faces
    # (the smoke face swap, 30 training steps, makes no face MTCNN accepts: its pasted fakes are lost)
    for figure in ("auc_vs_poison_rate", "roc", "accuracy_vs_distortion", "attack_success"):
        assert (results / "studies" / "demo" / "report" / f"{figure}.png").stat().st_size > 1000
    assert "| resnet18 | pgd_finetune |" in (results / "studies" / "demo" / "summary.md").read_text()
    # each checkpoint records how its faces were found and cut, which `predict` repeats on new media
    config = yaml.safe_load(Path(CONFIGS[0]).read_text())
    recorded = read_checkpoint(next(results.glob("detectors/resnet18/**/model.pt")))["input"]
    assert recorded["mode"] == "mtcnn" and recorded["margin"] == config["crop"]["margin"]
    assert recorded["faces"] == {key: config["faces"][key] for key in recorded["faces"]}
    assert {"min_face_size", "skip_levels", "min_confidence", "keep"} <= set(recorded["faces"])


def test_complete_run_plans_nothing(demo_run):
    assert planned_jobs(demo_run) == {}


UPSTREAM_OF_CROPS = {"render_demo", "ingest", "detect_faces"}


def test_crop_margin_reruns_cropping_and_dependants_only(demo_run):
    """No frame images lie between detection and cropping: cropping decodes the frames again,
    so a new margin still never reruns MTCNN."""
    assert not (demo_run / "results" / "smoke" / "frames").exists()
    jobs = planned_jobs(demo_run, "--config", "crop={margin: 0.45}")
    assert jobs["crop_faces"] == 2 and jobs["split"] == 1
    assert not UPSTREAM_OF_CROPS & set(jobs), jobs


def test_frame_images_are_an_option_that_reruns_nothing_else(demo_run):
    assert planned_jobs(demo_run, "--config", "frames={save_images: true}") == {"save_frames": 2, "all": 1}


DETECTORS = {"train_detector": 6, "evaluate_detector": 6, "summarise_experiments": 1}
AFTER_POISON = {"poison": 2, "purify": 6, "generate_fakes": 12, "summarise_poisoning": 1,
                "summarise_purification": 1, "measure_fakes": 4, "summarise_fake_distance": 1, "all": 1,
                **DETECTORS}


def test_poison_rate_reruns_poisoning_and_after_not_generator_training(demo_run):
    assert planned_jobs(demo_run, "--config", "poison={poison_rate: [0.7]}") == AFTER_POISON
    # the adversarially trained generator learns against the attacker's budget, so it follows epsilon,
    # and so do the attacker's own test fakes (C poisoned at rate 1, whatever poison_rate says);
    # the clean reference of the fake distance (attack none at rate 0) attacks nothing and stays
    assert planned_jobs(demo_run, "--config", "poison={epsilon: 0.03}") == {
        **AFTER_POISON, "train_adv_generator": 1, "poison_test": 2, "generate_released_fakes": 2}
    clean = "results/smoke/poisoned/none/none/0/manifest.parquet"
    for change in ("poison={epsilon: 0.03, steps: 2, loss: target}", "poison={threat: grey_box}"):
        assert planned_jobs(demo_run, clean, "--config", change) == {}, change


def test_a_second_loss_adds_its_scenarios_and_reruns_none_of_the_first(demo_run):
    """Both losses wrote poisoned/pgd/<rate>/: switching one for the other overwrote its results and
    reran everything after them. The loss is a folder now: adding one plans only its own scenarios."""
    jobs = planned_jobs(demo_run, "--config", "poison={loss: [mse, target]}")
    plan = snakemake(demo_run, "-n", "--config", "poison={loss: [mse, target]}").stdout
    assert jobs["poison"] == 1  # pgd at 0.5 with the target loss; gaussian noise follows no loss
    assert not {"train_generator", "split", "train_ddpm", "generate_test_fakes"} & set(jobs)
    trained = re.findall(r"rule train_detector:\n\s+input: [^\n]*\n\s+output: (\S+)/model.pt", plan)
    assert len(trained) == jobs["train_detector"] > 0 and all("/pgd/target/0.5/" in path for path in trained), trained
    # every detector, the first loss's included, meets the new loss's released fakes: evaluated, not retrained
    assert jobs["poison_test"] == jobs["generate_released_fakes"] == 1
    assert jobs["evaluate_detector"] == len(trained) + len(list((demo_run / "results" / "smoke" / "detectors").rglob(
        "model.pt")))


def test_t_star_reruns_diffpure_and_after_not_ddpm_training(demo_run):
    jobs = planned_jobs(demo_run, "--config", "purify={t_star: 0.2}")
    assert jobs == {"purify": 2, "generate_fakes": 4, "summarise_purification": 1, "all": 1,
                    "measure_fakes": 4, "summarise_fake_distance": 1,
                    "train_detector": 2, "evaluate_detector": 2, "summarise_experiments": 1}


def test_detector_lr_reruns_training_and_evaluation_only(demo_run):
    """The shared learning rate retrains the five ResNet-18 scenarios; the spectrum detector keeps
    its own rate (`backbone_settings`), so it is neither retrained nor re-evaluated."""
    assert planned_jobs(demo_run, "--config", "detector={lr: 0.002}") == {
        "train_detector": 5, "evaluate_detector": 5, "summarise_experiments": 1, "all": 1}
    # the fine-tuning's epochs retrain the fine-tuned detector alone, not the plain one it starts from
    assert planned_jobs(demo_run, "--config", "detector={adversarial: {finetune_epochs: 3}}") == {
        "train_detector": 1, "evaluate_detector": 1, "summarise_experiments": 1, "all": 1}
    # an evaluation setting reruns the evaluations, never the training
    assert planned_jobs(demo_run, "--config", "evaluate={levels: [1, 3]}") == {
        "distort_test_videos": 1, "evaluate_detector": 6, "summarise_experiments": 1, "all": 1}


def edited(module: Path):
    """A context in which one line is added to `module` of the checkout (a copied workflow counts
    as new code for Snakemake); the edit is undone on leaving."""
    from contextlib import contextmanager

    @contextmanager
    def edit():
        original = module.read_bytes()
        try:
            module.write_bytes(original + b"\n# an edit\n")
            yield
        finally:
            module.write_bytes(original)
    return edit()


def test_editing_a_stage_module_reruns_that_stage_and_after(demo_run):
    """One line added to the evaluation module: only evaluation and the table are stale."""
    with edited(REPO / "src" / "robust_deepfake" / "stages" / "evaluation.py"):
        assert planned_jobs(demo_run) == {"evaluate_detector": 6, "summarise_experiments": 1, "all": 1}
    assert planned_jobs(demo_run) == {}


def test_editing_a_module_a_script_imports_reruns_that_script(demo_run):
    """train_ddpm.py picks its faces with calibration.defence_faces, a module the DDPM's own code
    never imports: the rule's fingerprint follows its script's imports, so the edit reruns it (and
    purification, which calibrates with it), not the generators' training."""
    with edited(REPO / "src" / "robust_deepfake" / "defences" / "calibration.py"):
        jobs = planned_jobs(demo_run)
    assert jobs.get("train_ddpm") == 1 and jobs.get("purify", 0) >= 1, jobs
    assert not {"train_generator", "poison", "split"} & set(jobs), jobs


def test_snakemake_report_builds_and_holds_the_figures(demo_run):
    import base64

    snakemake(demo_run, "--report", "report.html")
    html = (demo_run / "report.html").read_text()
    figures = sorted((demo_run / "results" / "smoke" / "studies" / "demo" / "report").glob("*.png"))
    assert [f.stem for f in figures] == ["accuracy_vs_distortion", "attack_success", "auc_vs_poison_rate", "roc"]
    for figure in figures:  # each figure embedded whole, with its caption's name
        assert base64.b64encode(figure.read_bytes()).decode() in html, figure.name
    assert "summary.md" in html


# every trained model of the smoke DAG: (model file or folder, history, its step/epoch column, steps)
TRAINED = {"generators/faceswap_ae/main/model.pt": ("generators/faceswap_ae/main/history.parquet", "step", 30),
           "defences/ddpm/model/unet": ("defences/ddpm/history.parquet", "step", 20),
           "defences/adv_generator/model.pt": ("defences/adv_generator/history.parquet", "step", 4)}


def model_bytes(path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()) if path.is_dir() else path.read_bytes()


def test_an_upstream_change_retrains_every_model_from_the_start(demo_run, tmp_path):
    """After a complete run, a new crop margin reruns cropping and everything after it: every model
    must be trained anew on the new crops, from step 1, never "resumed" from the finished state of
    the run before (which the training-state folder, keyed by settings alone, once gave back)."""
    work = tmp_path / "copy"
    shutil.copytree(demo_run, work, symlinks=True)  # keeps the times Snakemake compares
    results = work / "results" / "smoke"
    trained = {**TRAINED, **{str(p.relative_to(results)): (str(p.parent.relative_to(results) / "history.parquet"),
                                                          "epoch", 2)
                             for p in results.glob("detectors/**/model.pt")}}
    assert len(trained) == 9  # three generator-side models and six detectors
    before = {m: (model_bytes(results / m), pd.read_parquet(results / h)) for m, (h, _, _) in trained.items()}
    proc = snakemake(work, "--cores", "2", "--config", "crop={margin: 0.45}")
    assert "resuming" not in proc.stdout + proc.stderr
    for model, (history, column, steps) in trained.items():
        old_bytes, old_history = before[model]
        assert model_bytes(results / model) != old_bytes, f"{model} was not retrained"
        new_history = pd.read_parquet(results / history)
        assert new_history[column].tolist() == list(range(1, steps + 1)), model  # every step trained in this run
        assert not new_history["seconds"].equals(old_history["seconds"]), model
        assert not (results / model).parent.joinpath("training").exists()  # no state is kept after success
    logs = "".join(p.read_text() for p in (work / "logs").rglob("*.log"))
    assert "resuming" not in logs and "found the state of an interrupted run" not in logs
    assert planned_jobs(work, "--config", "crop={margin: 0.45}") == {}


def test_a_changed_poisoning_setting_retrains_the_detectors_from_the_start(demo_run, tmp_path):
    """The detectors' scenario folder stays the same when a poisoning setting changes (pgd/mse/0.5):
    their training must still start afresh on the new fakes."""
    work = tmp_path / "copy"
    shutil.copytree(demo_run, work, symlinks=True)
    results = work / "results" / "smoke"
    models = sorted(results.glob("detectors/**/model.pt"))
    before = {m: m.read_bytes() for m in models}
    proc = snakemake(work, "--cores", "2", "--config", "poison={steps: 2}")
    assert executed_jobs(proc)["train_detector"] == 6 and "train_generator" not in executed_jobs(proc)
    for model in models:
        assert model.read_bytes() != before[model], model
        assert pd.read_parquet(model.parent / "history.parquet")["epoch"].tolist() == [1, 2]
    assert "resuming" not in "".join(p.read_text() for p in (work / "logs" / "smoke" / "train_detector").glob("*"))


def test_negative_margin_is_refused_before_any_job(demo_run):
    proc = snakemake(demo_run, "--cores", "1", "--config", "crop={margin: -0.1}", check=False)
    assert proc.returncode != 0
    assert "crop.margin" in proc.stderr and "-0.1" in proc.stderr and ">= 0" in proc.stderr
    assert "rule " not in proc.stdout  # nothing was scheduled


def test_a_dataset_named_dot_dot_is_refused_and_the_checkout_stays(tmp_path):
    """`dataset.name: ..` made render_demo's output `resources/..`, the working folder: the first run
    rendered into it and the next rerun of render_demo deleted it, .git and all."""
    keep = tmp_path / "Snakefile-of-the-user"
    keep.write_text("precious")
    for value in ("..", "."):
        proc = snakemake(tmp_path, "--cores", "1", "--until", "render_demo", "--config", f"dataset={{name: '{value}'}}",
                         check=False)
        assert proc.returncode != 0 and f"config key 'dataset.name': '{value}' is not allowed" in proc.stderr
        assert executed_jobs(proc) == {}
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != ".snakemake") == [keep.name]
    assert keep.read_text() == "precious"


def test_a_rule_whose_folder_output_is_the_checkout_stops_the_run(tmp_path):
    """The schema keeps names inside their folders; this holds for any future rule or key too: a
    directory() output that resolves to the working folder (Snakemake deletes such an output
    before rerunning its rule) stops every run before any job."""
    for folder in ("config", "src", "workflow_scripts"):
        (tmp_path / folder).symlink_to(REPO / folder)
    (tmp_path / "Snakefile").write_text(f'include: "{REPO / "Snakefile"}"\n\n\n'
                                        'rule unsafe:\n    output:\n        directory("resources/.."),\n'
                                        '    shell:\n        "true"\n\n\ncheck_directory_outputs()\n')
    proc = subprocess.run(SNAKEMAKE + ["-n", "--cores", "1"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode != 0
    assert f"rule unsafe: output resources/.. is {tmp_path} or a folder above it" in proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def messy_dataset(tmp_path_factory) -> Path:
    """A folders-layout dataset of good demo media plus every kind of bad input the issue names."""
    from robust_deepfake.datasets.demo import render_demo

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
    (bad / "zero_bytes.mp4").write_bytes(b"")
    write_audio_only(bad / "audio_only.mp4")
    # two people whose names flatten alike (real__alice__clip.mp4), and a name over 255 bytes flattened
    clips = sorted((root / "real").glob("*/clip*.mp4"))
    (root / "real" / "alice").mkdir()
    shutil.copy(clips[1], root / "real" / "alice" / "clip.mp4")
    shutil.copy(clips[2], root / "real" / "alice__clip.mp4")
    (root / "real" / LONG_FOLDER).mkdir()
    shutil.copy(clips[3], root / "real" / LONG_FOLDER / LONG_FILE)
    return root


LONG_FOLDER, LONG_FILE = "p" * 200, "v" * 196 + ".mp4"


def write_audio_only(path: Path) -> None:
    """An mp4 holding sound and no picture."""
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=16000)
        stream.layout = "mono"
        for k in range(10):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 16000, k * 1024
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def test_bad_inputs_are_reported_and_the_run_completes(messy_dataset, tmp_path):
    args = ["--config", "dataset={name: messy, layout: folders}", f"dataset_root={messy_dataset}", "shards=2",
            "--", *(f"results/messy/split/{p}.parquet" for p in "ABC")]
    snakemake(tmp_path, "--cores", "2", *args)
    results = tmp_path / "results" / "messy"
    crops = read_manifests(sorted((results / "crops").glob("*.parquet")))
    errors = crops.groupby("media_id")["error"].first()
    for name, words in {"truncated.mp4": "not a readable video", "not_a_video.mp4": "not a readable video",
                        "unreadable.png": "unreadable image", "no_face.png": "no face above confidence",
                        "zero_bytes.mp4": "not a readable video", "audio_only.mp4": "no video stream"}.items():
        msg = errors[f"real/zz_bad/{name}"]
        assert isinstance(msg, str) and words in msg, (name, msg)
        if name != "no_face.png":  # the no-face text is per frame; its row and log name the media
            assert name in msg
    summary = pd.read_csv(results / "split" / "summary.tsv", sep="\t")
    lost = dict(zip(summary["part"], summary["media"]))
    assert lost["lost: not a readable video"] == 3 and lost["lost: no face above confidence 0.9"] == 1
    assert lost["lost: no video stream"] == 1
    good = crops[~crops["media_id"].str.contains("zz_bad")]
    assert good["face_path"].notna().mean() >= 0.9
    # every good media has its faces, each in a folder of its own, all of them in the split
    assert good.groupby("media_id")["face_path"].count().min() > 0
    assert good["face_path"].dropna().is_unique
    for media_id in ("real/alice/clip.mp4", "real/alice__clip.mp4", f"real/{LONG_FOLDER}/{LONG_FILE}"):
        paths = good.loc[good["media_id"] == media_id, "face_path"].dropna()
        assert len(paths) and all((tmp_path / p).is_file() for p in paths), media_id
    assert {len(Path(p).parent.name.encode()) for p in good["face_path"].dropna()} <= set(range(256))
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
            "ingest": 1, "detect_faces": 1, "crop_faces": 1, "split": 1}
    finally:
        shutil.rmtree(new)


def test_two_runs_with_the_same_seed_give_identical_splits_and_metrics(demo_run, tmp_path):
    """Reproducibility on CPU: a second complete run from nothing in another folder (its own demo
    rendering included) gives the same split files and the same poisoning, purification and
    experiment tables, bit for bit."""
    snakemake(tmp_path, "--cores", "2")
    first, second = demo_run / "results" / "smoke", tmp_path / "results" / "smoke"
    for part in "ABC":
        a, b = (read_manifest(r / "split" / f"{part}.parquet") for r in (first, second))
        # `path` is the media file's absolute location, in each run's own folder; all else is equal
        assert a["path"].str.replace(str(demo_run), "").equals(b["path"].str.replace(str(tmp_path), "")), part
        assert a.drop(columns="path").equals(b.drop(columns="path")), part
    for table in ("poisoned/summary.tsv", "purified/summary.tsv"):
        a, b = (pd.read_csv(r / table, sep="\t").drop(columns=["seconds_per_image"], errors="ignore")
                for r in (first, second))
        pd.testing.assert_frame_equal(a, b, check_exact=True)
    pd.testing.assert_frame_equal(pd.read_parquet(first / "studies/demo/summary.parquet"),
                                  pd.read_parquet(second / "studies/demo/summary.parquet"),
                                  check_exact=True)


def test_a_killed_detector_training_resumes_from_its_last_epoch(demo_run):
    """SIGKILL a training job (the whole Snakemake process group) mid-run, then rerun with
    --rerun-incomplete: the job resumes after the last saved epoch instead of starting over."""
    scenario = "resnet18/plain/faceswap_ae/pgd/mse/0.5/none/seed0"
    target = f"results/smoke/detectors/{scenario}/model.pt"
    # state_interval_s 0: a state after every epoch, so that one killed after epoch 3 has one to resume
    args = ["--cores", "1", "--config", "detector={epochs: 60, state_interval_s: 0}", "--forcerun", "train_detector",
            "--", target]
    log = demo_run / "logs" / "smoke" / "train_detector" / f"{scenario.replace('/', '_')}.log"
    cmd = SNAKEMAKE + ["--snakefile", str(REPO / "Snakefile"), "--directory", str(demo_run), "--configfile",
                       *CONFIGS, *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 600
        while not (log.exists() and "INFO robust_deepfake.stages.detector_training: epoch 3:" in log.read_text()):
            assert proc.poll() is None, "training ended before it could be killed"
            assert time.monotonic() < deadline, "training never reached epoch 3"
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    snakemake(demo_run, "--unlock", *args[2:4])
    snakemake(demo_run, "--rerun-incomplete", *args[:2], *args[2:4], "--", target)
    text = log.read_text()
    resumed = re.search(r"resuming detector training from \S+ after epoch (\d+)", text)
    assert resumed and int(resumed.group(1)) >= 3, text[-2000:]
    history = pd.read_parquet(demo_run / f"results/smoke/detectors/{scenario}/history.parquet")
    assert history["epoch"].tolist() == list(range(1, 61))
    # back to the suite's config, so that later tests see the complete run they expect
    snakemake(demo_run, "--cores", "1", "--", target)


@pytest.mark.shared_data
def test_the_faceforensics_preset_as_shipped_runs_the_shared_tree_to_the_split(shared_data, tmp_path):
    """The README's preset command on a real FaceForensics++ tree (3 real, 4 fake c23 videos): the
    preset's 64 shards are a cap (7 videos make one shard, no empty-shard job), and split C holds
    both labels although only four identity groups hold fakes."""
    preset = str(REPO / "config" / "presets" / "faceforensics.yaml")
    proc = snakemake(tmp_path, "--cores", "2", "--config", f"dataset_root={shared_data / 'faceforensics_c23'}",
                     "--", "results/ffpp/split/summary.tsv", configs=[preset])
    assert executed_jobs(proc) == {"ingest": 1, "detect_faces": 1, "crop_faces": 1, "split": 1}
    results = tmp_path / "results" / "ffpp"
    for part in "ABC":
        labels = set(read_manifest(results / "split" / f"{part}.parquet")["label"])
        assert labels == {0, 1}, (part, labels)
    summary = pd.read_csv(results / "split" / "summary.tsv", sep="\t")
    assert not summary["part"].str.startswith("missing:").any()
    assert summary.loc[summary["part"].isin(["A", "B", "C"]), "media"].sum() == 7
    # what a run leaves besides the crops is manifests: no full-frame copies (issue 18's goal, 1.5x)
    written, crops = (sum(f.stat().st_size for f in d.rglob("*") if f.is_file()) for d in (results, results / "crops"))
    assert written <= 1.5 * crops, (written, crops)


def dfdc_tree(root: Path, shared_data: Path, entries: dict[str, dict]) -> Path:
    """A DFDC training part: `entries` is its metadata.json; the entries with a `video` key get
    that shared video on disk (a link), the others are listed but missing, as in a partial download."""
    part = root / "dfdc_train_part_0"
    part.mkdir(parents=True)
    for name, entry in entries.items():
        if "video" in entry:
            (part / name).symlink_to(shared_data / "real_videos" / entry.pop("video"))
    (part / "metadata.json").write_text(json.dumps(entries))
    return root


@pytest.mark.shared_data
def test_a_dfdc_tree_without_real_media_stops_before_any_model_is_trained(shared_data, tmp_path):
    """Every present video FAKE, the REAL ones listed but missing: ingest, face detection, the split
    and poisoning used to pass, and train_generator failed hours later. Now ingest stops, and the
    console names the missing files."""
    missing = {f"real_{k}.mp4": {"label": "REAL", "split": "train"} for k in range(5)}
    present = {f"fake_{k}.mp4": {"label": "FAKE", "original": f"real_{k}.mp4", "split": "train", "video": video}
               for k, video in enumerate(["WDA_KatieHill_000.mp4", "WDA_AlexandriaOcasioCortez_000.mp4"])}
    root = dfdc_tree(tmp_path / "dfdc", shared_data, {**missing, **present})
    preset = str(REPO / "config" / "presets" / "dfdc.yaml")
    proc = snakemake(tmp_path / "run", "--cores", "2", "--config", f"dataset_root={root}", configs=[preset], check=False)
    assert proc.returncode != 0
    assert "found 2 media and none is real (label 0)" in proc.stderr
    assert ("ignored 5 metadata.json entries without a video on disk, e.g. real_0.mp4, real_1.mp4, real_2.mp4"
            in proc.stderr)
    assert executed_jobs(proc) == {} and not (tmp_path / "run" / "results" / "dfdc" / "generators").exists()


@pytest.mark.shared_data
def test_a_part_left_without_real_media_stops_the_split(shared_data, tmp_path):
    """Two real people cannot give A, B and C one each: the split says so instead of handing a part
    without reals to poisoning and training."""
    videos = ["WDA_KatieHill_000.mp4", "WDA_AlexandriaOcasioCortez_000.mp4"]
    entries = {f"real_{k}.mp4": {"label": "REAL", "split": "train", "video": v} for k, v in enumerate(videos)}
    entries |= {f"fake_{k}.mp4": {"label": "FAKE", "original": f"real_{k}.mp4", "split": "train", "video": v}
                for k, v in enumerate(videos)}
    root = dfdc_tree(tmp_path / "dfdc", shared_data, entries)
    preset = str(REPO / "config" / "presets" / "dfdc.yaml")
    proc = snakemake(tmp_path / "run", "--cores", "2", "--config", f"dataset_root={root}", "frames={per_video: 3}",
                     configs=[preset], check=False)
    assert proc.returncode != 0
    assert "would hold no real media: its real media that kept a face belong to 2 identity group(s)" in proc.stderr
    assert "split" not in executed_jobs(proc) and "ingest" in executed_jobs(proc)
    assert not (tmp_path / "run" / "results" / "dfdc" / "split" / "B.parquet").exists()


def test_predicts_default_checkpoint_is_what_the_default_config_trains(tmp_path):
    """`robust-deepfake predict` without --checkpoint loads the demo's clean plain detector, so a
    default run (`make demo`) must write exactly that file (a renamed scenario path once left it
    pointing at a file no run makes)."""
    proc = snakemake(tmp_path, "-n", configs=CONFIGS[:1])  # the default config alone
    assert str(DEFAULT_CHECKPOINT) in proc.stdout + proc.stderr


def test_a_grey_box_surrogate_is_trained_even_when_the_attacked_model_is_a_checkpoint(demo_run, tmp_path):
    """With the face swap given as a checkpoint, the grey-box attacker's surrogate must still be
    their own model, trained on half of A's identities, never a copy of the attacked file (which
    would make grey-box white-box without a word)."""
    checkpoint = tmp_path / "faceswap.pt"
    shutil.copyfile(demo_run / "results" / "smoke" / "generators" / "faceswap_ae" / "main" / "model.pt", checkpoint)
    surrogate = demo_run / "results" / "smoke" / "generators" / "faceswap_ae" / "surrogate"
    snakemake(demo_run, "--cores", "1", str(surrogate.relative_to(demo_run) / "model.pt"), "--config",
              "poison={threat: grey_box}", f"faceswap_ae={{checkpoint: {checkpoint}}}")
    assert (surrogate / "model.pt").read_bytes() != checkpoint.read_bytes()
    assert pd.read_parquet(surrogate / "history.parquet")["step"].max() == TRAINED[
        "generators/faceswap_ae/main/model.pt"][2]  # trained, all the smoke's steps


def test_the_magnet_and_both_defences_run_through_the_workflow(demo_run, tmp_path):
    """Added to the defence axis, MagNet's autoencoder is trained on A and purifies B, and `both`
    purifies with DiffPure and makes the face swap's fakes with the adversarially trained face
    swap; nothing the other defences made reruns."""
    work = tmp_path / "copy"
    shutil.copytree(demo_run, work, symlinks=True)
    results = Path("results") / "smoke"
    targets = [str(results / "purified" / "pgd" / "mse" / "0.5" / "defensive_model_2" / "summary.tsv"),
               str(results / "fakes" / "faceswap_ae" / "pgd" / "mse" / "0.5" / "both" / "manifest.parquet")]
    extra = ["--config", "defences=[none, diffpure, adv_generator, defensive_model_2, both]"]
    assert planned_jobs(work, *targets, *extra) == {"train_magnet": 1, "purify": 2, "generate_fakes": 1}
    snakemake(work, "--cores", "2", *targets, *extra)
    magnet = pd.read_csv(work / targets[0], sep="\t").iloc[0]
    assert magnet["defence"] == "defensive_model_2" and magnet["prop_dist_purified"] <= magnet["prop_dist_poisoned"]
    assert (work / results / "defences" / "magnet" / "defensive_model_2" / "model.pt").is_file()
    both = read_manifest(work / results / "purified" / "pgd" / "mse" / "0.5" / "both" / "manifest.parquet")
    assert (both["defence"] == "both").all() and both["purified_path"].notna().all()
    # both's measures and fakes come from the adversarially trained face swap: retraining it makes them stale
    assert planned_jobs(work, targets[1], "--forcerun", "train_adv_generator", *extra) == {
        "train_adv_generator": 1, "purify": 1, "generate_fakes": 1}


def test_an_adaptive_poison_is_crafted_against_each_defence_it_meets(demo_run, tmp_path):
    """`adaptive_pgd` poisons split B once per defence, through that defence's purifier, and the
    defence then purifies exactly that poisoning; the plain PGD's files are untouched."""
    work = tmp_path / "copy"
    shutil.copytree(demo_run, work, symlinks=True)
    results = work / "results" / "smoke"
    target = str(Path("results") / "smoke" / "purified" / "adaptive_pgd" / "mse" / "0.5" / "diffpure" / "summary.tsv")
    extra = ["--config", "poison={attacks: [pgd, adaptive_pgd]}"]
    plain = (results / "poisoned" / "pgd" / "mse" / "0.5" / "manifest.parquet").read_bytes()
    assert planned_jobs(work, target, *extra) == {"poison_adaptive": 1, "purify": 1}
    snakemake(work, "--cores", "2", target, *extra)
    against = results / "poisoned" / "adaptive_pgd" / "mse" / "0.5" / "against" / "diffpure"
    poisoned = read_manifest(against / "manifest.parquet")
    assert poisoned["poisoned"].any() and (poisoned.loc[poisoned["poisoned"], "attack"] == "adaptive_pgd").all()
    assert pd.read_csv(against / "summary.tsv", sep="\t").iloc[0]["against"] == "diffpure"
    purified = read_manifest(results / "purified" / "adaptive_pgd" / "mse" / "0.5" / "diffpure" / "manifest.parquet")
    assert purified["poisoned_path"].str.contains("/against/diffpure/").any()
    assert "optimised through diffpure" in (work / "logs" / "smoke" / "poison" / "adaptive_pgd_mse_0.5_against_diffpure.log").read_text()
    assert (results / "poisoned" / "pgd" / "mse" / "0.5" / "manifest.parquet").read_bytes() == plain


@pytest.mark.shared_data
def test_the_celeba_preset_as_shipped_crops_aligned_faces_as_stargan_does(shared_data, tmp_path):
    """The CelebA preset on a CelebA-layout tree made of the shared face photos (each resized to the
    aligned 178 x 218 format, with five StarGAN attributes and an identity file): every crop is the
    centre 178 square resized to 128, and the attributes reach the split's manifests."""
    root = tmp_path / "celeba"
    (root / "img_align_celeba").mkdir(parents=True)
    attributes = ["Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young"]
    rows, identities = [], []
    people = sorted(p for p in (shared_data / "face_photos" / "identities").iterdir() if p.is_dir())
    for person_id, person in enumerate(people, start=1):
        for photo in sorted(person.glob("*.jpg")):
            name = f"{len(rows) + 1:06d}.jpg"
            cv2.imwrite(str(root / "img_align_celeba" / name), cv2.resize(cv2.imread(str(photo)), (178, 218)))
            values = [1 if (len(rows) + k) % 3 == 0 else -1 for k in range(len(attributes))]
            rows.append(f"{name} " + " ".join(f"{v:2d}" for v in values))
            identities.append(f"{name} {person_id}")
    (root / "list_attr_celeba.txt").write_text(f"{len(rows)}\n" + " ".join(attributes) + "\n" + "\n".join(rows) + "\n")
    (root / "identity_CelebA.txt").write_text("\n".join(identities) + "\n")
    preset = str(REPO / "config" / "presets" / "celeba.yaml")
    snakemake(tmp_path, "--cores", "2", "--config", f"dataset_root={root}", "--", "results/celeba/split/summary.tsv",
              configs=[preset])
    parts = {p: read_manifest(tmp_path / "results" / "celeba" / "split" / f"{p}.parquet") for p in "ABC"}
    assert all(len(parts[p]) for p in "ABC"), {p: len(t) for p, t in parts.items()}
    faces = pd.concat(parts.values(), ignore_index=True)
    assert len(faces) >= 0.8 * len(rows)  # MTCNN finds a face in nearly every photo
    assert all(tuple(box) == (0, 20, 178, 198) for box in faces["crop_box"])
    assert {cv2.imread(str(tmp_path / p)).shape for p in faces["face_path"]} == {(128, 128, 3)}
    assert {f"attr_{a}" for a in attributes} <= set(faces.columns)


STARGAN_CONFIGS = [str(REPO / "config" / name) for name in ("config.yaml", "stargan.yaml", "smoke_stargan.yaml")]


def test_the_stargan_path_runs_from_ingest_to_the_table_on_the_attribute_demo(tmp_path):
    """config/stargan.yaml at smoke size: the attribute demo is rendered in CelebA's layout, cropped
    as StarGAN crops CelebA, StarGAN trains on A's attribute labels, B is poisoned through every
    face's own targets (PGD, the Gaussian baseline, the adaptive attack per defence), purified,
    made into fakes, and detectors trained on them reach the experiment table."""
    snakemake(tmp_path, "--cores", "2", configs=STARGAN_CONFIGS)
    results = tmp_path / "results" / "smoke_stargan"
    faces = pd.concat([read_manifest(results / "split" / f"{p}.parquet") for p in "ABC"], ignore_index=True)
    assert all(tuple(box) == (0, 20, 178, 198) for box in faces["crop_box"])
    assert {"attr_Eyeglasses", "attr_Pale_Skin"} <= set(faces.columns)
    history = pd.read_parquet(results / "generators" / "stargan" / "main" / "history.parquet")
    assert history["step"].max() == 20 and history["G/loss_rec"].notna().any()

    poisoned = pd.read_csv(results / "poisoned" / "summary.tsv", sep="\t").fillna({"against": ""})
    by_attack = poisoned.set_index(["attack", "against"])
    assert by_attack.loc[("pgd", ""), "dist_l2"] > 5 * by_attack.loc[("gaussian", ""), "dist_l2"]
    defences = {"none", "defensive_model_1", "diffpure", "adv_generator_blur", "both"}
    assert set(poisoned.loc[poisoned["attack"] == "adaptive_pgd", "against"]) == defences
    purified = pd.read_csv(results / "purified" / "summary.tsv", sep="\t")
    assert {(a, d) for a in ("pgd", "gaussian", "adaptive_pgd") for d in defences} \
        <= set(zip(purified["attack"], purified["defence"]))
    # StarGAN's adversarially trained versions (G+D), one with the blur in front, each a file of its own
    for name, blurred in (("adv_generator", False), ("adv_generator_blur", True)):
        state = torch.load(results / "defences" / name / "model.pt", weights_only=True)
        assert ("blur.kernel" in state) == blurred and "main.0.weight" in state
        assert len(pd.read_parquet(results / "defences" / name / "history.parquet")) == 4

    fakes = read_manifest(results / "fakes" / "stargan" / "pgd" / "mse" / "0.5" / "none" / "manifest.parquet")
    assert set(fakes["method"]) == {"stargan"} and fakes["condition"].notna().all()
    table = pd.read_parquet(results / "studies" / "stargan" / "summary.parquet")
    assert set(table["generator"]) == {"stargan"}
    assert {("none", 0.0, "none"), ("pgd", 0.5, "none"), ("pgd", 0.5, "diffpure")} \
        == set(zip(table["attack"], table["poison_rate"], table["defence"]))
    assert table["auc"].notna().all()
