"""The fine-grained mAP on hand-built cases; expected values derived by hand in the comments.

Snippets are 16 frames. For a class channel of one video, proposals are the frame runs above
max - 0.6 (max - min), scored max + 0.7 c where c = mean of the top T frame values (T snippets).
"""

import numpy as np
import pytest

from cplvad.data import ClassList
from cplvad.data.ground_truth import GTSegment
from cplvad.eval.detection_map import IOU_THRESHOLDS, class_scores, detection_map, frame_set_iou, nms

TWO = ClassList(("Normal", "Fight"))
TWO_CODED = ClassList(("Normal", "Fight"), {"A": "Normal"})


def probs(fight):
    fight = np.asarray(fight, dtype=np.float32)
    return np.stack([1 - fight, fight], axis=1)


def run(videos, gts, classes=TWO):
    return [detection_map(videos, gts, classes)[t] for t in IOU_THRESHOLDS]


def test_single_exact_hit_and_normal_class_without_gt():
    # Fight: 0.1 | 0.9 0.9 | 0.1 -> c = mean(top 4 frames) = 0.9, threshold 0.42, proposal [16, 48) = GT: AP 1.
    # Normal: runs [0, 16) and [48, 64), but no Normal GT: AP 0. mAP = 50 at every IoU.
    v = probs([0.1, 0.9, 0.9, 0.1])
    assert run([v], [[GTSegment(16, 48, "Fight")]]) == pytest.approx([50.0] * 5)


def test_iou_boundaries_over_integer_frame_sets():
    # Fight run [16, 32) against GT [0, 64): IoU 16/64 = 0.25 -> hit at 0.1 and 0.2 only.
    v = probs([0.1, 0.9, 0.1, 0.1])
    assert run([v], [[GTSegment(0, 64, "Fight")]]) == pytest.approx([50.0, 50.0, 0.0, 0.0, 0.0])
    assert frame_set_iou(0, 64, 16, 32) == 0.25
    assert frame_set_iou(0, 10, 10, 20) == 0.0


def test_iou_exactly_at_threshold_counts_and_normal_segments_need_the_code():
    # video 0 (abnormal): as in the first test -> Fight AP 1; Normal proposals [0,16), [48,64) score 1.53, FP.
    # video 1 (normal): Normal 0.7 0.8 0.8 0.7 -> threshold 0.74, run [16, 48), score 0.8 + 0.7*0.8 = 1.36,
    #   GT [0, 64) labelled A: IoU 32/64 = 0.5, a hit even at IoU 0.5.
    #   Its Fight channel 0.3 0.2 0.2 0.3 gives two FPs scored 0.51, ranked after the hit at 1.53.
    # With the code A -> Normal: Normal AP = precision at rank 3 = 1/3; Fight AP = 1 -> mAP 66.67.
    # Without the code (UCF): A never matches Normal, Normal AP 0 -> mAP 50.
    videos = [probs([0.1, 0.9, 0.9, 0.1]), probs([0.3, 0.2, 0.2, 0.3])]
    gts = [[GTSegment(16, 48, "Fight")], [GTSegment(0, 64, "A")]]
    assert run(videos, gts, TWO_CODED) == pytest.approx([100 * (1 / 3 + 1) / 2] * 5)
    assert run(videos, gts, TWO) == pytest.approx([50.0] * 5)


def test_a_class_without_any_proposal_zeroes_that_iou():
    # Theft is constant in every video (max == min): no frame exceeds the threshold, no proposal at all,
    # so the published code returns mAP 0 although Fight alone would score AP 1.
    three = ClassList(("Normal", "Fight", "Theft"))
    v = np.stack(
        [np.float32([0.9, 0.1, 0.1, 0.9]), np.float32([0.1, 0.9, 0.9, 0.1]), np.zeros(4, np.float32)], 1
    )
    assert run([v], [[GTSegment(16, 48, "Fight")]], three) == [0.0] * 5


def test_ties_keep_list_order_as_the_published_ranking_does():
    # Two identical videos, both Fight proposals [16, 48) scored 1.53. Only one video has the GT.
    # Equal scores rank in video order, so: GT in video 0 -> TP first, AP 1; in video 1 -> AP 1/2.
    v = probs([0.1, 0.9, 0.9, 0.1])
    first = run([v, v], [[GTSegment(16, 48, "Fight")], []])
    second = run([v, v], [[], [GTSegment(16, 48, "Fight")]])
    assert first == pytest.approx([50.0] * 5)
    assert second == pytest.approx([25.0] * 5)


def test_greedy_matching_takes_the_best_unmatched_gt():
    # Fight 0.1 0.9 0.9 0.9 -> one run [16, 64). GT [0, 32) (IoU 16/64) and [32, 64) (IoU 32/48):
    # it takes [32, 64) wherever 2/3 passes; [0, 32) stays unmatched: AP = 1/2 up to IoU 0.5.
    v = probs([0.1, 0.9, 0.9, 0.9])
    gts = [[GTSegment(0, 32, "Fight"), GTSegment(32, 64, "Fight")]]
    assert run([v], gts) == pytest.approx([25.0] * 5)


def test_class_score_is_mean_of_top_frames_and_nms_suppresses_overlaps():
    frames = np.repeat(np.float32([[0.2], [0.6], [1.0]]), 16, axis=0)
    assert class_scores(frames)[0] == pytest.approx(1.0)  # top 3 of 48 frames are all 1.0
    # sorted by score: [0,10), [2,10) (IoU 0.8 > 0.6: suppressed), [20,30) (no overlap: kept)
    assert nms(np.array([0.0, 2.0, 20.0]), np.array([10.0, 10.0, 30.0])) == [0, 2]
