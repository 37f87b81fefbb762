"""The embedded demo dataset: layout, decoded frames, determinism, limits, detectability."""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from robust_deepfake.datasets import demo
from robust_deepfake.datasets.demo import MAX_IDENTITIES, render_demo

SMALL = dict(identities=3, videos_per_identity=1, frames_per_video=10, fps=5, size=128,
             images_per_identity=1)


def decode(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


@pytest.fixture(scope="module")
def small_demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    table = render_demo(out, seed=0, **SMALL)
    return out, table


def test_layout_and_table(small_demo):
    out, table = small_demo
    assert list(table.columns) == ["identity", "kind", "path", "source"]
    assert list(table["identity"].unique()) == ["astronaut", "grace_hopper", "camera"]
    assert len(table) == 3 * 2
    for row in table.itertuples():
        path = Path(row.path)
        assert path.is_file() and path.stat().st_size > 0
        assert path.parent == out / "real" / row.identity
        assert path.name == ("clip0.mp4" if row.kind == "video" else "still0.png")
    # no temporary files left behind
    assert not [p for p in out.rglob("*") if p.name.startswith(".")]
    sources = (out / "SOURCES.md").read_text()
    for name in ("astronaut", "grace_hopper", "camera", "public domain", "CC0"):
        assert name in sources


def test_decoded_video_and_still(small_demo):
    out, _ = small_demo
    frames = decode(out / "real" / "astronaut" / "clip0.mp4")
    assert len(frames) == SMALL["frames_per_video"]
    assert all(f.shape == (SMALL["size"], SMALL["size"], 3) for f in frames)
    # the camera moves: consecutive frames differ, yet stay alike
    assert np.abs(frames[0].astype(int) - frames[-1].astype(int)).mean() > 2
    with av.open(str(out / "real" / "astronaut" / "clip0.mp4")) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name in ("h264", "mpeg4")
        assert stream.average_rate == SMALL["fps"]
        keyframes = [i for i, f in enumerate(container.decode(stream)) if f.key_frame]
    assert keyframes == [0, 5]  # a keyframe every second
    still = cv2.imread(str(out / "real" / "astronaut" / "still0.png"))
    assert still.shape == (SMALL["size"], SMALL["size"], 3)


def test_deterministic_for_a_seed_whatever_the_workers(small_demo, tmp_path):
    """The fixture renders on one thread, `again` on three: identities in parallel, same files."""
    out, _ = small_demo
    args = dict(SMALL, identities=3)
    again = render_demo(tmp_path / "again", seed=0, workers=3, **args)
    render_demo(tmp_path / "other", seed=1, **args)
    for row in again.itertuples():
        rel = Path(row.path).relative_to(tmp_path / "again")
        first, second, third = out / rel, Path(row.path), tmp_path / "other" / rel
        if row.kind == "video":
            a, b, c = decode(first), decode(second), decode(third)
            assert all(np.array_equal(x, y) for x, y in zip(a, b))
            assert not all(np.array_equal(x, z) for x, z in zip(a, c))
        else:
            assert first.read_bytes() == second.read_bytes()
            assert first.read_bytes() != third.read_bytes()
    assert (out / "SOURCES.md").read_text() == (tmp_path / "again" / "SOURCES.md").read_text()


def test_identity_does_not_depend_on_how_many(small_demo, tmp_path):
    out, _ = small_demo
    render_demo(tmp_path, seed=0, **dict(SMALL, identities=1, images_per_identity=0))
    a = decode(out / "real" / "astronaut" / "clip0.mp4")
    b = decode(tmp_path / "real" / "astronaut" / "clip0.mp4")
    assert all(np.array_equal(x, y) for x, y in zip(a, b))


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="face sources"):
        render_demo(tmp_path, seed=0, **dict(SMALL, identities=MAX_IDENTITIES + 1))
    with pytest.raises(ValueError, match="even"):
        render_demo(tmp_path, seed=0, **dict(SMALL, size=129))
    assert not (tmp_path / "real").exists()


def test_sources_catalogue():
    sources = demo.available_identities()
    assert len(sources) == MAX_IDENTITIES == 40  # the schema's maximum of demo.identities
    names = [s.identity for s in sources]
    assert len(set(names)) == len(names)
    assert names[:3] == ["astronaut", "grace_hopper", "camera"]
    assert all(0 <= i < 100 for i in demo.LFW_INDICES)  # faces only, never the non-face half


def test_mtcnn_finds_the_faces(tmp_path):
    """First frame of every default identity, decoded, through the pipeline's MTCNN set-up."""
    pytest.importorskip("torch")
    facenet = pytest.importorskip("facenet_pytorch")
    table = render_demo(tmp_path, identities=12, videos_per_identity=1, frames_per_video=2, fps=15,
                        size=256, images_per_identity=1, seed=0)
    frames = []
    for row in table.itertuples():
        if row.kind == "video":
            frames.append(decode(Path(row.path))[0])
        else:
            frames.append(cv2.cvtColor(cv2.imread(row.path), cv2.COLOR_BGR2RGB))
    mtcnn = facenet.MTCNN(keep_all=True, min_face_size=40, thresholds=[0.6, 0.7, 0.7], device="cpu")
    _, probs = mtcnn.detect(np.stack(frames))
    found = [p is not None and p[0] is not None and float(np.max(p)) >= 0.9 for p in probs]
    assert np.mean(found) >= 0.9, f"faces found in {sum(found)}/{len(found)} frames"
