"""Decoding media: the frames a stage wants from a video, decoding as little as the container allows.

Decoding is the cost of frame extraction, and most frames of a video are not kept, so the reader
never decodes what it does not need. A first pass only demuxes packets (no decoding): it gives the
exact frame count (container headers can be wrong or 0), the presentation order (packets come in
decode order; B-frames are reordered by pts) and where the keyframes are. The second pass decodes
only the GOPs that hold wanted frames, from their keyframe up to the last wanted frame, and maps
the decoded frames to presentation indices by pts. The result equals decoding every frame in turn.

Indices are by frame count, not by time, also for variable-frame-rate videos (as the
robust-detector reference and DeepfakeBench do); VFR and display rotation are logged per video.
"""

from __future__ import annotations

import bisect
import itertools
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import av
import cv2
import numpy as np

from robust_deepfake.images import MediaError, read_image

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")
_END = object()

Mode = Literal["linspace", "stride"]
MODES: tuple[str, ...] = ("linspace", "stride")

# A pts step further than this from the median step (and more than one tick, so the rounding of
# 29.97 fps into a 1/1000 time base is not VFR) marks a video as variable frame rate.
VFR_TOLERANCE = 0.1


def frame_indices(frame_count: int, mode: Mode, per_video: int, stride: int,
                  max_per_video: int) -> list[int]:
    """Which frames to keep. linspace spreads `per_video` frames over the whole video (as the robust-detector
    reference and DeepfakeBench do) so short and long videos give comparable samples; duplicates from rounding are
    dropped, so a video shorter than `per_video` gives all its frames. stride keeps every
    `stride`-th frame from the first, at most `max_per_video`."""
    if mode not in MODES:
        raise ValueError(f"frame sampling mode must be one of {MODES}, got {mode!r}")
    if frame_count <= 0:
        return []
    if mode == "linspace":
        if per_video < 1:
            raise ValueError(f"per_video must be at least 1, got {per_video}")
        return sorted(set(np.linspace(0, frame_count - 1, per_video, dtype=int).tolist()))
    if stride < 1 or max_per_video < 1:
        raise ValueError(f"stride and max_per_video must be at least 1, got {stride} and {max_per_video}")
    return list(range(0, frame_count, stride))[:max_per_video]


@dataclass(frozen=True)
class _PacketTable:
    """What demuxing alone tells about a video stream. Lists are in decode (file) order."""

    pts: list[int]
    dts: list[int | None]
    keyframe: list[bool]
    presentation: list[int]  # pts of the shown frames, sorted: position = frame index
    position: dict[int, int]  # pts -> decode-order position

    @property
    def frame_count(self) -> int:
        return len(self.presentation)


def _demux(container: av.container.InputContainer, stream: av.video.stream.VideoStream,
           path: Path) -> _PacketTable:
    """Read packets without decoding them (cheap: no pixels are made). Packets flagged discard
    (outside an edit list) are decoded as references but never shown, so they are not frames."""
    pts: list[int] = []
    dts: list[int | None] = []
    keyframe: list[bool] = []
    shown: list[int] = []
    try:
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            if packet.is_corrupt:
                raise MediaError(path, f"truncated or corrupt file: packet {len(pts)} is incomplete")
            if packet.pts is None:
                raise MediaError(path, f"packet {len(pts)} has no timestamp, frames cannot be ordered")
            pts.append(packet.pts)
            dts.append(packet.dts)
            keyframe.append(packet.is_keyframe)
            if not packet.is_discard:
                shown.append(packet.pts)
    except av.error.FFmpegError as e:
        raise MediaError(path, f"cannot demux after {len(pts)} packets: {_reason(e)}") from None
    if len(set(pts)) != len(pts):
        raise MediaError(path, "several packets share a timestamp, frames cannot be ordered")
    if not shown:
        raise MediaError(path, "video stream has no frames")
    if stream.frames > len(pts):
        raise MediaError(path, f"truncated file: header lists {stream.frames} frames, only {len(pts)} are present")
    return _PacketTable(pts=pts, dts=dts, keyframe=keyframe, presentation=sorted(shown),
                        position={p: i for i, p in enumerate(pts)})


