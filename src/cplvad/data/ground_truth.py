"""Frame-level and segment ground truth exactly as the published UCF-Crime / XD-Violence protocol builds it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cplvad.data.annotations import Segment

NORMAL_SEGMENT_LABEL = "A"
"""The published segment GT labels every normal test video ``A`` (XD's normal code) on both benchmarks.

On UCF-Crime the normal class is called ``Normal``, so these segments never match it and the normal
class contributes AP 0 to the mean; we keep this so our mAP is comparable with published numbers.
"""


@dataclass(frozen=True)
class GTSegment:
    start: int
    end: int
    label: str


def frame_labels(segments: Sequence[Segment], n_snippets: int, frames_per_snippet: int = 16) -> np.ndarray:
    """0/1 vector of length ``n_snippets * frames_per_snippet``; annotated [s, e) set to 1, cut at the end."""
    gt = np.zeros(n_snippets * frames_per_snippet, dtype=np.float32)
    for seg in segments:
        if seg.start < 0 or seg.end < 0:
            continue
        gt[seg.start : seg.end] = 1.0
    return gt


def segment_ground_truth(
    segments: Sequence[Segment],
    n_snippets: int,
    abnormal: bool,
    video_label: str,
    frames_per_snippet: int = 16,
) -> list[GTSegment]:
    """Per-video (start, end, label) triples for the mAP protocol.

    Abnormal video: its annotated segments in file order, uncut, labelled with the class token of the
    annotation (or the video's own label where the format has none). Normal video: one segment
    [0, T*16] labelled ``A`` (see NORMAL_SEGMENT_LABEL).
    """
    if not abnormal:
        return [GTSegment(0, n_snippets * frames_per_snippet, NORMAL_SEGMENT_LABEL)]
    return [GTSegment(s.start, s.end, s.label if s.label is not None else video_label) for s in segments]
