"""The embedded demo dataset: real faces shipped by installed packages, filmed by a virtual camera.

The default configuration must run with no outside data, so the demo is rendered offline from
face photographs that scikit-image and matplotlib ship:

* ``skimage.data.astronaut()`` (Eileen Collins, NASA, public domain),
* ``matplotlib`` sample data ``grace_hopper.jpg`` (US Navy photograph, public domain),
* ``skimage.data.camera()`` (a man behind a camera, CC0 by Lav Varshney),
* faces of ``skimage.data.lfw_subset()`` (25x25 grey crops from Labeled Faces in the Wild).

Each source face is one identity. A virtual camera turns it into short videos: smooth pan, zoom and
small in-plane rotation over time, with lighting ramps (brightness, contrast, colour temperature,
a moving light gradient) and mild sensor noise; every video of an identity follows its own seeded
trajectory. Still images go through the same renderer with poses and light drawn apart from the
videos'. The tiny LFW crops are upscaled and set into a blurred context so that MTCNN sees a face.

Output, in the plain "folders" layout (identity = first sub-folder)::

    <out_dir>/real/<identity>/clip<k>.mp4
    <out_dir>/real/<identity>/still<k>.png
    <out_dir>/SOURCES.md

Rendering needs no face detector: the face boxes of the photographs and the list of usable LFW
faces are constants below, measured once with MTCNN (see their comments).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from tqdm import tqdm

from robust_deepfake.atomic import atomic_path, write_image
from robust_deepfake.datasets.demo_faces import LFW_INDICES, MAX_IDENTITIES, FaceSource, available_identities

log = logging.getLogger(__name__)

__all__ = ["render_demo", "available_identities", "MAX_IDENTITIES", "LFW_INDICES"]


# ---------------------------------------------------------------------------------------------
# Virtual camera and light


def _face_fraction_range(size: int, still: bool) -> tuple[float, float]:
    """Face height as a fraction of the frame side; the face stays >= ~64 px on small frames."""
    lo, hi = (0.5, 0.62) if still else (0.4, 0.56)
    lo = min(0.7, max(lo, 64.0 / size))
    return lo, max(hi, lo + 0.12)


@dataclass(frozen=True)
class Pose:
    frac: float      # face height / frame side
    dx: float        # face centre offset from the frame centre, in frame sides
    dy: float
    angle: float     # in-plane rotation, degrees
    gain: float      # brightness multiplier
    contrast: float  # contrast around mid-grey
    temp: float      # colour temperature, -1 (cool) .. 1 (warm)
    grad: float      # strength of a linear light gradient across the frame
    grad_dir: float  # its direction, radians
    noise: float     # Gaussian noise sigma, grey levels


def _smooth(rng: np.random.Generator, t: np.ndarray, amp: float, base: float = 0.0) -> np.ndarray:
    """base + a sum of two slow sinusoids (0.1 to 0.6 Hz) with random phases, peak about amp."""
    out = np.full_like(t, base, dtype=np.float64)
    weights = rng.dirichlet([2.0, 2.0])
    for w in weights:
        freq = rng.uniform(0.1, 0.6)
        phase = rng.uniform(0, 2 * np.pi)
        out += amp * w * np.sin(2 * np.pi * freq * t + phase)
    return out


def _ramp(rng: np.random.Generator, u: np.ndarray, low: float, high: float) -> np.ndarray:
    """A smooth ramp between two random levels in [low, high] over normalised time u in [0, 1]."""
    a, b = rng.uniform(low, high, size=2)
    s = u * u * (3 - 2 * u)
    return a + (b - a) * s


def _video_poses(rng: np.random.Generator, n: int, fps: int, size: int) -> list[Pose]:
    t = np.arange(n, dtype=np.float64) / fps
    u = t / t[-1] if n > 1 else np.zeros(1)
    lo, hi = _face_fraction_range(size, still=False)
    frac = np.clip(_smooth(rng, t, 0.05, rng.uniform(lo + 0.04, hi - 0.04)), lo, hi)
    dx = _smooth(rng, t, 0.07, rng.uniform(-0.04, 0.04))
    dy = _smooth(rng, t, 0.05, rng.uniform(-0.03, 0.03))
    angle = _smooth(rng, t, rng.uniform(2.0, 5.0), rng.uniform(-4.0, 4.0))
    gain = _ramp(rng, u, 0.8, 1.15)
    contrast = _ramp(rng, u, 0.85, 1.15)
    temp = _ramp(rng, u, -1.0, 1.0)
    grad = _ramp(rng, u, 0.0, 0.25)
    grad_dir = rng.uniform(0, 2 * np.pi) + _smooth(rng, t, 0.6)
    noise = np.full(n, rng.uniform(1.0, 3.0))
    return [Pose(*(float(v[i]) for v in (frac, dx, dy, angle, gain, contrast, temp, grad, grad_dir, noise)))
            for i in range(n)]


def _still_pose(rng: np.random.Generator, size: int) -> Pose:
    """A pose and light drawn apart from the videos': closer, more tilted, harder light."""
    lo, hi = _face_fraction_range(size, still=True)
    sign = rng.choice([-1.0, 1.0])
    return Pose(frac=rng.uniform(lo, hi), dx=rng.uniform(-0.06, 0.06), dy=rng.uniform(-0.05, 0.05),
                 angle=float(sign * rng.uniform(4.0, 10.0)), gain=rng.uniform(0.75, 1.25),
                 contrast=rng.uniform(0.8, 1.2), temp=rng.uniform(-1.0, 1.0),
                 grad=rng.uniform(0.15, 0.35), grad_dir=rng.uniform(0, 2 * np.pi),
                 noise=rng.uniform(0.5, 2.0))


