"""The CUDA paths, each against the path it replaces: a training step replayed as a CUDA graph against eager
steps, bf16 autocast (AMP) against fp32, frames resized on the GPU against torchvision's resize, and CLIP
features extracted on the GPU (on-device resize, fp16 autocast) against the CPU's.

Marker ``gpu``: skipped without CUDA (tests/conftest.py); ``bash benchmarks/gpu.sh tests`` runs them on a
GPU machine. Each tolerance is stated where it is checked, with the size of what it must still tell apart.
"""

from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import tiny_config
from glitch import scene
from test_extract import config as extract_config
from test_extract import make_video
from test_extract import run as extract_run
from torch import nn

import cplvad.train.cuda_graph as cuda_graph
from cplvad.clip import create_clip
from cplvad.config import ClipConfig
from cplvad.extract.clip_encoder import BatchEncoder
from cplvad.extract.transforms import CropPlan, frames_tensor, resize_frames
from cplvad.modeling.factory import create_model
from cplvad.workflow import train_stage

pytestmark = pytest.mark.gpu
CUDA = torch.device("cuda")
CAPTURE_FAILED = "CUDA graph capture failed"


def weights(model_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(model_dir / "model.pt", weights_only=True)


def losses(model_dir: Path) -> list[dict[str, float]]:
    return [
        {k: v for k, v in epoch.items() if k not in ("epoch", "seconds")}
        for epoch in json.loads((model_dir / "history.json").read_text())
    ]


# ------------------------------------------------------------------------------------------- CUDA graphs


def test_a_graphed_step_replays_the_eager_steps():
    """GraphedStep on a small network: warm-up and capture leave the weights as they were, and each replay
    with new batch indices is the eager step (same kernels: agreement to float rounding)."""
    torch.manual_seed(0)
    x, y = torch.randn(64, 16, device=CUDA), torch.randn(64, 1, device=CUDA)
    net = nn.Sequential(nn.Linear(16, 32), nn.Tanh(), nn.Linear(32, 1)).to(CUDA)
    order = torch.Generator().manual_seed(1)
    batches = [torch.randperm(64, generator=order)[:8].to(CUDA) for _ in range(6)]

    def training():
        model = copy.deepcopy(net)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-2, fused=True, capturable=True)

        def step_fn(idx):
            loss = F.mse_loss(model(x[idx]), y[idx])
            return loss, {"loss": loss.detach()}

        return model, optimizer, step_fn

    eager, optimizer, step_fn = training()
    eager_losses = []
    for idx in batches:
        optimizer.zero_grad(set_to_none=True)
        loss, parts = step_fn(idx)
        loss.backward()
        optimizer.step()
        eager_losses.append(parts["loss"].item())

    graphed, optimizer, step_fn = training()
    initial = [p.detach().clone() for p in graphed.parameters()]
    step = cuda_graph.GraphedStep(step_fn, optimizer, batches[0])
    assert all(torch.equal(p, p0) for p, p0 in zip(graphed.parameters(), initial))  # lr 0 while warming up
    graph_losses = [step(idx)["loss"].item() for idx in batches]
    np.testing.assert_allclose(graph_losses, eager_losses, rtol=1e-5)
    for p, q, p0 in zip(graphed.parameters(), eager.parameters(), initial):
        # a tenth of a percent of one Adam step (lr 1e-2); the six steps moved every tensor by far more
        torch.testing.assert_close(p, q, rtol=0, atol=1e-5)
        assert (q - p0).abs().max() > 1e-3


def test_training_with_cuda_graphs_equals_eager_training(demo_manifest, tmp_path, monkeypatch):
    """The trainer on the GPU (fp32, no dropout: nothing random inside a step), with and without graphs."""
    replays = []
    replay = cuda_graph.GraphedStep.__call__
    monkeypatch.setattr(
        cuda_graph.GraphedStep, "__call__", lambda self, idx: replays.append(1) or replay(self, idx)
    )

    def train(graphs: bool) -> Path:
        cfg = tiny_config(
            "train.device=cuda", "train.amp=false", f"train.cuda_graphs={graphs}", "model.dropout=0"
        )
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            train_stage(demo_manifest, tmp_path / str(graphs), cfg, stage=1, progress=False)
        assert not [w for w in caught if CAPTURE_FAILED in str(w.message)]
        return tmp_path / str(graphs)

    graphed = train(True)
    replayed = len(replays)
    eager = train(False)
    assert replayed > 0 and len(replays) == replayed  # every step of the first run, none of the second
    for a, b in zip(losses(graphed), losses(eager), strict=True):
        assert a == pytest.approx(b, rel=1e-4)
    a, b = weights(graphed), weights(eager)
    # a fifth of one Adam step (lr 1e-3): room for the GPU's unordered atomic sums in backward passes
    torch.testing.assert_close(a, b, rtol=0, atol=2e-4)


# --------------------------------------------------------------------------------------------------- AMP


