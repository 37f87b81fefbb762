"""The cluster profile on a real SLURM: `snakemake --profile profiles/slurm` submits the smoke DAG's
jobs with sbatch to a single-node cluster started for this test, and sacct shows each job ran
with the partition, CPUs, memory, GPU and time limit the profile declares.

.ci/slurm_cluster.sh installs the Debian packages if missing and starts munged, mariadbd, slurmdbd,
slurmctld and slurmd from a temporary folder; the fixture stops exactly those at the end. The node
is fake-sized (slurmd trusts its configured CPUs, memory and one GPU on /dev/null) and has the
partitions the profile names, so the profile runs unchanged: the one test-only option is a 2 s
first status check. The target is the face crops of every shard: render_demo and ingest,
detect_faces, a GPU rule, once per shard, and the crops group (both shards' jobs in one SLURM job).

Needs root and apt-get/dpkg (Debian); RDD_SKIP_SLURM=1 skips it. About 2-3 minutes.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
PROFILE = REPO / "profiles" / "slurm"
CLUSTER_SCRIPT = REPO / ".ci" / "slurm_cluster.sh"
CONFIGS = [str(REPO / "config" / "config.yaml"), str(REPO / "config" / "smoke.yaml")]
SHARDS = ["0000", "0001"]  # config/smoke.yaml: shards: 2
TARGETS = [f"results/smoke/crops/{shard}.parquet" for shard in SHARDS]
# SLURM jobs the target takes, by rule (group jobs by their group name)
EXPECTED_JOBS = {"render_demo": 1, "ingest": 1, "detect_faces": 2, "crops": 1}
GPU_RULE = "detect_faces"
RUN_TIMEOUT_S = 480

pytestmark = [pytest.mark.slurm, pytest.mark.slow]


def skip_reason() -> str | None:
    if os.environ.get("RDD_SKIP_SLURM", "") not in ("", "0"):
        return "RDD_SKIP_SLURM is set"
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "needs root: installs SLURM with apt-get and runs its daemons"
    if not (shutil.which("apt-get") and shutil.which("dpkg")):
        return "needs a Debian-like system (apt-get, dpkg) to install SLURM"
    if not shutil.which("timeout"):
        return "needs coreutils' timeout"
    etc_conf = Path("/etc/slurm/slurm.conf")
    if etc_conf.exists() and not etc_conf.is_symlink():  # (the script's own links it handles itself)
        return f"{etc_conf} exists: a SLURM is configured here, not starting a test cluster beside it"
    return None


def load_profile() -> dict:
    return yaml.safe_load((PROFILE / "config.yaml").read_text())


def evaluate(value, threads: int = 1):
    """A resource value of the profile as Snakemake evaluates it (an expression or a literal)."""
    if isinstance(value, str):
        return eval(value, {"threads": threads, "attempt": 1})  # noqa: S307 - our own profile
    return value


def pairs(entries: list[str]) -> dict[str, str]:
    """`groups:` / `group-components:` entries, NAME=VALUE."""
    return dict(entry.split("=", 1) for entry in entries)


def tres(text: str) -> dict[str, str]:
    return dict(item.split("=", 1) for item in text.split(",") if item)


def megabytes(text: str) -> float:
    units = {"K": 1 / 1024, "M": 1, "G": 1024, "T": 1024**2}
    return float(text[:-1]) * units[text[-1]] if text[-1] in units else float(text) / 1024**2


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory) -> dict[str, str]:
    """A running single-node cluster; yields the environment that points the SLURM tools at it."""
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    profile = load_profile()
    partitions = [profile["default-resources"].get("slurm_partition", "debug")]
    for resources in profile["set-resources"].values():
        if resources.get("slurm_partition") not in partitions + [None]:
            partitions.append(resources["slurm_partition"])
    folder = tmp_path_factory.mktemp("slurm") / "cluster"
    env = {**os.environ, "SLURM_TEST_PARTITIONS": " ".join(partitions), "SLURM_TEST_CPUS": "64",
           "SLURM_TEST_MEM_MB": str(256 * 1024), "SLURM_TEST_GPUS": "1"}
    try:
        start = subprocess.run(["bash", str(CLUSTER_SCRIPT), "start", str(folder)], env=env,
                               capture_output=True, text=True, timeout=900)
        if start.returncode != 0:
            pytest.fail(f"the test SLURM cluster did not start (RDD_SKIP_SLURM=1 skips this test):\n"
                        f"{start.stdout}\n{start.stderr}")
        yield {**os.environ, "SLURM_CONF": str(folder / "slurm.conf")}
    finally:
        stop = subprocess.run(["bash", str(CLUSTER_SCRIPT), "stop", str(folder)], capture_output=True,
                              text=True, timeout=300)
        shutil.rmtree(folder / "mysql", ignore_errors=True)  # 100 MB of database files
        left = still_running(folder / "pids.stopped")
        assert stop.returncode == 0 and not left, f"daemons left running: {left}\n{stop.stderr}"


def still_running(pid_file: Path) -> list[str]:
    """The daemons of `pid_file` (NAME PID lines, written by the script) still running: same name
    (not a reused PID) and not a zombie waiting to be reaped."""
    left = []
    for line in pid_file.read_text().splitlines() if pid_file.exists() else []:
        name, pid = line.split()
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            continue
        if comm == name and state not in ("Z", "X"):
            left.append(line)
    return left


@pytest.fixture(scope="module")
def slurm_run(slurm_cluster, tmp_path_factory) -> tuple[Path, str, list[dict[str, str]]]:
    """The smoke DAG up to the face crops, submitted through the profile; returns the working dir,
    snakemake's output and sacct's records of the run's jobs."""
    workdir = tmp_path_factory.mktemp("slurm_run")
    cmd = ["timeout", "-k", "30", str(RUN_TIMEOUT_S), sys.executable, "-m", "snakemake",
           "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir), "--configfile", *CONFIGS,
           "--profile", str(PROFILE), "--slurm-init-seconds-before-status-checks", "2", *TARGETS]
    proc = subprocess.run(cmd, env=slurm_cluster, capture_output=True, text=True, timeout=RUN_TIMEOUT_S + 60)
    out = proc.stdout + proc.stderr
    if proc.returncode != 0:
        logs = "\n".join(f"--- {log}\n{log.read_text()[-3000:]}"
                         for log in sorted((workdir / ".snakemake" / "slurm_logs").rglob("*.log")))
        timed_out = " (timed out)" if proc.returncode in (124, 137) else ""
        pytest.fail(f"snakemake --profile slurm failed{timed_out} ({proc.returncode}):\n{out[-6000:]}\n{logs}")
    run_id = re.search(r"SLURM run ID: (\S+)", out).group(1)
    fields = ["JobID", "JobName", "Partition", "State", "ExitCode", "AllocTRES", "TimelimitRaw", "Comment"]
    sacct = subprocess.run(["sacct", "-X", "--parsable2", "--noheader", "--starttime", "now-1days",
                            "--name", run_id, "--format", ",".join(fields)],
                           env=slurm_cluster, capture_output=True, text=True, check=True, timeout=60)
    jobs = [dict(zip(fields, line.split("|"))) for line in sacct.stdout.splitlines() if line]
    print(f"SLURM run {run_id}:\n" + sacct.stdout)
    return workdir, out, jobs


