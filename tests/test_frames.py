"""Frame sampling and decoding: which frames are picked, that sparse decoding equals sequential
decoding, and that bad media become error rows without stopping the good ones (through the
optional frame images stage, which writes what detection and cropping decode).

Small videos are encoded here with PyAV (B-frames and a short GOP, so seeking and reordering are
really exercised); the real videos from ../shared/data check counts and pixels on real encoders.
"""

from __future__ import annotations

import logging
from fractions import Fraction
from functools import partial
from pathlib import Path

import av
import cv2
import numpy as np
import pandas as pd
import pytest

from robust_deepfake.stages.frames import save_frames
from robust_deepfake.video import decode_ahead, frame_indices, media_frames, read_video_frames
from robust_deepfake.images import MediaError
from robust_deepfake.manifest import FRAME_COLUMNS, MEDIA_COLUMNS, read_manifest, write_manifest
from robust_deepfake.paths import media_slug

GOP = 10
N_FRAMES = 30


def _codec() -> tuple[str, dict[str, str]]:
    """libx264 with forced B-frames (decode order != presentation order) and keyframes exactly
    every GOP frames even on noise; mpeg4 (no B-frames) where libx264 is missing."""
    try:
        av.codec.Codec("libx264", "w")
        return "libx264", {"x264-params": "bframes=2:b-adapt=0:scenecut=0"}
    except av.codec.codec.UnknownCodecError:
        return "mpeg4", {}


def noise_frames(n: int = N_FRAMES, height: int = 64, width: int = 64) -> list[np.ndarray]:
    """Every frame different, so a frame taken from the wrong index cannot pass as equal."""
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(n)]


def encode(path: Path, frames: list[np.ndarray], pts: list[int] | None = None, rotation: int | None = None,
           tags: dict[str, str] | None = None, container_options: dict[str, str] | None = None) -> Path:
    """Encode RGB frames; `pts` in milliseconds gives irregular timing, `rotation` a display matrix
    (counter-clockwise degrees, as PyAV reads it back), `tags` stream metadata."""
    with av.open(str(path), "w", options=container_options or {}) as container:
        codec, options = _codec()
        stream = container.add_stream(codec, rate=15, options=options)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        stream.gop_size = GOP
        stream.codec_context.time_base = Fraction(1, 1000) if pts else Fraction(1, 15)
        if rotation is not None:
            stream.set_display_rotation(rotation)
        stream.metadata.update(tags or {})
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = pts[i] if pts else i
            frame.time_base = stream.codec_context.time_base
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def sequential(path: Path, keep: set[int] | None = None) -> tuple[dict[int, np.ndarray], int]:
    """The reference: decode every frame in turn, number them as they come out."""
    kept, count = {}, 0
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if keep is None or i in keep:
                kept[i] = frame.to_ndarray(format="rgb24")
            count += 1
    return kept, count


def assert_frames_equal(got: dict[int, np.ndarray], expected: dict[int, np.ndarray]) -> None:
    assert sorted(got) == sorted(expected)
    for i in expected:
        assert got[i].dtype == np.uint8
        assert np.array_equal(got[i], expected[i]), f"frame {i} differs from sequential decoding"


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    return encode(tmp_path_factory.mktemp("video") / "noise.mp4", noise_frames())


def media_table(rows: list[dict]) -> pd.DataFrame:
    base = {"dataset": "test", "label": 0, "method": "real", "source_id": None, "target_id": None,
            "identity": "x", "official_split": None, "shard": 0}
    df = pd.DataFrame([{**base, **r} for r in rows])
    df["label"] = df["label"].astype("int8")
    df["shard"] = df["shard"].astype("int32")
    return df[MEDIA_COLUMNS]


# --- frame_indices -------------------------------------------------------------------------------

def test_linspace_spreads_over_the_whole_video():
    assert frame_indices(275, "linspace", 8, 10, 32) == [0, 39, 78, 117, 156, 195, 234, 274]
    assert frame_indices(105, "linspace", 32, 10, 32) == sorted(set(np.linspace(0, 104, 32, dtype=int)))


def test_linspace_on_short_videos_gives_every_frame_once():
    assert frame_indices(5, "linspace", 8, 10, 32) == [0, 1, 2, 3, 4]
    assert frame_indices(1, "linspace", 8, 10, 32) == [0]
    assert frame_indices(0, "linspace", 8, 10, 32) == []


