"""Frame preprocessing on uint8 tensors, split in two: a resize and crop + normalise. The resize runs in the
decode workers (in parallel, and it shrinks what travels to the encoder) or, for frames that are small
anyway, on the GPU, where it costs nothing (see ``cplvad.extract.pool.decode_job``); crop + normalise
run on the encoder's device, in batch. Frames travel as (N, 3, H, W) uint8 in channels-last memory (the
(N, H, W, 3) layout decoders produce), so no transposing copy is made on the way.

``crops=1``: CLIP's own eval preprocessing (open_clip ``image_transform``): bicubic antialiased resize of
the shorter side to ``image_size``, centre crop, normalise with the model's mean/std. Same geometry and
kernel as open_clip's PIL transform, so it matches ``ClipBundle.preprocess`` within uint8 rounding.

``crops=10``: the 10-crop convention of the released features: resize every frame to 340x256
(width x height, bicubic, antialiased, aspect ratio not kept), take 224x224 crops, normalise. Crop order
(the ``__k`` suffix of the output files):

    0 centre   1 top-left   2 top-right   3 bottom-left   4 bottom-right
    5..9       the horizontal mirror images of crops 0..4

so ``__0`` is the centre view, the one a test list uses. For a model whose input is not 224 pixels the
whole convention scales with it: resize to round(340 s / 224) x round(256 s / 224), crops of s x s
(the tiny test model, s = 32: 49x37 and 32x32 crops). ``CropPlan(10, s, centre_only=True)`` encodes
only crop ``__0`` (one view per frame, the same pixels): what scoring a 10-crop model uses.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torchvision.transforms.v2.functional as F
from torchvision.transforms import InterpolationMode

TEN_CROP_SIZE = (340, 256)
"""(width, height) of the 10-crop convention at a model input of ``TEN_CROP_BASE`` pixels."""
TEN_CROP_BASE = 224


@dataclass(frozen=True)
class CropPlan:
    """What the decode workers and the encoder need to know about the preprocessing (picklable)."""

    crops: int
    image_size: int
    centre_only: bool = False
    """With ``crops=10``: encode only the centre crop ``__0`` of the 10-crop convention."""

    @property
    def views(self) -> int:
        """Images encoded per frame."""
        return 1 if self.centre_only else self.crops

    @property
    def frame_size(self) -> tuple[int, int]:
        """(height, width) of a frame after the worker-side resize."""
        if self.crops == 1:
            return self.image_size, self.image_size
        w, h = (round(x * self.image_size / TEN_CROP_BASE) for x in TEN_CROP_SIZE)
        return h, w


def frames_tensor(frames: np.ndarray) -> torch.Tensor:
    """Decoded RGB frames (N, H, W, 3) uint8 -> (N, 3, H, W), a view of the same memory."""
    return torch.from_numpy(frames).permute(0, 3, 1, 2)


def resize_rgb(frame: np.ndarray, plan: CropPlan) -> np.ndarray:
    """One decoded frame (H, W, 3) uint8 -> (h, w, 3) uint8 at ``plan.frame_size`` (a worker's resize)."""
    return resize_frames(frames_tensor(frame[None]), plan)[0].permute(1, 2, 0).numpy()


def resize_frames(x: torch.Tensor, plan: CropPlan) -> torch.Tensor:
    """(N, 3, H, W) uint8 on any device -> (N, 3, h, w) uint8 at ``plan.frame_size``, channels-last memory."""
    if plan.crops == 1:
        x = F.resize(x, [plan.image_size], interpolation=InterpolationMode.BICUBIC, antialias=True)
        x = F.center_crop(x, [plan.image_size, plan.image_size])
    else:
        x = F.resize(x, list(plan.frame_size), interpolation=InterpolationMode.BICUBIC, antialias=True)
    return x.contiguous(memory_format=torch.channels_last)


def ten_crops(x: torch.Tensor, size: int) -> torch.Tensor:
    """(N, C, H, W) -> (N, 10, C, size, size) in the documented crop order."""
    h, w = x.shape[-2:]
    top, left = _centre(h, w, size)
    corners = [(top, left), (0, 0), (0, w - size), (h - size, 0), (h - size, w - size)]
    five = torch.stack([x[..., i : i + size, j : j + size] for i, j in corners], dim=1)
    return torch.cat([five, five.flip(-1)], dim=1)


def _centre(h: int, w: int, size: int) -> tuple[int, int]:
    return int(round((h - size) / 2.0)), int(round((w - size) / 2.0))


def centre_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, size, size): crop ``__0`` of :func:`ten_crops`, alone."""
    top, left = _centre(*x.shape[-2:], size)
    return x[..., top : top + size, left : left + size]


def to_model_input(
    frames: torch.Tensor, plan: CropPlan, mean: tuple[float, ...], std: tuple[float, ...]
) -> torch.Tensor:
    """Resized uint8 frames (N, 3, h, w) -> normalised float32 input (N * views, 3, s, s), frame-major."""
    x = frames.float().div_(255.0)
    if plan.crops == 10 and plan.centre_only:
        x = centre_crop(x, plan.image_size).contiguous()
    elif plan.crops == 10:
        x = ten_crops(x, plan.image_size).flatten(0, 1)
    m = torch.tensor(mean, device=x.device).view(1, -1, 1, 1)
    s = torch.tensor(std, device=x.device).view(1, -1, 1, 1)
    return x.sub_(m).div_(s)
