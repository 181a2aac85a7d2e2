"""One batched CLIP image encoder for the frames of many videos (fp16 autocast on CUDA).

Each video is encoded in batches of its own frames: batch k of a video holds its sampled frames
``[k * B, (k + 1) * B)`` (B = ``frames_per_batch``), the last one whatever is left. A batch never mixes
videos, so a video's features do not depend on which videos were decoded beside it, in which order the
workers delivered them, or where an interrupted run started again: kernels choose their blocking by the
batch size, and a row encoded in a batch of 5 can differ from the same row in a batch of 64 in the last
bits (up to 5e-7 measured with the tiny CLIP on a CPU). Outputs stay on the device (no synchronisation per batch)
until the caller needs them. Frames that arrive at their decoded size (small ones, for a GPU encoder) are
resized here, on the device.
"""

from __future__ import annotations

import torch

from cplvad.clip import ClipBundle
from cplvad.extract.transforms import CropPlan, resize_frames, to_model_input


class BatchEncoder:
    def __init__(self, bundle: ClipBundle, plan: CropPlan, device: torch.device, batch_size: int) -> None:
        self.bundle = bundle
        self.plan = plan
        self.device = device
        self.frames_per_batch = max(1, batch_size // plan.views)
        """A 10-crop frame is 10 images: ``batch_size`` counts images per forward pass."""
        self._queued: dict[int, list[torch.Tensor]] = {}
        """Per video (by key): frames on the device not yet encoded, fewer than ``frames_per_batch``."""

    @property
    def precision(self) -> str:
        return "fp16-autocast" if self.device.type == "cuda" else "fp32"

    def to_device(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 frames (n, 3, H, W) -> on the device, at the plan's ``frame_size``."""
        frames = frames.to(self.device, non_blocking=True)
        if tuple(frames.shape[-2:]) != self.plan.frame_size:
            frames = resize_frames(frames, self.plan)
        return frames

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 frames (n, 3, H, W) -> embeddings (n, views, D) float32 on the device."""
        x = to_model_input(self.to_device(frames), self.plan, self.bundle.mean, self.bundle.std)
        with (
            torch.inference_mode(),
            torch.autocast(self.device.type, torch.float16, enabled=self.device.type == "cuda"),
        ):
            emb = self.bundle.model.encode_image(x)
        return emb.float().view(len(frames), self.plan.views, -1)

    def add(self, key: int, frames: torch.Tensor) -> list[torch.Tensor]:
        """Queue the next frames of video ``key``; return the embeddings of its batches that became full."""
        queue = self._queued.setdefault(key, [])
        queue.append(self.to_device(frames))
        out = []
        while sum(len(f) for f in queue) >= self.frames_per_batch:
            out.append(self.encode(self._take(queue, self.frames_per_batch)))
        return out

    def finish(self, key: int) -> list[torch.Tensor]:
        """The end of video ``key``: encode its last, partial batch (if any) and forget it."""
        queue = self._queued.pop(key, [])
        left = sum(len(f) for f in queue)
        return [self.encode(self._take(queue, left))] if left else []

    def drop(self, key: int) -> None:
        """Forget the queued frames of a video that failed."""
        self._queued.pop(key, None)

    @staticmethod
    def _take(queue: list[torch.Tensor], n: int) -> torch.Tensor:
        taken: list[torch.Tensor] = []
        need = n
        while need:
            head = queue[0]
            if len(head) <= need:
                taken.append(queue.pop(0))
                need -= len(head)
            else:
                taken.append(head[:need])
                queue[0] = head[need:]
                need = 0
        return taken[0] if len(taken) == 1 else torch.cat(taken)