def test_stride_takes_every_kth_frame_up_to_the_cap():
    assert frame_indices(30, "stride", 8, 10, 32) == [0, 10, 20]
    assert frame_indices(1000, "stride", 8, 3, 5) == [0, 3, 6, 9, 12]
    assert frame_indices(1, "stride", 8, 10, 32) == [0]
    assert frame_indices(10, "stride", 8, 10, 32) == [0]


@pytest.mark.parametrize("args", [(30, "random", 8, 10, 32), (30, "linspace", 0, 10, 32),
                                  (30, "stride", 8, 0, 32), (30, "stride", 8, 10, 0)])
def test_bad_sampling_config_is_rejected(args):
    with pytest.raises(ValueError):
        frame_indices(*args)


# --- read_video_frames on generated videos -------------------------------------------------------

def test_only_gops_with_wanted_frames_are_decoded(video):
    """Frames 3 and 25 lie in GOPs 0 and 2: decoding 0..3 and 20..25 plus the few packets B-frame
    reordering needs stays under 20; decoding GOP 1 as well, or going on to the end, would not."""
    frames, info = read_video_frames(video, [25, 3])
    assert info["frame_count"] == N_FRAMES
    assert info["decoded_frames"] < 20
    assert_frames_equal(frames, sequential(video, {3, 25})[0])


def test_frames_no_other_refers_to_are_not_decoded(video):
    """Frames 9 and 19 end GOPs 0 and 1: all 20 packets up to them go to the decoder, but the
    B-frames among them that nothing refers to (and nobody wants) are skipped, not decoded."""
    if _codec()[0] != "libx264":
        pytest.skip("needs libx264's B-frames")
    frames, info = read_video_frames(video, [9, 19])
    assert info["decoded_frames"] >= 20
    assert info["pictures"] < info["decoded_frames"] - 4
    assert_frames_equal(frames, sequential(video, {9, 19})[0])


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("mode,per_video,stride", [("linspace", 8, 1), ("linspace", 64, 1), ("stride", 1, 7)])
def test_sampled_frames_equal_sequential_decoding(video, mode, per_video, stride, threads):
    frames, info = read_video_frames(video, lambda n: frame_indices(n, mode, per_video, stride, 32), threads)
    expected_idx = frame_indices(N_FRAMES, mode, per_video, stride, 32)
    assert sorted(frames) == expected_idx
    assert info["decoded_frames"] <= N_FRAMES
    assert_frames_equal(frames, sequential(video, set(expected_idx))[0])
    assert not info["vfr"] and info["rotation"] == 0
    assert info["fps"] == pytest.approx(15.0)


def test_media_frames_come_in_either_channel_order(video, tmp_path):
    """Cropping asks for BGR, face detection for RGB: the same pixels either way, for a video (the
    decoder's RGB) and an image (OpenCV's BGR)."""
    image = np.zeros((24, 32, 3), np.uint8)
    image[..., 0], image[..., 1], image[..., 2] = 30, 120, 250  # distinct channels: an order mix-up shows
    cv2.imwrite(str(tmp_path / "still.png"), image)
    for record, wanted in (({"path": str(video), "kind": "video"}, [0, 7]),
                           ({"path": str(tmp_path / "still.png"), "kind": "image"}, [0])):
        bgr, _, _ = media_frames(record, wanted)
        rgb, _, _ = media_frames(record, wanted, rgb=True)
        assert sorted(bgr) == sorted(rgb) == wanted
        for i in wanted:
            np.testing.assert_array_equal(rgb[i], bgr[i][..., ::-1])
    decoded, _ = read_video_frames(video, [0, 7])
    np.testing.assert_array_equal(media_frames({"path": str(video), "kind": "video"}, [7], rgb=True)[0][7], decoded[7])


def test_out_of_range_index_is_a_media_error(video):
    with pytest.raises(MediaError, match=r"out of range \(video has 30 frames\)"):
        read_video_frames(video, [0, 30])