def _plan(table: _PacketTable, wanted: Sequence[int]) -> list[tuple[int, set[int]]]:
    """Group the wanted pts by the keyframe their decoding must start from, in decode order.

    The start is the last keyframe at or before the frame in decode order *and* presentation
    order: a frame shown before a later-decoded keyframe (an open GOP's leading picture) may refer
    to the previous GOP, so it starts one GOP earlier. A stream not opening with a keyframe starts
    at packet 0, as sequential decoding would."""
    keys = [i for i, k in enumerate(table.keyframe) if k]
    groups: dict[int, set[int]] = {}
    for p in wanted:
        d = table.position[p]
        j = bisect.bisect_right(keys, d) - 1
        while j >= 0 and table.pts[keys[j]] > p:
            j -= 1
        groups.setdefault(keys[j] if j >= 0 else 0, set()).add(p)
    return sorted(groups.items())


def _seek(container: av.container.InputContainer, stream: av.video.stream.VideoStream,
          table: _PacketTable, key_pos: int, path: Path) -> tuple[Iterator[av.Packet], int]:
    """Jump to the keyframe at decode position `key_pos`; return the packets from the landing
    point and that point. Containers index keyframes by different clocks (MP4 by a shifted dts,
    Matroska by pts), so the keyframe's pts is tried first (exact in both) and its smaller dts
    only if that overshoots; landing before the keyframe merely decodes a few frames more."""
    targets = [table.pts[key_pos]]
    if table.dts[key_pos] is not None and table.dts[key_pos] < table.pts[key_pos]:
        targets.append(table.dts[key_pos])
    for target in targets:
        try:
            container.seek(target, backward=True, any_frame=False, stream=stream)
            packets = container.demux(stream)
            first = next(p for p in packets if p.size)
        except (av.error.FFmpegError, StopIteration) as e:
            raise MediaError(path, f"cannot seek to the keyframe at packet {key_pos}: {_reason(e)}") from None
        landing = table.position.get(first.pts)
        if landing is not None and landing <= key_pos:
            return itertools.chain([first], packets), landing
    raise MediaError(path, f"seeking to the keyframe at packet {key_pos} lands after it")


def _decode_wanted(container: av.container.InputContainer, stream: av.video.stream.VideoStream,
                   table: _PacketTable, wanted: dict[int, int], path: Path,
                   ) -> tuple[dict[int, np.ndarray], dict[int, str], float, int, int]:
    """Decode only the GOPs that hold wanted frames, stopping as soon as a GOP's last wanted frame
    comes out. A seek is made only when the next keyframe is ahead of the decode position:
    otherwise decoding on is cheaper and keeps the decoder's references. `wanted` maps pts to
    frame index. Frames become RGB arrays at once, while still in the CPU cache: converting them
    after decoding had moved on was measurably slower on 1080p video.

    Of the packets between a keyframe and a wanted frame, the decoder skips those of frames that
    no other frame refers to (FFmpeg's skip_frame NONREF, set per packet: B-frames in most
    encodes), unless the frame itself is wanted: nothing depends on them, so the wanted frames
    come out the same, and 40 % of the FaceForensics++ frames need no decoding at all.

    A packet the decoder refuses (one damaged packet in a long video) is skipped and decoding goes
    on, as players do: only the frames that never come out are lost, each with the reason.
    Returns the wanted frames by pts, the reasons of those that failed by pts, the display-matrix
    rotation of the first frame decoded, how many packets were sent to the decoder and how many
    pictures it made of them."""
    got: dict[int, np.ndarray] = {}
    problems: list[str] = []
    matrix_rotation = 0.0
    decoded = pictures = 0
    codec = stream.codec_context
    packets: Iterator[av.Packet] = container.demux(stream)
    current = -1  # decode position of the last packet sent to the decoder
    for key_pos, group in _plan(table, sorted(wanted)):
        if group <= got.keys():
            continue
        if key_pos > current + 1:
            packets, landing = _seek(container, stream, table, key_pos, path)
            current = landing - 1
        try:
            for packet in packets:
                if packet.size:
                    current = table.position[packet.pts]
                    decoded += 1
                    codec.skip_frame = "DEFAULT" if packet.pts in wanted else "NONREF"
                try:
                    frames = packet.decode()
                except av.error.FFmpegError as e:
                    problems.append(f"packet {current} could not be decoded: {_reason(e)}")
                    log.warning("%s: packet %d could not be decoded (%s); decoding goes on", path, current, _reason(e))
                    continue
                pictures += len(frames)
                for frame in frames:
                    if frame.pts in wanted:
                        if not got:
                            matrix_rotation = float(frame.rotation)
                        got[frame.pts] = frame.to_ndarray(format="rgb24")
                if group <= got.keys():
                    break
        except av.error.FFmpegError as e:  # the container itself cannot be read on from here
            problems.append(f"reading stopped after packet {current}: {_reason(e)}")
            log.warning("%s: reading stopped after packet %d: %s", path, current, _reason(e))
    why = "; ".join(problems) or "the decoder gave no picture for it"
    failed = {p: why for p in wanted if p not in got}
    return got, failed, matrix_rotation, decoded, pictures


