"""Checkpoint files: refused safely with a reason (never torch's advice to load them unsafely), and
an unusable training state discarded so training starts afresh."""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import zipfile

import numpy as np
import pytest
import torch

from robust_deepfake.checkpoints import CheckpointError, load_checkpoint, resumable_state, save_checkpoint
from robust_deepfake.cli import main


def bad_files(tmp_path):
    """Each kind of unusable file and the words its refusal must contain."""
    random_bytes = tmp_path / "random.pt"
    random_bytes.write_bytes(np.random.default_rng(0).bytes(3000))
    with_object = tmp_path / "object.pt"
    torch.save({"epoch": np.float64(3.0), "w": torch.zeros(2)}, with_object)
    good = tmp_path / "good.pt"
    save_checkpoint({"w": torch.zeros(3)}, good)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    return {random_bytes: "it is not a torch checkpoint",
            with_object: "it holds objects that loading would execute (it calls numpy",
            truncated: "corrupt or truncated"}


def test_unusable_files_are_refused_with_the_reason_and_no_unsafe_advice(tmp_path):
    for path, words in bad_files(tmp_path).items():
        with pytest.raises(CheckpointError) as error:
            load_checkpoint(path, what="detector checkpoint")
        message = str(error.value)
        assert message.startswith(f"detector checkpoint {path} cannot be read: ") and words in message, message
        assert "weights_only" not in message and error.value.__cause__ is None and error.value.__suppress_context__
    assert torch.equal(load_checkpoint(tmp_path / "good.pt")["w"], torch.zeros(3))


class _Payload:
    """What a malicious checkpoint holds: unpickling it calls os.system."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def test_a_malicious_pickle_is_refused_as_such_and_its_payload_never_runs(tmp_path):
    marker = tmp_path / "payload-ran"
    for name, write in {"zip.pt": lambda p: torch.save({"w": _Payload(f"touch {marker}")}, p),
                        "legacy.pt": lambda p: p.write_bytes(pickle.dumps({"w": _Payload(f"touch {marker}")}))}.items():
        write(tmp_path / name)
        with pytest.raises(CheckpointError) as error:
            load_checkpoint(tmp_path / name, what="detector checkpoint")
        message = str(error.value)
        assert "holds objects that loading would execute (it calls posix.system)" in message, message
        assert "refused and nothing in it ran" in message and "corrupt" not in message, message
    assert not marker.exists()


def test_a_folder_given_as_checkpoint_is_named_a_folder(tmp_path):
    with pytest.raises(CheckpointError, match="is a folder; give the checkpoint file inside it"):
        load_checkpoint(tmp_path, what="face swap checkpoint")


def test_the_same_weights_give_the_same_bytes(tmp_path):
    """torch named the zip's records after the random temporary file: same weights, other sha256."""
    digests = set()
    for folder in ("run1", "run2"):
        torch.manual_seed(0)
        save_checkpoint({"format": "x", "model": torch.nn.Linear(4, 2).state_dict()}, tmp_path / folder / "model.pt")
        digests.add(hashlib.sha256((tmp_path / folder / "model.pt").read_bytes()).hexdigest())
    assert len(digests) == 1
    with zipfile.ZipFile(tmp_path / "run1" / "model.pt") as archive:
        assert {name.split("/")[0] for name in archive.namelist()} == {"archive"}


def test_predict_with_a_corrupt_checkpoint_says_what_is_wrong(tmp_path, capsys):
    corrupt = tmp_path / "model.pt"
    corrupt.write_bytes(b"\x80\x02not really a checkpoint")
    image = tmp_path / "face.png"
    image.write_bytes(b"")
    assert main(["predict", str(image), "--checkpoint", str(corrupt), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert f"detector checkpoint {corrupt} cannot be read: it is not a torch checkpoint" in err
    assert "weights_only" not in err and "arbitrary code" not in err


def test_an_unusable_training_state_is_discarded_with_a_warning(tmp_path, caplog):
    state = tmp_path / "last.pt"
    assert resumable_state(state, load_checkpoint, "training state") is None  # none yet: nothing said
    state.write_bytes(b"garbage")
    with caplog.at_level(logging.WARNING):
        assert resumable_state(state, load_checkpoint, "detector training state") is None
    assert not state.exists()
    assert (f"{state} cannot be read: it is not a torch checkpoint (corrupt, truncated or another kind of file); "
            "discarding this detector training state and training from the start") in caplog.text
    save_checkpoint({"step": 3}, state)
    assert resumable_state(state, load_checkpoint, "training state") == {"step": 3}


def test_the_training_state_key_follows_params_and_inputs(tmp_path):
    from robust_deepfake.checkpoints import job_key

    data = tmp_path / "A.parquet"
    data.write_bytes(b"faces")
    key = job_key({"lr": 0.1, "code": "abc"}, [data])
    assert job_key({"code": "abc", "lr": 0.1}, [data]) == key  # the same job on the same inputs
    assert job_key({"lr": 0.2, "code": "abc"}, [data]) != key  # a setting
    assert job_key({"lr": 0.1, "code": "abd"}, [data]) != key  # the code
    written = data.stat().st_mtime_ns
    data.write_bytes(b"faces")  # rewritten with the same bytes: an upstream job reran (later, whatever the clock's step)
    os.utime(data, ns=(written + 10**9, written + 10**9))
    assert job_key({"lr": 0.1, "code": "abc"}, [data]) != key
    data.write_bytes(b"FACES")
    os.utime(data, ns=(written, written))  # other bytes at the very same time still count
    assert job_key({"lr": 0.1, "code": "abc"}, [data]) != key


def test_a_training_state_survives_a_failure_and_goes_with_success(tmp_path):
    from robust_deepfake.checkpoints import training_state

    data = tmp_path / "A.parquet"
    data.write_bytes(b"faces")
    stale = tmp_path / "home" / "training" / "0123456789ab"
    stale.mkdir(parents=True)
    with pytest.raises(RuntimeError):
        with training_state(tmp_path / "home", {"lr": 0.1}, [data]) as state:
            (state / "last.pt").write_bytes(b"epoch 3")
            raise RuntimeError("killed")
    assert not stale.exists() and (state / "last.pt").read_bytes() == b"epoch 3"  # a superseded run's state goes
    with training_state(tmp_path / "home", {"lr": 0.1}, [data]) as again:
        assert again == state and (again / "last.pt").exists()  # the killed run's own state is found
    assert not (tmp_path / "home" / "training").exists()  # a job that ends well keeps no state
