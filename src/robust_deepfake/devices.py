"""One device setting for every neural stage, so one config runs on a laptop and on a GPU node."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch

PRECISIONS: tuple[str, ...] = ("fp32", "bf16")


def resolve_device(device: str) -> torch.device:
    """'auto' takes CUDA when present; an explicit 'cuda' without a GPU is a config error, said early."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' is configured but no CUDA device is available (use 'auto' or 'cpu')")
    return torch.device(device)


def module_device(module: torch.nn.Module) -> torch.device:
    """Where a model's weights are, so inputs built for it (labels, images) go to the same place."""
    return next(module.parameters()).device


def job_cpus(threads: int) -> int:
    """The CPUs a job may use: the rule's threads, or, inside a SLURM allocation, every CPU the
    allocation gave it. The cluster profile asks for CPUs per GPU (--cpus-per-gpu), which Snakemake's
    `threads` never sees, so without this a GPU job would leave them idle."""
    if "SLURM_JOB_ID" in os.environ and hasattr(os, "sched_getaffinity"):
        return max(threads, len(os.sched_getaffinity(0)))
    return threads


def start_job(threads: int) -> int:
    """Give torch the job's CPUs (job_cpus) and return how many that is."""
    cpus = job_cpus(threads)
    torch.set_num_threads(cpus)
    return cpus


def per_device(value: int | dict[str, int], device: torch.device) -> int:
    """A batch size given as one number or per device type ({cpu: 16, cuda: 256}): a GPU holds
    and wants far larger batches than a laptop's CPU, and one config serves both."""
    return value[device.type] if isinstance(value, dict) else value


@dataclass(frozen=True)
class Compute:
    """How one job runs its neural work: the device, the CPUs the job was given, the precision,
    the memory format and the data-loading workers. Built once per job (`for_job`) and handed to
    the stages, so that no stage reads the environment or the config itself."""

    device: torch.device = torch.device("cpu")
    cpus: int = 1
    precision: str = "fp32"
    channels_last: bool = False
    workers: int | str = "auto"

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")

    @classmethod
    def for_job(cls, device: str, threads: int, settings: dict) -> Compute:
        """The job's Compute from the config's `compute` block; gives torch the job's CPUs."""
        return cls(resolve_device(device), start_job(threads), settings["precision"], settings["channels_last"],
                   settings["loader_workers"])

    def loader(self) -> dict:
        """DataLoader settings. On a GPU, worker processes decode and augment the next batches
        (auto: one per CPU but the main process's) into pinned memory, so that the copy to the GPU
        overlaps the compute; on the CPU the main process's threads do the compute and workers
        would only compete with them, so auto means none there."""
        workers = self.workers
        if workers == "auto":
            workers = max(self.cpus - 1, 0) if self.device.type == "cuda" else 0
        return {"num_workers": int(workers), "pin_memory": self.device.type == "cuda",
                "persistent_workers": int(workers) > 0}

    def autocast(self) -> contextlib.AbstractContextManager:
        """bf16 autocast for `precision: bf16` (a no-op for fp32). bf16 keeps fp32's range, so no
        loss scaling is needed, unlike fp16."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16")

    def model(self, module: torch.nn.Module) -> torch.nn.Module:
        """`module` on the device, channels-last when asked (convolutions run faster in NHWC on
        tensor cores)."""
        if self.channels_last:
            return module.to(self.device, memory_format=torch.channels_last)
        return module.to(self.device)

    def images(self, batch: torch.Tensor) -> torch.Tensor:
        """An image batch (N, C, H, W) on the device in the model's memory format; asynchronous
        from pinned memory."""
        batch = batch.to(self.device, non_blocking=True)
        return batch.contiguous(memory_format=torch.channels_last) if self.channels_last else batch