def _is_vfr(presentation: list[int]) -> bool:
    """Irregular pts steps mean the frame index is not proportional to time."""
    steps = np.diff(presentation)
    if len(steps) < 2:
        return False
    median = float(np.median(steps))
    return bool(np.any(np.abs(steps - median) > max(1.0, VFR_TOLERANCE * median)))


def _fps(table: _PacketTable, stream: av.video.stream.VideoStream) -> float | None:
    """Mean rate from the timestamps the frames actually carry (also meaningful under VFR); the
    header's rate only for a single frame."""
    span = table.presentation[-1] - table.presentation[0]
    if table.frame_count > 1 and span > 0 and stream.time_base:
        return (table.frame_count - 1) / float(span * stream.time_base)
    return float(stream.average_rate) if stream.average_rate else None


def _warn_if_short(table: _PacketTable, stream: av.video.stream.VideoStream,
                   container: av.container.InputContainer, path: Path) -> None:
    """Formats without a frame count in the header (Matroska, WebM) lose their tail silently when
    truncated; the declared duration is the only witness. It may itself be wrong, or cover a
    longer audio track, so this is a warning, not an error."""
    if stream.duration and stream.time_base:
        declared = float(stream.duration * stream.time_base)
    elif container.duration:
        declared = container.duration / av.time_base
    else:
        return
    fps = _fps(table, stream)
    covered = float((table.presentation[-1] - table.presentation[0]) * stream.time_base) + (1 / fps if fps else 0)
    if declared - covered > max(0.5, 0.1 * declared):
        log.warning("%s: frames cover %.2f s of the declared %.2f s; the file may be truncated",
                    path, covered, declared)


def _rotation(matrix_degrees: float, stream: av.video.stream.VideoStream, path: Path) -> int:
    """Counter-clockwise degrees (0, 90, 180, 270) that make the picture upright: phones store
    portrait video as landscape plus a display matrix, and faces lying on their side are missed
    by the detector. The display matrix wins; the older `rotate` tag (clockwise) is the fallback."""
    degrees = matrix_degrees
    if degrees == 0.0:
        tag = {k.lower(): v for k, v in stream.metadata.items()}.get("rotate")
        if tag is not None:
            try:
                degrees = -float(tag)
            except ValueError:
                log.warning("%s: ignoring unreadable rotate tag %r", path, tag)
    if degrees % 90:
        log.warning("%s: display rotation %.1f° is not a multiple of 90°, rounded", path, degrees)
    return int(round(degrees / 90)) % 4 * 90


def _reason(error: BaseException) -> str:
    """FFmpeg errors carry the path and errno in str(); the row already names the file."""
    return getattr(error, "strerror", None) or str(error) or type(error).__name__