class Scene:
    """A face canvas prepared for one frame size: float RGB, face centre and height in pixels."""

    def __init__(self, source: FaceSource, size: int):
        face_px = max(16, round(0.65 * size))
        canvas, box = source.load(face_px)
        self.canvas = canvas.astype(np.float32)
        self.cx = (box[0] + box[2]) / 2
        self.cy = (box[1] + box[3]) / 2
        self.face_h = box[3] - box[1]
        self.size = size
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
        self.xn = (xx - size / 2) / size
        self.yn = (yy - size / 2) / size

    def render(self, pose: Pose, rng: np.random.Generator, quantise: bool = True) -> np.ndarray:
        """One RGB frame for a pose (uint8, or float32 before rounding for callers that edit it
        further); rng draws the noise."""
        s = self.size
        scale = pose.frac * s / self.face_h           # output pixels per canvas pixel
        theta = np.deg2rad(pose.angle)
        c, si = np.cos(theta), np.sin(theta)
        rot = np.array([[c, -si], [si, c]]) / scale   # output -> canvas, linear part
        dst_centre = np.array([s / 2 + pose.dx * s, s / 2 + pose.dy * s])
        src_centre = np.array([self.cx, self.cy])
        m = np.hstack([rot, (src_centre - rot @ dst_centre)[:, None]])
        frame = cv2.warpAffine(self.canvas, m, (s, s), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                               borderMode=cv2.BORDER_REFLECT_101)
        # light: gradient, brightness, contrast, colour temperature, noise
        light = 1.0 + pose.grad * (self.xn * np.cos(pose.grad_dir) + self.yn * np.sin(pose.grad_dir)) * 2
        frame *= (light * pose.gain)[:, :, None]
        frame = (frame - 128.0) * pose.contrast + 128.0
        frame *= np.array([1 + 0.08 * pose.temp, 1.0, 1 - 0.08 * pose.temp], dtype=np.float32)
        frame += rng.normal(0.0, pose.noise, size=frame.shape).astype(np.float32)
        return np.clip(np.rint(frame), 0, 255).astype(np.uint8) if quantise else frame


# ---------------------------------------------------------------------------------------------
# Writing