def test_the_model_under_bf16_autocast_scores_as_in_fp32():
    """The trainer's AMP: the model's forward pass in bf16 autocast on the GPU against fp32 on the CPU, in
    what a user sees (sigmoid scores, class probabilities). bf16 keeps 8 bits of mantissa: measured with the
    CPU's bf16 autocast, 3e-4 and 1e-2 at most; tolerances 0.01 and 0.05."""
    cfg = tiny_config("model.dropout=0")
    model, _ = create_model(cfg, ["Normal", "Fighting", "Shooting"], 64, 1, "gpu-test")
    model.eval()
    rng = torch.Generator().manual_seed(0)
    x = torch.randn(4, 32, 64, generator=rng)
    mask = torch.arange(32)[None] < torch.tensor([32, 20, 7, 31])[:, None]
    with torch.no_grad():
        fp32 = model(x, mask)
        model.to(CUDA)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            amp = model(x.to(CUDA), mask.to(CUDA))
    assert amp.binary.dtype == amp.classes.dtype == torch.bfloat16  # autocast is in force
    assert torch.equal(amp.mask.cpu(), fp32.mask)
    valid = fp32.mask
    binary = (torch.sigmoid(amp.binary.float().cpu()) - torch.sigmoid(fp32.binary)).abs()[valid]
    classes = (torch.softmax(amp.classes.float().cpu(), -1) - torch.softmax(fp32.classes, -1)).abs()[valid]
    assert binary.max() <= 0.01 and classes.max() <= 0.05


def test_training_with_the_gpu_defaults_starts_as_fp32_training_on_the_cpu(demo_manifest, tmp_path):
    """The defaults on a GPU (bf16 autocast, CUDA graphs, fused Adam) against fp32 on the CPU: the first
    epoch's losses within 2% (the CPU's own bf16 autocast: 0.3% at most). Later epochs drift apart, as any
    two precisions do."""
    runs = {}
    for device in ("cuda", "cpu"):
        cfg = tiny_config(f"train.device={device}", "train.epochs=1", "model.dropout=0")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            train_stage(demo_manifest, tmp_path / device, cfg, stage=1, progress=False)
        assert not [w for w in caught if CAPTURE_FAILED in str(w.message)]
        runs[device] = losses(tmp_path / device)
    [gpu], [cpu] = runs["cuda"], runs["cpu"]
    assert gpu.keys() == cpu.keys() and all(np.isfinite(v) for v in gpu.values())
    assert gpu == pytest.approx(cpu, rel=2e-2)


# --------------------------------------------------------------------------------------------- GPU resize


@pytest.mark.parametrize("plan", [CropPlan(10, 32), CropPlan(1, 224)], ids=["10-crop", "1-crop"])
def test_frames_resized_on_the_gpu_equal_torchvisions_float_resize(plan):
    """Small frames travel unresized and the encoder resizes them on the GPU: there torchvision resizes in
    float32 and rounds once, so the result is the CPU's float32 resize, to one level where a value sits on
    .5. (The decode workers' uint8 resize on the CPU clamps after each pass, as PIL does, and differs from
    both where bicubic overshoots at sharp edges: by up to about 15 levels on these frames.)"""
    frames = np.stack(list(scene(24, 3, ((8, 16),))))  # 48x32, a glitch checkerboard in the middle
    bundle = create_clip(ClipConfig(model="cplvad-tiny"), CUDA)
    encoder = BatchEncoder(bundle, plan, CUDA, 16)
    got = encoder.to_device(frames_tensor(frames))
    assert got.device.type == "cuda" and got.is_contiguous(memory_format=torch.channels_last)
    want = resize_frames(frames_tensor(frames).float(), plan).clamp(0, 255).round().to(torch.uint8)
    assert got.shape == want.shape == (24, 3, *plan.frame_size)
    diff = (got.cpu().int() - want.int()).abs()
    assert diff.max() <= 1 and (diff > 0).float().mean() < 0.01


def test_features_extracted_on_the_gpu_match_the_cpu(tmp_path):
    """The whole extraction on the GPU (small frames resized there, fp16 autocast) against the CPU, every crop
    of a 10-crop extraction: within 2% of the largest feature value. Measured on the CPU, the two resizes
    alone differ by 0.5% and fp16 adds about as much; neighbouring snippets differ by 5-10%."""
    make_video(tmp_path / "videos" / "Normal" / "a.mp4", 70, seed=5)  # 48x32 frames, 4 snippets
    features = {}
    for device in ("cuda", "cpu"):
        cfg = extract_config(sampling="mean:4", crops=10, device=device)
        report = extract_run(tmp_path / "videos", tmp_path / device, cfg)
        assert report.extracted == 1 and not report.failed
        features[device] = np.stack(
            [np.load(tmp_path / device / "Normal" / f"a__{k}.npy") for k in range(10)]
        )
    gpu, cpu = features["cuda"], features["cpu"]
    assert gpu.shape == cpu.shape == (10, 4, 64)
    tolerance = 0.02 * np.abs(cpu).max()
    assert np.abs(gpu - cpu).max() <= tolerance
    assert np.abs(np.diff(cpu, axis=1)).max(axis=(0, 2)).min() > tolerance  # it tells snippets apart
