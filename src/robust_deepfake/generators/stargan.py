"""StarGAN (Choi et al., CVPR 2018) as a `FaceGenerator`: the attribute-editing generator that
Ruiz et al. disrupt and that the reference poisoning system attacks.

The networks reproduce the official architecture (yunjey/stargan `model.py`) with the official
parameter names, so its published `200000-G.ckpt` loads strictly, without renaming. A condition is
the name of the target attribute; the target label vector is built from the images' original
labels exactly as the official solver's `create_labels` does (a hair colour becomes the only hair
colour, any other attribute is flipped). Training (`stargan_training`) follows the official solver: WGAN-GP with a
PatchGAN critic that also classifies attributes, cycle reconstruction, n_critic D steps per G step.

Labels are 0/1 floats as in the official code; CelebA's manifest columns are -1/1 and go through
`labels_from_attributes`.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from robust_deepfake.checkpoints import CheckpointError, load_checkpoint, save_checkpoint
from robust_deepfake.devices import module_device
from robust_deepfake.manifest import ATTR_PREFIX

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

DEFAULT_ATTRIBUTES = ("Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young")
# The official solver treats these as one categorical attribute (exactly one hair colour is set).
HAIR_COLOURS = frozenset({"Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair"})


# --------------------------------------------------------------------------------------------- #
# Networks                                                                                       #
# --------------------------------------------------------------------------------------------- #

class InputStatsInstanceNorm2d(nn.InstanceNorm2d):
    """Instance norm that always normalises with each image's own statistics, in train and eval.

    The official code never calls `eval()`, so its results (and everyone's disruption numbers)
    come from per-image statistics; in eval mode a plain `InstanceNorm2d(track_running_stats=True)`
    would switch to the running averages stored in the checkpoint and change every output. The
    affine parameters and the (unused, never updated) running buffers are kept so that official
    checkpoints load strictly."""

    def __init__(self, channels: int) -> None:
        super().__init__(channels, affine=True, track_running_stats=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.instance_norm(x, weight=self.weight, bias=self.bias, use_input_stats=True, eps=self.eps)


def _conv_norm_relu(conv: nn.Conv2d | nn.ConvTranspose2d) -> list[nn.Module]:
    return [conv, InputStatsInstanceNorm2d(conv.out_channels), nn.ReLU()]


class ResidualBlock(nn.Module):
    """Two 3x3 conv + instance-norm layers with an identity shortcut (official `ResidualBlock`)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.main = nn.Sequential(
            *_conv_norm_relu(nn.Conv2d(channels, channels, 3, padding=1, bias=False)),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            InputStatsInstanceNorm2d(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.main(x)


class InputBlur(nn.Module):
    """A fixed Gaussian blur of the image in front of the generator: Ruiz et al.'s blur defence,
    which their `AvgBlurGenerator` builds into StarGAN (with a box filter) and adversarially
    trains through. The kernel is a buffer, so a saved generator carries its blur with it."""

    def __init__(self, kernel: torch.Tensor) -> None:
        super().__init__()
        if kernel.dim() != 2 or kernel.shape[0] != kernel.shape[1] or kernel.shape[0] % 2 == 0:
            raise ValueError(f"the input blur needs an odd square 2-d kernel, got shape {tuple(kernel.shape)}")
        self.register_buffer("kernel", kernel.float())

    @classmethod
    def gaussian(cls, sigma: float) -> InputBlur:
        radius = max(1, math.ceil(3 * sigma))
        offsets = torch.arange(-radius, radius + 1, dtype=torch.float64)
        line = torch.exp(-offsets**2 / (2 * sigma**2))
        return cls((torch.outer(line, line) / line.sum() ** 2).float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad = self.kernel.shape[0] // 2
        weight = self.kernel.to(x.dtype)[None, None].expand(x.shape[1], 1, -1, -1)
        return F.conv2d(F.pad(x, (pad, pad, pad, pad), mode="reflect"), weight, groups=x.shape[1])


class StarGANGenerator(nn.Module):
    """Official StarGAN generator: 7x7 conv, two stride-2 convs, `repeat_num` residual blocks, two
    transposed convs, 7x7 conv + tanh. The target labels enter as constant extra input channels.
    Parameter names equal the official ones (`main.<i>...`). Input sides must be multiples of 4.
    With `blur_kernel` the image is blurred first (`InputBlur`, key `blur.kernel`)."""

    def __init__(self, conv_dim: int = 64, c_dim: int = 5, repeat_num: int = 6,
                 blur_kernel: torch.Tensor | None = None) -> None:
        super().__init__()
        self.conv_dim, self.c_dim, self.repeat_num = conv_dim, c_dim, repeat_num
        self.blur = InputBlur(blur_kernel) if blur_kernel is not None else None
        layers = _conv_norm_relu(nn.Conv2d(3 + c_dim, conv_dim, 7, padding=3, bias=False))
        dim = conv_dim
        for _ in range(2):
            layers += _conv_norm_relu(nn.Conv2d(dim, dim * 2, 4, stride=2, padding=1, bias=False))
            dim *= 2
        layers += [ResidualBlock(dim) for _ in range(repeat_num)]
        for _ in range(2):
            layers += _conv_norm_relu(nn.ConvTranspose2d(dim, dim // 2, 4, stride=2, padding=1, bias=False))
            dim //= 2
        layers += [nn.Conv2d(dim, 3, 7, padding=3, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """x: (N, 3, H, W) in [-1, 1]; c: (N, c_dim) target labels -> (N, 3, H, W) in [-1, 1]."""
        if self.blur is not None:
            x = self.blur(x)
        planes = c.to(x.dtype)[:, :, None, None].expand(-1, -1, x.shape[2], x.shape[3])
        return self.main(torch.cat([x, planes], dim=1))


def default_d_repeat_num(image_size: int) -> int:
    """The official critic halves 128 px six times down to a 2x2 map; smaller images get as many
    halvings as still leave an exact map of at least 2x2 (32 px -> 4), so demo models work."""
    depth = 0
    while depth < 6 and image_size % 2 ** (depth + 1) == 0 and image_size // 2 ** (depth + 1) >= 2:
        depth += 1
    return depth


class StarGANDiscriminator(nn.Module):
    """Official StarGAN critic: `repeat_num` stride-2 4x4 convs with LeakyReLU(0.01), then a 3x3
    PatchGAN real/fake head (`conv1`) and an attribute-logit head (`conv2`) spanning the map.
    Names equal the official ones, so an official `*-D.ckpt` loads too."""

    def __init__(self, image_size: int = 128, conv_dim: int = 64, c_dim: int = 5, repeat_num: int = 6) -> None:
        super().__init__()
        if repeat_num < 1 or image_size % 2**repeat_num:
            raise ValueError(f"critic: image_size {image_size} must be divisible by 2**repeat_num ({2**repeat_num})")
        layers: list[nn.Module] = []
        dim_in, dim = 3, conv_dim
        for _ in range(repeat_num):
            layers += [nn.Conv2d(dim_in, dim, 4, stride=2, padding=1), nn.LeakyReLU(0.01)]
            dim_in, dim = dim, dim * 2
        self.main = nn.Sequential(*layers)
        self.conv1 = nn.Conv2d(dim_in, 1, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(dim_in, c_dim, image_size // 2**repeat_num, bias=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (real/fake score map (N, 1, h, w), attribute logits (N, c_dim))."""
        h = self.main(x)
        return self.conv1(h), self.conv2(h).flatten(1)


# --------------------------------------------------------------------------------------------- #
# Labels and the FaceGenerator                                                                   #
# --------------------------------------------------------------------------------------------- #

def labels_from_attributes(table: pd.DataFrame, attributes: Sequence[str] = DEFAULT_ATTRIBUTES) -> torch.Tensor:
    """(N, c_dim) 0/1 labels from a manifest's `attr_<Name>` columns (CelebA's -1/1 values);
    StarGAN's label flip (`== 0`) is only correct on 0/1 labels."""
    columns = [ATTR_PREFIX + name for name in attributes]
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise KeyError(f"StarGAN labels need the attribute columns {missing}, absent from the manifest")
    unlabelled = int(table[columns].isna().any(axis=1).sum())
    if unlabelled:
        raise ValueError(f"{unlabelled} manifest rows have no value for some of {columns}")
    return torch.from_numpy((table[columns].to_numpy(dtype="float32") > 0).astype("float32"))


def _checked_labels(c: torch.Tensor, n: int, c_dim: int, device: torch.device) -> torch.Tensor:
    """Float (n, c_dim) 0/1 labels; a single vector is shared by the batch. Rejects -1/1 labels,
    which would silently flip the wrong way."""
    c = torch.as_tensor(c, dtype=torch.float32, device=device)
    if c.dim() == 1:
        c = c.expand(n, -1)
    if c.shape != (n, c_dim):
        raise ValueError(f"StarGAN labels must have shape ({n}, {c_dim}) or ({c_dim},), got {tuple(c.shape)}")
    if not ((c == 0) | (c == 1)).all():
        raise ValueError("StarGAN labels must be 0/1 (convert CelebA's -1/1 with labels_from_attributes)")
    return c


def target_labels(c_org: torch.Tensor, attributes: Sequence[str], target: str) -> torch.Tensor:
    """The official `create_labels` for one target attribute: a hair-colour target becomes the
    only hair colour set, any other target attribute is flipped; the remaining entries keep their
    original values."""
    if target not in attributes:
        raise ValueError(f"unknown StarGAN condition {target!r}; this generator edits {list(attributes)}")
    index = list(attributes).index(target)
    c_trg = c_org.clone()
    if target in HAIR_COLOURS:
        for j, name in enumerate(attributes):
            if name in HAIR_COLOURS:
                c_trg[:, j] = float(j == index)
    else:
        c_trg[:, index] = (c_org[:, index] == 0).to(c_trg.dtype)
    return c_trg


def _resize(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Differentiable anti-aliased bilinear resize (a convex combination: [-1, 1] stays in range)."""
    if tuple(images.shape[-2:]) == tuple(size):
        return images
    return F.interpolate(images, size=size, mode="bilinear", antialias=True, align_corners=False)


class StarGANFaceGenerator(nn.Module):
    """StarGAN behind the `FaceGenerator` protocol.

    Conditions are attribute names (`conditions()` = `attributes`); `generate(images, name, c_org)`
    builds the target labels from the batch's original 0/1 labels `c_org` (as the official test
    does). Without `c_org` every original attribute counts as absent (all zeros): a hair target
    sets that colour and any other target means "add this attribute" — the attacker's situation
    when the true labels are unknown. Inputs of any size are resized to `image_size`
    and back, differentiably."""

    def __init__(self, generator: StarGANGenerator, attributes: Sequence[str] = DEFAULT_ATTRIBUTES,
                 image_size: int = 128) -> None:
        super().__init__()
        if len(attributes) != generator.c_dim or len(set(attributes)) != len(attributes):
            raise ValueError(f"StarGAN attributes {list(attributes)} must be {generator.c_dim} distinct names "
                             "(the generator's label count)")
        if image_size % 4:
            raise ValueError(f"StarGAN image_size must be a multiple of 4, got {image_size}")
        self.generator = generator
        self.attributes = tuple(attributes)
        self.image_size = image_size

    def conditions(self) -> tuple[str, ...]:
        return self.attributes

    def generate(self, images: torch.Tensor, condition: str, c_org: torch.Tensor | None = None) -> torch.Tensor:
        """(N, 3, H, W) in [-1, 1] -> the images edited towards `condition`, same shape, in [-1, 1]."""
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"StarGAN expects images of shape (N, 3, H, W), got {tuple(images.shape)}")
        n = images.shape[0]
        c_dim = len(self.attributes)
        if c_org is None:
            c_org = torch.zeros(n, c_dim, device=images.device)
        c_trg = target_labels(_checked_labels(c_org, n, c_dim, images.device), self.attributes, condition)
        out = self.generator(_resize(images, (self.image_size, self.image_size)), c_trg)
        return _resize(out, tuple(images.shape[-2:]))

    def for_faces(self, faces: pd.DataFrame) -> LabelledStarGAN:
        """This generator with the faces' own labels (their manifest's `attr_<Name>` columns) bound:
        the targets StarGAN's own test builds for each face (`generators.base.for_faces`)."""
        return self.with_labels(labels_from_attributes(faces, self.attributes).to(module_device(self)))

    def with_labels(self, c_org: torch.Tensor) -> LabelledStarGAN:
        """This generator with a batch's original labels bound, for code that knows only the
        protocol's `generate(images, condition)` (e.g. disrupting a labelled CelebA batch)."""
        return LabelledStarGAN(self, c_org)


@dataclass(frozen=True)
class LabelledStarGAN:
    """A `FaceGenerator` view of a StarGAN with the original labels of one batch bound."""

    model: StarGANFaceGenerator
    c_org: torch.Tensor

    @property
    def image_size(self) -> int:
        return self.model.image_size

    def conditions(self) -> tuple[str, ...]:
        return self.model.conditions()

    def generate(self, images: torch.Tensor, condition: str) -> torch.Tensor:
        return self.model.generate(images, condition, self.c_org)


# --------------------------------------------------------------------------------------------- #
# Checkpoints                                                                                    #
# --------------------------------------------------------------------------------------------- #

def _read_checkpoint(path: Path, device: torch.device | str) -> dict:
    state = load_checkpoint(path, device, "StarGAN checkpoint")
    if not isinstance(state, dict):
        raise CheckpointError(f"StarGAN checkpoint {path} holds a {type(state).__name__}, not a state_dict")
    return state


def _load_strict(module: nn.Module, state: dict, path: Path, what: str) -> None:
    """`load_state_dict(strict=True)` with an error that names the file and the first offenders."""
    expected = module.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [f"{k} {tuple(getattr(state[k], 'shape', ()))} (expected {tuple(v.shape)})"
             for k, v in expected.items() if k in state and getattr(state[k], "shape", None) != v.shape]
    problems = [f"{label} ({len(keys)}): {', '.join(keys[:5])}{' ...' if len(keys) > 5 else ''}"
                for label, keys in (("missing keys", missing), ("unexpected keys", unexpected),
                                    ("wrong shapes", wrong)) if keys]
    if problems:
        raise ValueError(f"{path} does not match the {what}: " + "; ".join(problems))
    module.load_state_dict(state, strict=True)


def _with_batch_counters(state: dict, module: nn.Module) -> dict:
    """A state_dict saved before PyTorch 0.4.1 (the official StarGAN release among them) has no
    norm layers' `num_batches_tracked`; torch loads such files by starting the counters at 0, and
    so does this (StarGAN's instance norm never reads them). Every other key stays strict."""
    counters = [k for k in module.state_dict() if k.endswith(".num_batches_tracked") and k not in state]
    return {**state, **{k: torch.tensor(0, dtype=torch.long) for k in counters}} if counters else state


def _generator_shape(state: dict, path: Path) -> dict:
    """conv_dim, c_dim, repeat_num (and the input blur's kernel, if any) read off a generator
    state_dict, so that a checkpoint describes itself and cannot be paired with a wrong
    architecture setting."""
    first = state.get("main.0.weight")
    if not isinstance(first, torch.Tensor) or first.dim() != 4:
        raise ValueError(f"{path} is not a StarGAN generator state_dict (no 4-d 'main.0.weight')")
    blocks = {key.split(".")[1] for key in state if key.startswith("main.") and ".main.0.weight" in key}
    return {"conv_dim": first.shape[0], "c_dim": first.shape[1] - 3, "repeat_num": len(blocks),
            "blur_kernel": state.get("blur.kernel")}


def load_stargan(path: str | Path, attributes: Sequence[str] = DEFAULT_ATTRIBUTES, image_size: int = 128,
                 device: torch.device | str = "cpu") -> StarGANFaceGenerator:
    """Load an official `*-G.ckpt` (or one written by `save_stargan`): a plain generator
    state_dict; the architecture is read from its shapes, `attributes` must match its label count."""
    path = Path(path)
    state = _read_checkpoint(path, device)
    shape = _generator_shape(state, path)
    if shape["c_dim"] != len(attributes):
        raise ValueError(f"{path} was trained on {shape['c_dim']} attributes, but {len(attributes)} were "
                         f"given: {list(attributes)}")
    generator = StarGANGenerator(**shape)
    _load_strict(generator, _with_batch_counters(state, generator), path, "StarGAN generator")
    log.info("loaded StarGAN generator (conv_dim %d, %d attributes, %d blocks%s) from %s", shape["conv_dim"],
             shape["c_dim"], shape["repeat_num"], ", input blur" if generator.blur is not None else "", path)
    return StarGANFaceGenerator(generator, attributes, image_size).to(device)


def save_stargan(model: StarGANFaceGenerator, path: str | Path) -> None:
    """Write the generator as a plain state_dict in the official format, atomically."""
    save_checkpoint({k: v.detach().cpu() for k, v in model.generator.state_dict().items()}, path)