def _video_codec() -> str:
    import av

    return "libx264" if "libx264" in av.codec.codecs_available else "mpeg4"


def _write_mp4(path: Path, frames: list[np.ndarray], fps: int) -> None:
    """Encode RGB frames to mp4 (lossless H.264 when available), yuv420p, a keyframe every second.

    Lossless, because lossy libx264 is not reproducible here: the same frames encoded twice in
    one process, one thread, decode differently in about half of the demo clips (measured, up to
    27 grey levels), which moves MTCNN's boxes and everything after them. At qp 0 the decoded
    frames equal the encoder's input whatever choices the encoder makes."""
    import av

    codec = _video_codec()
    size = frames[0].shape[1], frames[0].shape[0]
    with atomic_path(path) as tmp:
        with av.open(str(tmp), mode="w", format="mp4") as container:
            if codec == "libx264":
                # no scene-cut keyframes: a keyframe exactly every `fps` frames
                options = {"qp": "0", "preset": "fast", "sc_threshold": "0", "keyint_min": str(fps),
                           "threads": "1"}
            else:
                options = {"qscale": "3", "threads": "1"}
            stream = container.add_stream(codec, rate=fps, options=options)
            stream.width, stream.height = size
            stream.pix_fmt = "yuv420p"
            stream.codec_context.gop_size = fps
            stream.codec_context.time_base = Fraction(1, fps)
            stream.codec_context.thread_count = 1
            for i, rgb in enumerate(frames):
                frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
                frame.pts = i
                frame.time_base = Fraction(1, fps)
                for packet in stream.encode(frame):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)


VIDEO_DEMO_MEDIA = ("its videos and stills are synthetic camera moves (pan, zoom, in-plane rotation) and "
                    "lighting changes applied to that one photograph. All media are real (no manipulation).")


def write_sources(path: Path, sources: list[FaceSource], args: dict, media: str = VIDEO_DEMO_MEDIA) -> None:
    """SOURCES.md: where each identity's face comes from and its licence; `media` says what was
    rendered from it."""
    lines = [
        "# Demo dataset sources",
        "",
        "Rendered offline by robust_deepfake.datasets from face photographs shipped by installed Python",
        f"packages; nothing was downloaded. Each source face is one identity; {media}",
        "",
        "Render arguments: " + ", ".join(f"{k}={v}" for k, v in args.items()),
        "",
        "| identity | package | source | licence note |",
        "|---|---|---|---|",
    ]
    for src in sources:
        lines.append(f"| {src.identity} | {src.package} | {src.origin} | {src.licence} |")
    lines += [
        "",
        "Notes:",
        "",
        "- scikit-image data notes: astronaut (NASA Great Images) 'No known copyright restrictions,",
        "  released into the public domain'; camera 'No copyright restrictions. CC0 by the",
        "  photographer (Lav Varshney)'.",
        "- matplotlib sample data: grace_hopper.jpg, a US Navy photograph of Rear Admiral Grace",
        "  Hopper, public domain as a work of the US federal government.",
        "- LFW: G. B. Huang, M. Ramesh, T. Berg, E. Learned-Miller, 'Labeled Faces in the Wild',",
        "  UMass Amherst TR 07-49, 2007 (http://vis-www.cs.umass.edu/lfw/). lfw_subset carries no",
        "  names, so two lfw_* identities may show the same person (LFW holds many photographs of a",
        "  few public figures).",
        "",
    ]
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines), encoding="utf-8")


def rng_for(seed: int, source_index: int, kind: int, k: int) -> np.random.Generator:
    """Independent stream per (seed, identity, kind, item): an identity renders the same whatever
    the number of identities asked."""
    return np.random.default_rng(np.random.SeedSequence([seed, source_index, kind, k]))


def checked_identities(identities: int) -> list[FaceSource]:
    """The first `identities` face sources, or a message naming how many there are."""
    sources = available_identities()
    if not 1 <= identities <= len(sources):
        raise ValueError(f"demo.identities={identities}: the embedded demo has {len(sources)} face "
                         f"sources (astronaut, grace_hopper, camera and {len(LFW_INDICES)} LFW faces); "
                         f"ask for 1 to {len(sources)}")
    return sources[:identities]


