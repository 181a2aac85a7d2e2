"""One whole training step (forward, backward, optimizer) captured as a CUDA graph and replayed.

The model is thousands of small kernels per step; launched one by one from Python, the GPU idles between
them. A graph launches them all at once. It needs fixed shapes (balanced batches always have the same
size), no host synchronisation inside the step, and a capturable optimizer.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

StepFn = Callable[[torch.Tensor], tuple[torch.Tensor, dict[str, torch.Tensor]]]


class GraphedStep:
    """``step(idx) -> parts``: copy the batch indices in, replay the graph, return its static outputs."""

    def __init__(
        self, step_fn: StepFn, optimizer: torch.optim.Optimizer, example_idx: torch.Tensor, warmup: int = 3
    ):
        self.static_idx = example_idx.clone()
        self._warm_up(step_fn, optimizer, warmup)
        self.graph = torch.cuda.CUDAGraph()
        optimizer.zero_grad(set_to_none=True)
        with torch.cuda.graph(self.graph):
            loss, self.parts = step_fn(self.static_idx)
            loss.backward()
            optimizer.step()

    def _warm_up(self, step_fn: StepFn, optimizer: torch.optim.Optimizer, warmup: int) -> None:
        """Run a few steps on a side stream (required before capture) without changing the training:
        learning rate 0, and the optimizer state put back afterwards."""
        saved_lr = [g["lr"] for g in optimizer.param_groups]
        saved_state = {
            p: {k: v.clone() if torch.is_tensor(v) else v for k, v in s.items()}
            for p, s in optimizer.state.items()
        }
        for g in optimizer.param_groups:
            g["lr"] = 0.0
        try:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(warmup):
                    optimizer.zero_grad(set_to_none=True)
                    loss, _ = step_fn(self.static_idx)
                    loss.backward()
                    optimizer.step()
            torch.cuda.current_stream().wait_stream(side)
        finally:
            for g, lr in zip(optimizer.param_groups, saved_lr, strict=True):
                g["lr"] = lr
            with torch.no_grad():
                for p, state in optimizer.state.items():
                    before = saved_state.get(p)
                    for k, v in state.items():
                        if torch.is_tensor(v):
                            v.copy_(before[k]) if before is not None else v.zero_()

    def __call__(self, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        self.static_idx.copy_(idx)
        self.graph.replay()
        return self.parts
