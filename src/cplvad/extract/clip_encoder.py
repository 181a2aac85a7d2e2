"""One batched CLIP image encoder for frames from many videos (fp16 autocast on CUDA).

Frames are encoded strictly in arrival order in batches of ``batch_size`` images, whatever video they
come from, so the GPU always sees full batches; the caller assigns the output rows back to videos in the
same order. Outputs stay on the device (no synchronisation per batch) until the caller needs them. Frames
that arrive at their decoded size (small ones, for a GPU encoder) are resized here, on the device.
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
        self._parts: list[torch.Tensor] = []
        self._buffered = 0

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

    def add(self, frames: torch.Tensor) -> list[torch.Tensor]:
        """Queue frames; return the embeddings of every batch that became full (in arrival order)."""
        self._parts.append(self.to_device(frames))
        self._buffered += len(frames)
        out = []
        while self._buffered >= self.frames_per_batch:
            out.append(self.encode(self._take(self.frames_per_batch)))
        return out

    def flush(self) -> list[torch.Tensor]:
        """Encode whatever is queued (a last, partial batch)."""
        return [self.encode(self._take(self._buffered))] if self._buffered else []

    def _take(self, n: int) -> torch.Tensor:
        taken: list[torch.Tensor] = []
        need = n
        while need:
            head = self._parts[0]
            if len(head) <= need:
                taken.append(self._parts.pop(0))
                need -= len(head)
            else:
                taken.append(head[:need])
                self._parts[0] = head[need:]
                need = 0
        self._buffered -= n
        return taken[0] if len(taken) == 1 else torch.cat(taken)