def render_identities(render_identity: Callable[[int], list[dict]], identities: int, workers: int,
                      desc: str) -> list[list[dict]]:
    """Each identity's rows, in identity order, rendered on `workers` threads (OpenCV, NumPy's
    array arithmetic and the encoders release the GIL). The files do not depend on `workers` as
    long as every identity draws from its own seeded generator (`rng_for`) and writes its own files."""
    with ThreadPoolExecutor(max(1, workers)) as pool:
        return list(tqdm(pool.map(render_identity, range(identities)), total=identities, desc=desc, unit="id"))


def _render_identity(out_dir: Path, index: int, src: FaceSource, videos_per_identity: int, frames_per_video: int,
                     fps: int, size: int, images_per_identity: int, seed: int) -> list[dict]:
    """One identity's clips and stills under out_dir/real/<identity>/; one row per file."""
    scene = Scene(src, size)
    folder = out_dir / "real" / src.identity
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for k in range(videos_per_identity):
        rng = rng_for(seed, index, 0, k)
        poses = _video_poses(rng, frames_per_video, fps, size)
        frames = [scene.render(p, rng) for p in poses]
        path = folder / f"clip{k}.mp4"
        _write_mp4(path, frames, fps)
        rows.append({"identity": src.identity, "kind": "video", "path": str(path), "source": src.origin})
    for k in range(images_per_identity):
        rng = rng_for(seed, index, 1, k)
        rgb = scene.render(_still_pose(rng, size), rng)
        path = folder / f"still{k}.png"
        write_image(path, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        rows.append({"identity": src.identity, "kind": "image", "path": str(path), "source": src.origin})
    log.debug("demo identity %s done", src.identity)
    return rows


def render_demo(out_dir: Path, identities: int, videos_per_identity: int, frames_per_video: int,
                fps: int, size: int, images_per_identity: int, seed: int, workers: int = 1) -> pd.DataFrame:
    """Render the demo dataset under out_dir; return one row per file written.

    Columns: identity, kind ("video" or "image"), path (str), source (where the face came from).
    The same arguments give the same decoded frames and PNG bytes, whatever `workers` (threads,
    one identity each: `render_identities`)."""
    out_dir = Path(out_dir)
    chosen = checked_identities(identities)
    if videos_per_identity < 0 or images_per_identity < 0:
        raise ValueError("videos_per_identity and images_per_identity must be >= 0")
    if videos_per_identity and frames_per_video < 1:
        raise ValueError(f"frames_per_video must be >= 1, got {frames_per_video}")
    if fps < 1:
        raise ValueError(f"fps must be >= 1, got {fps}")
    if size < 32 or size % 2:
        raise ValueError(f"size must be an even number of pixels >= 32 (yuv420p video), got {size}")

    log.info("rendering %d demo identities (%d videos x %d frames, %d stills each, %d px, codec %s, %d worker(s)) "
             "into %s", identities, videos_per_identity, frames_per_video, images_per_identity, size, _video_codec(),
             workers, out_dir)

    def render_identity(index: int) -> list[dict]:
        return _render_identity(out_dir, index, chosen[index], videos_per_identity, frames_per_video, fps, size,
                                images_per_identity, seed)

    per_identity = render_identities(render_identity, len(chosen), workers, "demo identities")
    rows = [row for identity_rows in per_identity for row in identity_rows]
    write_sources(out_dir / "SOURCES.md", chosen, {
        "identities": identities, "videos_per_identity": videos_per_identity,
        "frames_per_video": frames_per_video, "fps": fps, "size": size,
        "images_per_identity": images_per_identity, "seed": seed, "codec": _video_codec()})
    log.info("demo: wrote %d files for %d identities", len(rows), identities)
    return pd.DataFrame(rows, columns=["identity", "kind", "path", "source"])