def read_video_frames(path: str | Path, indices: Sequence[int] | Callable[[int], Sequence[int]],
                      threads: int = 1) -> tuple[dict[int, np.ndarray], dict[str, Any]]:
    """Decode the frames at presentation `indices` as upright RGB uint8 arrays, decoding as little
    as the container allows. `indices` may be a function of the frame count, which only the
    demux pass knows, so that callers need not open the file twice. `threads` > 1 lets FFmpeg
    decode with that many threads (its output is the same).

    Returns ({index: frame}, info) with info keys frame_count, fps, vfr, rotation (degrees
    counter-clockwise applied), decoded_frames (packets sent to the decoder, for checking that
    unwanted GOPs were skipped), pictures (frames the decoder made of them: fewer, as frames no
    other refers to are skipped) and failed ({index: reason} for wanted frames that could not be
    decoded while others could). Raises MediaError for anything wrong with the file as a whole,
    and when no wanted frame decodes."""
    path = Path(path)
    if not path.is_file():
        raise MediaError(path, "file not found")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise MediaError(path, "no video stream")
            stream = container.streams.video[0]
            table = _demux(container, stream, path)
            _warn_if_short(table, stream, container, path)
        wanted_idx = sorted(set(indices(table.frame_count) if callable(indices) else indices))
        bad = [i for i in wanted_idx if not 0 <= i < table.frame_count]
        if bad:
            raise MediaError(path, f"frame indices {bad} out of range (video has {table.frame_count} frames)")
        # A fresh open decodes from the first packet exactly as sequential decoding does.
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            if threads > 1:
                stream.thread_type, stream.codec_context.thread_count = "AUTO", threads
            wanted = {table.presentation[i]: i for i in wanted_idx}
            got, failed, matrix_rotation, decoded, pictures = _decode_wanted(container, stream, table, wanted, path)
            if wanted and not got:
                raise MediaError(path, f"no wanted frame could be decoded: {next(iter(failed.values()))}")
            rotation = _rotation(matrix_rotation, stream, path)
            frames = {wanted[p]: np.ascontiguousarray(np.rot90(f, rotation // 90)) for p, f in got.items()}
            info = {"frame_count": table.frame_count, "fps": _fps(table, stream),
                    "vfr": _is_vfr(table.presentation), "rotation": rotation, "decoded_frames": decoded,
                    "pictures": pictures,
                    "failed": {wanted[p]: reason for p, reason in failed.items()}}
    except av.error.FFmpegError as e:
        raise MediaError(path, f"not a readable video: {_reason(e)}") from None
    if info["vfr"]:
        log.info("%s: variable frame rate; frames are indexed by count, not time", path)
    if rotation:
        log.info("%s: display rotation applied, %d° counter-clockwise", path, rotation)
    return frames, info


def media_frames(record: dict[str, Any], indices: Sequence[int] | Callable[[int], Sequence[int]],
                 threads: int = 1, rgb: bool = False) -> tuple[dict[int, np.ndarray], dict[int, str], int]:
    """BGR frames (RGB with `rgb`) of one media (a manifest record: path, kind) at `indices` (or a
    function of the frame count), the reasons of wanted frames that failed, by index, and the
    frame count; an image is a one-frame video. The decoder gives RGB and OpenCV's reader BGR:
    asking for the order the caller works in converts each frame at most once."""
    if record["kind"] == "image":
        image = read_image(record["path"])
        return {0: cv2.cvtColor(image, cv2.COLOR_BGR2RGB) if rgb else image}, {}, 1
    if record["kind"] == "video":
        frames, info = read_video_frames(record["path"], indices, threads)
        if not rgb:
            frames = {i: cv2.cvtColor(f, cv2.COLOR_RGB2BGR) for i, f in frames.items()}
        return frames, info["failed"], info["frame_count"]
    raise MediaError(record["path"], f"unknown media kind {record['kind']!r} (video | image)")


def sampled_frames(record: dict[str, Any], sample: Callable[[int], Sequence[int]], threads: int = 1,
                   rgb: bool = False) -> Iterator[tuple[dict[str, Any], np.ndarray | None]]:
    """The frame rows of one media (`record` extended by frame_idx, frame_count, width, height and
    error), each with its BGR frame (RGB with `rgb`), in frame order: a wanted frame that could not be decoded
    comes with None and its reason, a media that gives no frame at all is one row with its error
    and no frame_idx. What the face detection stage finds faces in and what the optional frame
    images are written from: one decoding rule, so both see the same frames."""
    empty = {"frame_idx": None, "frame_count": None, "width": None, "height": None}
    try:
        frames, failed, frame_count = media_frames(record, sample, threads, rgb)
    except MediaError as e:
        log.warning("%s", e)
        yield {**record, **empty, "error": str(e)}, None
        return
    for idx in sorted([*frames, *failed]):
        if idx in failed:
            reason = str(MediaError(record["path"], f"frame {idx} could not be decoded: {failed[idx]}"))
            yield {**record, **empty, "frame_idx": idx, "frame_count": frame_count, "error": reason}, None
            continue
        height, width = frames[idx].shape[:2]
        yield ({**record, "frame_idx": idx, "frame_count": frame_count, "width": width, "height": height,
                "error": None}, frames.pop(idx))


def decode_ahead(items: Iterable[T], decode: Callable[[T], R]) -> Iterator[tuple[T, R]]:
    """Each item with decode(item), in order, the next item decoded in a background thread while
    the caller works on the current one. FFmpeg releases the GIL, so decoding then overlaps the
    caller's own work (MTCNN, cropping, writing) instead of adding to it; one item ahead bounds
    the frames held in memory to two media's."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        items = iter(items)
        first = next(items, _END)
        if first is _END:
            return
        pending = (first, pool.submit(decode, first))
        for item in items:
            ahead = (item, pool.submit(decode, item))
            yield pending[0], pending[1].result()
            pending = ahead
        yield pending[0], pending[1].result()