def test_variable_frame_rate_is_flagged_and_indexed_by_count(tmp_path, caplog):
    pts = [i * 66 + (i % 3) * 30 for i in range(N_FRAMES)]  # steps of 96, 96, 6 ms
    path = encode(tmp_path / "vfr.mp4", noise_frames(), pts=pts)
    wanted = frame_indices(N_FRAMES, "linspace", 8, 10, 32)
    with caplog.at_level(logging.INFO, logger="robust_deepfake"):
        frames, info = read_video_frames(path, wanted)
    assert info["vfr"] is True
    assert "variable frame rate" in caplog.text
    assert info["frame_count"] == N_FRAMES
    assert_frames_equal(frames, sequential(path, set(wanted))[0])


def upright_picture(height: int = 64, width: int = 48) -> np.ndarray:
    """Tall picture, bright at the top, dark elsewhere: upright only if the top rows are bright."""
    image = np.full((height, width, 3), 20, np.uint8)
    image[: height // 4] = 235
    return image


def assert_upright(frame: np.ndarray) -> None:
    assert frame.shape == (64, 48, 3)
    assert frame[:12].mean() > 200, "bright band is not at the top"
    assert frame[20:].mean() < 60


def test_display_matrix_rotation_is_applied(tmp_path, caplog):
    # Stored turned 90° clockwise; the matrix says to turn it 90° counter-clockwise for display.
    stored = np.ascontiguousarray(np.rot90(upright_picture(), k=-1))
    path = encode(tmp_path / "portrait.mp4", [stored] * 12, rotation=90)
    with caplog.at_level(logging.INFO, logger="robust_deepfake"):
        frames, info = read_video_frames(path, [0, 11])
    assert info["rotation"] == 90
    assert "rotation" in caplog.text
    for frame in frames.values():
        assert_upright(frame)


def test_rotate_tag_is_applied(tmp_path):
    """Matroska keeps a `rotate` stream tag (clockwise degrees, the older convention)."""
    stored = np.ascontiguousarray(np.rot90(upright_picture(), k=1))
    path = encode(tmp_path / "tagged.mkv", [stored] * 12, tags={"rotate": "90"})
    frames, info = read_video_frames(path, [5])
    assert info["rotation"] == 270
    assert_upright(frames[5])


# --- read_video_frames on the real videos --------------------------------------------------------

@pytest.mark.shared_data
@pytest.mark.parametrize("name,count", [("short_hamilton_clip.mp4", 275), ("facenet_pytorch_video.mp4", 105)])
@pytest.mark.parametrize("threads", [1, 2])
def test_real_videos_sampled_equal_sequential(shared_data, name, count, threads):
    path = shared_data / "real_videos" / name
    expected_idx = sorted(set(np.linspace(0, count - 1, 32, dtype=int).tolist()))
    frames, info = read_video_frames(path, lambda n: frame_indices(n, "linspace", 32, 10, 32), threads)
    reference, sequential_count = sequential(path, set(expected_idx))
    assert info["frame_count"] == count == sequential_count
    assert sorted(frames) == expected_idx
    assert_frames_equal(frames, reference)
    assert info["decoded_frames"] <= count
    assert not info["vfr"]


# --- save_frames (the sampled frames as images) --------------------------------------------------

def extract_frames(media: pd.DataFrame, out_dir: Path, mode: str, per_video: int, stride: int, max_per_video: int,
                   image_format: str) -> pd.DataFrame:
    sample = partial(frame_indices, mode=mode, per_video=per_video, stride=stride, max_per_video=max_per_video)
    return save_frames(media, out_dir, sample, image_format)


@pytest.fixture
def bad_media(tmp_path, video) -> dict[str, tuple[Path, str]]:
    """Each bad input, and the words its error must contain."""
    data = video.read_bytes()
    fast = encode(tmp_path / "fast.mp4", noise_frames(), container_options={"movflags": "faststart"}).read_bytes()
    made = {
        "truncated.mp4": (data[: len(data) // 2], "not a readable video"),
        "truncated_faststart.mp4": (fast[: len(fast) // 2], "incomplete"),
        "text.mp4": (b"this is a text file, not a video\n", "not a readable video"),
        "empty.mp4": (b"", "not a readable video"),
        "noise.png": (np.random.default_rng(1).integers(0, 256, 500, dtype=np.uint8).tobytes(), "unreadable image"),
    }
    out = {}
    for name, (content, words) in made.items():
        (tmp_path / name).write_bytes(content)
        out[name] = (tmp_path / name, words)
    zero = tmp_path / "zero_frames.avi"
    with av.open(str(zero), "w") as container:  # header and stream, no packets
        stream = container.add_stream("mpeg4", rate=15)
        stream.width, stream.height = 64, 64
        container.start_encoding()
    out["zero_frames.avi"] = (zero, "no frames")
    out["missing.mp4"] = (tmp_path / "missing.mp4", "file not found")
    return out


def test_save_frames_bad_media_become_error_rows(tmp_path, video, bad_media, caplog):
    image = tmp_path / "face.png"
    cv2.imwrite(str(image), noise_frames(1, 40, 30)[0])
    rows = [{"media_id": "good/video.mp4", "path": str(video), "kind": "video"},
            {"media_id": "good/image.png", "path": str(image), "kind": "image"}]
    rows += [{"media_id": f"bad/{name}", "path": str(path), "kind": "image" if name.endswith(".png") else "video"}
             for name, (path, _) in bad_media.items()]
    rows.append({"media_id": "bad/kind", "path": str(tmp_path / "sound.wav"), "kind": "audio"})
    media = media_table(rows)
    media["attr_Smiling"] = np.int8(1)
    out_dir = tmp_path / "frames"

    with caplog.at_level(logging.WARNING, logger="robust_deepfake"):
        frames = extract_frames(media, out_dir, "linspace", 8, 10, 32, "png")

    assert list(frames.columns) == FRAME_COLUMNS + ["attr_Smiling", "frame_path"]
    good = frames[frames["media_id"] == "good/video.mp4"]
    assert good["frame_idx"].tolist() == frame_indices(N_FRAMES, "linspace", 8, 10, 32)
    assert (good["frame_count"] == N_FRAMES).all() and good["error"].isna().all()
    assert (good["width"] == 64).all() and (good["height"] == 64).all()
    reference, _ = sequential(video, set(good["frame_idx"]))
    for idx, frame_path in zip(good["frame_idx"], good["frame_path"]):
        assert Path(frame_path) == out_dir / media_slug("good/video.mp4") / f"{idx:06d}.png"
        assert np.array_equal(cv2.imread(frame_path), cv2.cvtColor(reference[idx], cv2.COLOR_RGB2BGR))

    still = frames[frames["media_id"] == "good/image.png"].iloc[0]
    assert (still["frame_idx"], still["frame_count"], still["width"], still["height"]) == (0, 1, 30, 40)
    assert np.array_equal(cv2.imread(still["frame_path"]), cv2.imread(str(image)))

    for name, (path, words) in bad_media.items():
        row = frames[frames["media_id"] == f"bad/{name}"]
        assert len(row) == 1, name
        error = row["error"].iloc[0]
        assert str(path) in error and words in error, (name, error)
        assert row[["frame_idx", "frame_count", "frame_path", "width", "height"]].isna().all(axis=None)
        assert str(path) in caplog.text
    odd = frames[frames["media_id"] == "bad/kind"]
    assert len(odd) == 1 and "unknown media kind 'audio'" in odd["error"].iloc[0]
    assert str(video) not in caplog.text and str(image) not in caplog.text
    assert (frames["attr_Smiling"] == 1).all()

    write_manifest(frames, tmp_path / "frames.parquet", columns=FRAME_COLUMNS + ["frame_path"])
    back = read_manifest(tmp_path / "frames.parquet")
    assert len(back) == len(frames) and back["frame_idx"].isna().sum() == len(bad_media) + 1


def damage_packet(path: Path, out: Path, index: int) -> int:
    """A copy of `path` whose packet at presentation position `index` carries garbage of its own
    length (the file stays demuxable); returns the damaged frame's presentation index."""
    with av.open(str(path)) as container:
        packets = [(p.pts, p.pos, p.size) for p in container.demux(video=0) if p.size]
    order = sorted(pts for pts, _, _ in packets)
    pts, pos, size = next(p for p in packets if p[0] == order[index])
    data = bytearray(path.read_bytes())
    data[pos:pos + size] = bytes(0xFF if k % 2 else 0x00 for k in range(size))
    out.write_bytes(bytes(data))
    return order.index(pts)


def test_a_damaged_packet_loses_its_frame_only(tmp_path, video, caplog):
    """One undecodable packet: the frames that decode are kept, the lost one is recorded with why."""
    damaged = damage_packet(video, tmp_path / "damaged.mp4", GOP)  # a keyframe: its GOP's frames suffer
    media = media_table([{"media_id": "a/damaged.mp4", "path": str(tmp_path / "damaged.mp4"), "kind": "video"}])
    with caplog.at_level(logging.WARNING, logger="robust_deepfake"):
        frames = extract_frames(media, tmp_path / "frames", "stride", 8, 1, N_FRAMES, "png")
    assert frames["frame_idx"].tolist() == list(range(N_FRAMES))  # one row per wanted frame, in order
    lost = frames[frames["error"].notna()]
    assert damaged in lost["frame_idx"].tolist() and len(lost) < N_FRAMES // 2, lost[["frame_idx", "error"]]
    assert lost["frame_path"].isna().all() and (lost["frame_count"] == N_FRAMES).all()
    assert all(f"damaged.mp4: frame {i} could not be decoded: packet " in e
               for i, e in zip(lost["frame_idx"], lost["error"]))
    kept = frames[frames["error"].isna()]
    assert len(kept) >= N_FRAMES - GOP and all(Path(p).is_file() for p in kept["frame_path"])
    first_gop = kept[kept["frame_idx"] < GOP]  # before the damage: exactly what sequential decoding gives
    reference, _ = sequential(video, set(first_gop["frame_idx"]))
    for idx, frame_path in zip(first_gop["frame_idx"], first_gop["frame_path"]):
        assert np.array_equal(cv2.imread(frame_path), cv2.cvtColor(reference[idx], cv2.COLOR_RGB2BGR))
    assert "could not be decoded" in caplog.text and "decoding goes on" in caplog.text


def test_a_shard_without_media_still_gets_its_frame_folder(tmp_path):
    frames = extract_frames(pd.DataFrame(columns=MEDIA_COLUMNS), tmp_path / "0007", "linspace", 8, 10, 32, "png")
    assert frames.empty and (tmp_path / "0007").is_dir()


def test_truncated_matroska_is_read_with_a_warning(tmp_path, caplog):
    """Matroska has no frame count to check against: the readable part is used, and the shortfall
    against the declared duration is logged."""
    data = encode(tmp_path / "full.mkv", noise_frames()).read_bytes()
    path = tmp_path / "truncated.mkv"
    path.write_bytes(data[: len(data) // 2])
    with caplog.at_level(logging.WARNING, logger="robust_deepfake"):
        frames, info = read_video_frames(path, [0, 5])
    assert 5 < info["frame_count"] < N_FRAMES
    assert "may be truncated" in caplog.text
    assert_frames_equal(frames, sequential(path, {0, 5})[0])


def test_save_frames_jpg_and_stride(tmp_path, video):
    media = media_table([{"media_id": "a/b.mp4", "path": str(video), "kind": "video"}])
    frames = extract_frames(media, tmp_path, "stride", 8, 7, 3, "jpg")
    assert frames["frame_idx"].tolist() == [0, 7, 14]
    assert all(p.endswith(".jpg") and Path(p).is_file() for p in frames["frame_path"])


def test_save_frames_of_nothing_has_the_columns(tmp_path):
    frames = extract_frames(pd.DataFrame(columns=MEDIA_COLUMNS), tmp_path, "linspace", 8, 10, 32, "png")
    assert list(frames.columns) == FRAME_COLUMNS + ["frame_path"] and frames.empty


def test_decode_ahead_keeps_the_order_and_works_one_media_ahead():
    """The next media is decoded while the caller works on the current one, never further ahead
    (so at most two media's frames are held)."""
    import time

    started: list[int] = []

    def decode(k: int) -> int:
        started.append(k)
        return k * 10

    seen = []
    for k, value in decode_ahead(range(4), decode):
        time.sleep(0.05)  # the caller's work on k: the worker has time to run ahead if it would
        assert max(started) == min(k + 1, 3), (k, started)
        seen.append((k, value))
    assert seen == [(0, 0), (1, 10), (2, 20), (3, 30)]
    with pytest.raises(ValueError, match="bad media"):
        list(decode_ahead([1], lambda k: (_ for _ in ()).throw(ValueError("bad media"))))
