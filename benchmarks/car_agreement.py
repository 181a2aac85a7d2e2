"""How close each CAR rule comes to the authors' pseudo labels: masks of ``car.rule`` simple, paper and
release (slips kept or fixed) against the independent port of their ``Generate_gt`` in
``tests/release_port.py``, on its synthetic test sequences, with the UCF-Crime and XD-Violence numbers.

    python benchmarks/car_agreement.py [--videos 200] [--seed 0]

Prints, per dataset and rule: videos whose mask equals the port's over every valid snippet (of all, and of
those where either has a positive snippet), and the IoU of positive snippets pooled over the videos.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from release_port import UCF, XD, generate_gt, synthetic_sequences  # noqa: E402

from cplvad.config import CarConfig, ReleaseCarConfig  # noqa: E402
from cplvad.pseudo.rules import refine  # noqa: E402

N = 192


def release_numbers(numbers: dict, keep_slips: bool = True) -> ReleaseCarConfig:
    return ReleaseCarConfig(
        max_gap=numbers["grouping"] - 1,
        min_length=numbers["filter"] + 2,
        vote_sum=numbers["cumulative"],
        flat_ratio=numbers["flat1"],
        flat_ratio_end=numbers["flat2"],
        keep_slips=keep_slips,
    )


def rules(numbers: dict) -> dict[str, CarConfig]:
    return {
        "simple": CarConfig(rule="simple", keep_topk=False),
        "paper": CarConfig(rule="paper", keep_topk=False, release=release_numbers(numbers)),
        "release, keep_slips: true": CarConfig(
            rule="release", keep_topk=False, release=release_numbers(numbers)
        ),
        "release, keep_slips: false": CarConfig(
            rule="release", keep_topk=False, release=release_numbers(numbers, keep_slips=False)
        ),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    scores, masks, lengths = synthetic_sequences(args.videos, N, seed=args.seed)
    abnormal = torch.ones(args.videos, dtype=torch.bool)
    print(f"{args.videos} synthetic sequences (tests/release_port.py, seed {args.seed}), n = {N}, 6 levels")
    for dataset, numbers in (("UCF-Crime", UCF), ("XD-Violence", XD)):
        port = [
            np.array(generate_gt(scores[v], int(n), numbers).mask, dtype=bool) for v, n in enumerate(lengths)
        ]
        with_positives = sum(p.any() for p in port)
        print(
            f"\n{dataset}: the port labels {with_positives} of {args.videos} videos with a positive snippet"
        )
        for name, cfg in rules(numbers).items():
            labels = refine(torch.from_numpy(scores), torch.from_numpy(masks), abnormal, N, cfg).numpy() > 0
            ours = [labels[v, :n] for v, n in enumerate(lengths)]
            same = [np.array_equal(a, b) for a, b in zip(ours, port, strict=True)]
            either = [a.any() or b.any() for a, b in zip(ours, port, strict=True)]
            inter = sum(int((a & b).sum()) for a, b in zip(ours, port, strict=True))
            union = sum(int((a | b).sum()) for a, b in zip(ours, port, strict=True))
            same_either = sum(s for s, e in zip(same, either, strict=True) if e)
            print(
                f"  {name:27s} identical {sum(same):3d}/{args.videos}, with positives {same_either:3d}/"
                f"{sum(either)}, positive-snippet IoU {inter / union if union else 1.0:.3f}"
            )


if __name__ == "__main__":
    main()
