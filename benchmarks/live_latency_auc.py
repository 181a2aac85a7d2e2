"""Frame AUC of live scoring against its latency: what ``cplvad predict --live --latency K`` costs in accuracy
(not a test; prints a table). The default ``predict.latency`` is the smallest K within 1 point of batch
scoring here.

    .venv/bin/python benchmarks/live_latency_auc.py [--data features|videos] [--work DIR] [--set k=v]

``features``: ``cplvad demo-data`` (the built-in feature-level demo: 24 + 24 training and 12 + 12 test videos
of 48-360 snippets, 512-d). ``videos``: ``cplvad demo-videos`` (same counts, 8-20 s at 25 fps, 12-31 snippets)
through the ``cplvad-demo`` CLIP. Either way a model is trained with the root ``params.yaml`` (the demo
settings: n = ``model.max_len`` = 192, width 128, 40 epochs, stage 1 -> CAR pseudo labels -> stage 2, seed 0),
then the test set is scored in batch (aligned chunks of n, the published protocol) and live (every test
video is one live segment, each snippet scored in the window of n ending K snippets after it, as
``SlidingScorer`` does), and both go through the same metrics. Events (at the model's calibrated threshold)
are compared too: the share of batch events that live scoring finds (same class, IoU >= 0.5) and the mean
shift of their boundaries in snippets. Every window is scored once and read at every K (checked against
``sliding_scores``). Trained models are kept in ``--work`` and reused.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from cplvad.config import load_config
from cplvad.data import load_dataset
from cplvad.data.demo import write_demo_dataset
from cplvad.data.features import load_features
from cplvad.eval.events import find_events
from cplvad.eval.metrics import compute_metrics
from cplvad.eval.predictions import Predictions
from cplvad.eval.scoring import predict_test_set, score_chunks
from cplvad.modeling.factory import CALIBRATION_KEY, load_model, read_model_config
from cplvad.predict.sliding import sliding_scores
from cplvad.workflow import make_pseudo_labels, train_stage

REPO = Path(__file__).resolve().parents[1]
DEFAULT_LATENCIES = "0,1,2,3,4,6,8,12,16,24,32,48,64,96,128,191"
IOU = 0.5


def prepare(data: str, work: Path, config) -> Path:  # noqa: ANN001
    """The demo dataset's manifest (written or extracted on the first call)."""
    if data == "features":
        manifest = work / "data" / "dataset.yaml"
        return manifest if manifest.is_file() else write_demo_dataset(work / "data", config.demo)
    from cplvad.extract.demo_videos import write_demo_videos
    from cplvad.extract.options import ExtractOptions
    from cplvad.extract.runner import extract

    root = work / "videos"
    manifest = root / "dataset.yaml"
    if not manifest.is_file():
        write_demo_videos(root, config.demo)
    for split in ("train", "test"):
        extract(
            str(root / f"{split}_videos.csv"),
            str(root / "features"),
            config,
            ExtractOptions(list_name=f"{split}.csv"),
            progress=False,
            log=lambda _: None,
        )
    return manifest


def train(manifest: Path, work: Path, config) -> Path:  # noqa: ANN001
    train_stage(manifest, work / "stage1", config, stage=1, progress=False)
    make_pseudo_labels(manifest, work / "stage1", config, out=work / "pseudo.npz", progress=False)
    train_stage(manifest, work / "stage2", config, stage=2, pseudo_path=work / "pseudo.npz", progress=False)
    return work / "stage2"


def window_outputs(model, feats: np.ndarray, device: torch.device) -> tuple[np.ndarray, np.ndarray]:  # noqa: ANN001
    """Scores of every window of a segment: the one ending at each snippet e ((T, n) and (T, n, M))."""
    n, t = model.cfg.max_len, len(feats)
    binary, classes = [], []
    for s in range(0, t, 64):
        ends = np.arange(s, min(t, s + 64))
        starts = np.maximum(0, ends - n + 1)
        x = np.zeros((len(ends), n, feats.shape[1]), np.float32)
        for i, (a, e) in enumerate(zip(starts, ends, strict=True)):
            x[i, : e - a + 1] = feats[a : e + 1]
        b, c = score_chunks(
            model, torch.from_numpy(x).to(device), torch.from_numpy(ends - starts + 1).to(device)
        )
        binary.append(b.cpu().numpy())
        classes.append(c.cpu().numpy())
    return np.concatenate(binary), np.concatenate(classes)


