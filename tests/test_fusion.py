"""Level fusion at scoring (``eval.level_fusion``, ``eval.level_upsampling``): the paper's default and the
release's mean of step-upsampled probabilities, with hand-computed values."""

import pytest
import torch
from conftest import tiny_config

from cplvad.eval.scoring import fuse_levels, score_chunks
from cplvad.modeling.dual_branch import LevelFusion, LevelOutputs, repeat_levels
from cplvad.modeling.factory import create_model


def two_levels() -> LevelOutputs:
    """n = 4, two levels: level 0 logits (0, 1, 2, 3), level 1 (4, -4) at snippets 0 and 2; 2 classes."""
    binary = torch.tensor([[[0.0, 1.0, 2.0, 3.0], [4.0, -4.0, 0.0, 0.0]]])
    classes = torch.stack([torch.zeros_like(binary), binary], dim=-1)  # class 1 logit = binary, class 0 = 0
    mask = torch.tensor([[[True] * 4, [True, True, False, False]]])
    return LevelOutputs(binary, classes, mask)


def test_repeat_levels_is_repeat_interleave_per_level():
    values = torch.arange(24.0).view(1, 3, 8)
    up = repeat_levels(values, 8)[0]
    for i in range(3):
        assert torch.equal(up[i], values[0, i, : 8 // 2**i].repeat_interleave(2**i))
    assert repeat_levels(values[..., None], 8).shape == (1, 3, 8, 1)


def test_the_papers_fusion_averages_linearly_upsampled_logits():
    binary, classes = fuse_levels(two_levels(), 4, LevelFusion())
    # level 1 linearly upsampled: 4, 0, -4, -4; mean logits 2, 0.5, -1, -0.5
    assert binary[0].tolist() == pytest.approx(torch.sigmoid(torch.tensor([2.0, 0.5, -1.0, -0.5])).tolist())
    assert classes[0, :, 1].tolist() == pytest.approx(binary[0].tolist())  # softmax of (0, z) = sigmoid z


def test_the_releases_fusion_averages_step_upsampled_probabilities():
    binary, classes = fuse_levels(two_levels(), 4, LevelFusion("probabilities", "repeat"))
    s = torch.sigmoid
    want = [
        (s(torch.tensor(a)) + s(torch.tensor(b))).item() / 2 for a, b in ((0, 4), (1, 4), (2, -4), (3, -4))
    ]
    assert binary[0].tolist() == pytest.approx(want)
    # the C branch averages its (step-upsampled) logits, then the softmax: mean logits 2, 2.5, -1, -0.5
    assert classes[0, :, 1].tolist() == pytest.approx(s(torch.tensor([2.0, 2.5, -1.0, -0.5])).tolist())


def test_a_model_scores_with_the_fusion_of_its_config():
    cfg = tiny_config("eval.level_fusion=probabilities", "eval.level_upsampling=repeat")
    model, _ = create_model(cfg, ["Normal", "Fighting"], 16, stage=1)
    assert model.fusion == LevelFusion("probabilities", "repeat")
    model.eval()
    x, lengths = torch.randn(2, 32, 16), torch.tensor([32, 20])
    release_b, _ = score_chunks(model, x, lengths)
    model.fusion = LevelFusion()
    paper_b, _ = score_chunks(model, x, lengths)
    assert release_b.shape == paper_b.shape == (2, 32) and not torch.allclose(release_b, paper_b)