def job_rule(comment: str, groups: set[str]) -> str:
    """The rule (or group) of a job from the comment the plugin sets: rule_<rule>[_wildcards_<values>],
    or rule_<group>_<rules> for a group job."""
    name = comment.removeprefix("rule_").split("_wildcards_")[0]
    return next((group for group in groups if name.startswith(f"{group}_")), name)


def test_every_job_went_through_slurm_and_completed(slurm_run):
    workdir, out, jobs = slurm_run
    groups = set(pairs(load_profile()["groups"]).values())
    assert all(job["State"] == "COMPLETED" and job["ExitCode"] == "0:0" for job in jobs), jobs
    by_rule = {}
    for job in jobs:
        rule = job_rule(job["Comment"], groups)
        by_rule[rule] = by_rule.get(rule, 0) + 1
    assert by_rule == EXPECTED_JOBS, jobs
    # every job snakemake ran was one of those sbatch submissions: none ran on the submit host
    submitted = re.findall(r"has been submitted with SLURM jobid (\d+)", out)
    assert sorted(submitted, key=int) == sorted((job["JobID"] for job in jobs), key=int)
    for shard in SHARDS:
        assert (workdir / "results" / "smoke" / "crops" / f"{shard}.parquet").stat().st_size > 0
        assert any((workdir / "results" / "smoke" / "crops" / shard).iterdir())
        assert (workdir / "results" / "smoke" / "detect" / f"{shard}.parquet").exists()


def test_jobs_got_the_resources_the_profile_declares(slurm_run):
    _, _, jobs = slurm_run
    profile = load_profile()
    default = profile["default-resources"]
    gpu = profile["set-resources"][GPU_RULE]
    groups = pairs(profile["groups"])
    components = {group: int(n) for group, n in pairs(profile["group-components"]).items()}
    for job in jobs:
        rule = job_rule(job["Comment"], set(groups.values()))
        alloc = tres(job["AllocTRES"])
        if rule == GPU_RULE:
            gpus = evaluate(gpu["gpu"])
            expected = {"partition": gpu["slurm_partition"], "cpu": evaluate(gpu["cpus_per_gpu"]) * gpus,
                        "mem_mb": evaluate(gpu["mem_mb"]), "gpu": gpus, "minutes": evaluate(gpu["runtime"])}
        else:
            # a group job asks for the sum of its parallel jobs' CPUs and memory, and their runtime
            width = min(len(SHARDS), components[rule]) if rule in components else 1
            expected = {"partition": default["slurm_partition"], "cpu": evaluate(default["cpus_per_task"]) * width,
                        "mem_mb": evaluate(default["mem_mb"]) * width, "gpu": 0,
                        "minutes": evaluate(default["runtime"])}
        got = {"partition": job["Partition"], "cpu": int(alloc["cpu"]), "mem_mb": megabytes(alloc["mem"]),
               "gpu": int(alloc.get("gres/gpu", 0)), "minutes": int(job["TimelimitRaw"])}
        assert got == expected, (rule, job)