def at_latency(windows: tuple[np.ndarray, np.ndarray], k: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Snippet t read from the window ending at min(t + k, T - 1), at its position there."""
    binary, classes = windows
    t = np.arange(len(binary))
    ends = np.minimum(t + k, len(binary) - 1)
    pos = t - np.maximum(0, ends - n + 1)
    return binary[ends, pos], classes[ends, pos]


def event_agreement(batch: list, live: list) -> tuple[int, list[float]]:  # noqa: ANN001
    """Batch events found live (same class, IoU >= IOU) and the boundary shifts (snippets) of those found."""
    found, shifts = 0, []
    for e in batch:
        for f in live:
            inter = min(e.end_snippet, f.end_snippet) - max(e.start_snippet, f.start_snippet)
            union = max(e.end_snippet, f.end_snippet) - min(e.start_snippet, f.start_snippet)
            if f.label == e.label and inter / union >= IOU:
                found += 1
                shifts += [abs(f.start_snippet - e.start_snippet), abs(f.end_snippet - e.end_snippet)]
                break
    return found, shifts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", choices=["features", "videos"], default="features")
    ap.add_argument("--work", type=Path, default=REPO / "outputs" / "live-latency")
    ap.add_argument("--latencies", default=DEFAULT_LATENCIES, help="comma-separated K values")
    ap.add_argument(
        "--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override (repeatable)"
    )
    args = ap.parse_args()
    torch.manual_seed(0)
    config = load_config(REPO / "params.yaml", ["train.device=cpu", "extract.device=cpu", *args.set])
    work = args.work / args.data
    manifest = prepare(args.data, work, config)
    model_dir = train(manifest, work, config)
    model, _, _ = load_model(model_dir)
    threshold = read_model_config(model_dir)[1].extra[CALIBRATION_KEY]["threshold"]
    dataset = load_dataset(manifest)
    device = torch.device("cpu")
    n, names = model.cfg.max_len, list(dataset.classes.names)

    batch = predict_test_set(model, dataset, device, progress=False)
    reference = compute_metrics(dataset, batch)
    feats = [load_features(dataset.test.locate(v.rows[0]), model.feature_dim) for v in dataset.test]
    windows = [window_outputs(model, f, device) for f in feats]
    check = sliding_scores(model, feats[0], 8, device)[0]
    assert np.allclose(at_latency(windows[0], 8, n)[0], check, atol=1e-5), (
        "window read-out differs from SlidingScorer"
    )
    batch_events = [find_events(b, c, threshold, 1, names) for _, b, c in batch.videos()]
    total = sum(len(e) for e in batch_events)
    lengths = [len(f) for f in feats]
    print(
        f"{args.data}: {len(feats)} test videos of {min(lengths)}-{max(lengths)} snippets, n = {n}; batch scoring: "
        f"frame AUC {reference['frame_auc_binary']:.2f}, AP {reference['frame_ap_binary']:.2f}, {total} events "
        f"at the calibrated threshold {threshold:.3f}"
    )
    print(f"{'K':>4} {'AUC':>7} {'dAUC':>6} {'AP':>7} {'events found':>13} {'boundary shift':>15}")
    for k in (int(x) for x in args.latencies.split(",")):
        if k >= n:
            continue
        scored = [at_latency(w, k, n) for w in windows]
        live = Predictions.from_videos(
            [(v.name, b, c) for v, (b, c) in zip(dataset.test, scored, strict=True)]
        )
        m = compute_metrics(dataset, live)
        found, shifts = 0, []
        for events, (b, c) in zip(batch_events, scored, strict=True):
            f, s = event_agreement(events, find_events(b, c, threshold, 1, names))
            found, shifts = found + f, shifts + s
        print(
            f"{k:>4} {m['frame_auc_binary']:>7.2f} {m['frame_auc_binary'] - reference['frame_auc_binary']:>+6.2f} "
            f"{m['frame_ap_binary']:>7.2f} {f'{found}/{total}':>13} {np.mean(shifts) if shifts else 0:>15.2f}"
        )
        sys.stdout.flush()


if __name__ == "__main__":
    main()
