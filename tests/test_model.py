"""Model pieces: level upsampling, masking, prompts (causal-EOT shortcut), losses with hand values."""

import math

import pytest
import torch
from conftest import tiny_config

from cplvad.clip import create_clip
from cplvad.config import ClipConfig
from cplvad.modeling.dual_branch import upsample_levels
from cplvad.modeling.factory import create_model
from cplvad.modeling.losses import abnormality_logit, mil_align, soft_focal, topk_bce, topk_count, topk_mean
from cplvad.modeling.prompts import FrozenTextEncoder, class_words


@pytest.fixture(scope="module")
def tiny_model():
    model, meta = create_model(
        tiny_config("model.dropout=0.0"), ["Normal", "Fighting", "RoadAccidents"], 16, stage=1
    )
    return model.eval()


def test_level_upsampling_positions():
    # LevelOutputs layout: level i uses its first n / 2^i positions; value j sits at snippet 2^i * j
    values = torch.zeros(1, 3, 8)
    values[0, 0] = torch.arange(8.0)
    values[0, 1, :4] = torch.tensor([10.0, 20.0, 30.0, 40.0])
    values[0, 2, :2] = torch.tensor([100.0, 200.0])
    full = torch.zeros(1, 3, 8, dtype=torch.bool)
    full[0, 0], full[0, 1, :4], full[0, 2, :2] = True, True, True
    up = upsample_levels(values, full, 8)[0]
    assert up[0].tolist() == list(range(8))
    assert up[1].tolist() == [10, 15, 20, 25, 30, 35, 40, 40]  # snippet 7 is past the last value: held
    assert up[2].tolist() == [100, 125, 150, 175, 200, 200, 200, 200]
    # a video with 3 valid snippets: level 1 has 2 valid values, padding is never interpolated in
    short = torch.zeros(1, 3, 8, dtype=torch.bool)
    short[0, 0, :3], short[0, 1, :2], short[0, 2, :1] = True, True, True
    up = upsample_levels(values, short, 8)[0]
    assert up[1, :3].tolist() == [10, 15, 20] and up[2, :3].tolist() == [100, 100, 100]
    # class logits (B, L, n, M) interpolate the same way, per class
    up4 = upsample_levels(torch.stack([values, 2 * values], dim=-1), full, 8)[0]
    assert up4[1, :, 1].tolist() == [20, 30, 40, 50, 60, 70, 80, 80]


def test_padding_never_leaks_into_valid_positions(tiny_model):
    torch.manual_seed(0)
    x = torch.randn(2, 32, 16)
    mask = torch.arange(32)[None] < torch.tensor([[20], [32]])
    noisy = x.clone()
    noisy[0, 20:] = torch.randn(12, 16) * 100
    with torch.no_grad():
        a, b = tiny_model(x, mask), tiny_model(noisy, mask)
    torch.testing.assert_close(a.binary[a.mask], b.binary[b.mask])
    torch.testing.assert_close(a.classes[a.mask], b.classes[b.mask])
    assert a.binary.shape == (2, 3, 32) and a.classes.shape == (2, 3, 32, 3)
    assert a.mask[0].sum(dim=1).tolist() == [20, 10, 5] and a.mask[1].sum(dim=1).tolist() == [32, 16, 8]


def test_one_pass_over_concatenated_levels_equals_scoring_each_level(tiny_model):
    torch.manual_seed(1)
    x = torch.randn(2, 32, 16)
    mask = torch.arange(32)[None] < torch.tensor([[27], [32]])
    with torch.no_grad():
        out = tiny_model(x, mask)
        feats, masks = tiny_model.encoder(x, mask)
        for i, (f, m) in enumerate(zip(feats, masks)):
            alone = tiny_model.binary_head(f, m)
            t = f.shape[2]
            torch.testing.assert_close(out.binary[:, i, :t], alone, rtol=1e-5, atol=1e-5)


def test_binary_head_starts_at_the_prior(tiny_model):
    assert torch.sigmoid(tiny_model.binary_head.cls.conv.bias).item() == pytest.approx(0.01)


def test_class_words():
    assert class_words("RoadAccidents") == "road accidents"
    assert class_words("car_accident") == "car accident"
    assert class_words("Normal") == "normal"


def test_causal_eot_shortcut_equals_full_77_token_encoding(tiny_model):
    clip = create_clip(ClipConfig(model="cplvad-tiny"))
    enc = FrozenTextEncoder(clip.model)
    ids = clip.tokenizer(["a video of fighting", "a video of a road accident at night"])
    eot = ids.argmax(dim=-1)
    short = int(eot.max()) + 1
    with torch.no_grad():
        full = clip.model.encode_text(ids)
        cut = enc(enc.token_embedding(ids[:, :short]), eot)
    torch.testing.assert_close(cut, full, rtol=1e-5, atol=1e-5)
    # the learnable prompts, each written out and padded to all 77 positions, give the same features
    prompts = tiny_model.prompts
    with torch.no_grad():
        encoded = prompts.encode()
        emb, eot = prompts.tokens().sequences()
        padded = torch.zeros(*emb.shape[:2], 77, emb.shape[-1])
        padded[:, :, : emb.shape[2]] = emb
        full = prompts.encoder(padded.flatten(0, 1), eot.repeat(prompts.levels)).view_as(encoded)
    torch.testing.assert_close(encoded, full, rtol=1e-5, atol=1e-5)
    # prompt layout: [SOT] a video of <words> [8 type tokens] [2 level tokens] [EOT]
    words = len(clip.tokenizer(["a video of road accidents"])[0].nonzero()) - 2  # minus SOT and EOT
    m = 2  # RoadAccidents
    assert int(eot[m]) == 1 + words + 8 + 2
    torch.testing.assert_close(emb[2, m, 1 + words], prompts.type_tokens[1, 0])
    torch.testing.assert_close(emb[2, m, 1 + words + 8], prompts.level_tokens[2, 0])
    torch.testing.assert_close(emb[0, 0, 1 + 3 + 1], prompts.type_tokens[0, 0])  # "a video of normal": N_P
    torch.testing.assert_close(emb[1, m, int(eot[m])], prompts.encoder.token_embedding(ids.max()))  # EOT


def test_shared_class_prefixes_equal_one_sequence_per_prompt(tiny_model):
    """Values and gradients: class prefixes run once and shared by the levels == every prompt run alone."""
    prompts = tiny_model.prompts
    assert prompts.encoder.shares_prefixes  # open_clip's standard text blocks
    torch.manual_seed(2)
    weights = torch.randn(prompts.levels, prompts.n_classes, prompts.encoder.embed_dim)
    results = []
    try:
        for shared in (True, False):
            prompts.encoder.shares_prefixes = shared
            prompts.zero_grad(set_to_none=True)
            text = prompts.encode()
            (text * weights).sum().backward()
            results.append(
                (text.detach(), prompts.type_tokens.grad.clone(), prompts.level_tokens.grad.clone())
            )
    finally:
        prompts.encoder.shares_prefixes = True
        prompts.zero_grad(set_to_none=True)
    for a, b in zip(*results, strict=True):
        scale = float(a.abs().max())
        assert scale > 0
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5 * scale)  # float32 rounding, not a difference
    # the classes' prefixes have different lengths here, so the suffix masks are really exercised
    assert len(set(prompts.prefix_len.tolist())) > 1


def test_gradients_reach_prompt_tokens_not_clip(tiny_model):
    tiny_model.train()
    try:
        text = tiny_model.prompts()
        text.sum().backward()
        assert (
            tiny_model.prompts.type_tokens.grad is not None
            and tiny_model.prompts.level_tokens.grad is not None
        )
        assert all(p.grad is None for p in tiny_model.prompts.encoder.parameters())
    finally:
        tiny_model.zero_grad(set_to_none=True)
        tiny_model.eval()


def test_topk_mean_over_valid_positions():
    values = torch.tensor([[[0.1, 0.9, 0.5, 0.95] + [0.0] * 16, [0.2] * 20]])  # (B=1, L=2, n=20)
    mask = torch.tensor([[[True] * 3 + [False] * 17, [True] * 20]])
    k = topk_count(mask)
    assert k.tolist() == [[1, 2]]  # floor(3/16)+1, floor(20/16)+1
    assert topk_mean(values, mask, k)[0].tolist() == pytest.approx([0.9, 0.2])  # 0.95 is padding


def test_topk_bce_and_mil_align_hand_values():
    # one level, 4 valid snippets -> k = 1; logits 0 and ln 3 -> top-1 probability 0.75
    logits = torch.tensor([[[0.0, math.log(3.0), 0.0, 0.0]]])
    mask = torch.ones(1, 1, 4, dtype=torch.bool)
    assert topk_bce(logits, mask, torch.tensor([1.0])).item() == pytest.approx(-math.log(0.75), rel=1e-5)
    assert topk_bce(logits, mask, torch.tensor([0.0])).item() == pytest.approx(-math.log(0.25), rel=1e-5)
    # classes (normal, A, B): top-1 per class -> video logits (1, 2, 0); label A+B -> target (0, .5, .5)
    cls = torch.tensor([[[[1.0, 2.0, 0.0], [0.0, 1.0, -1.0]]]])
    m2 = torch.ones(1, 1, 2, dtype=torch.bool)
    log_p = torch.log_softmax(torch.tensor([1.0, 2.0, 0.0]), 0)
    expected = -(0.5 * log_p[1] + 0.5 * log_p[2]).item()
    assert mil_align(cls, m2, torch.tensor([[0.0, 1.0, 1.0]])).item() == pytest.approx(expected, rel=1e-5)
    # two levels average: the second level alone would give -log(0.25) for a normal video
    two = torch.tensor([[[0.0, math.log(3.0)], [math.log(3.0), 0.0]]])
    assert topk_bce(two, torch.ones(1, 2, 2, dtype=torch.bool), torch.tensor([0.0])).item() == pytest.approx(
        -math.log(0.25)
    )


def test_focal_loss_at_soft_targets():
    mask = torch.ones(1, 1, dtype=torch.bool)
    # p = 0.5 at a 0.5 target: |y - p|^2 = 0 -> no loss
    assert soft_focal(torch.zeros(1, 1), torch.full((1, 1), 0.5), mask, 2.0, 0.25).item() == 0.0
    # y = 0.8, p = 0.5: 0.3^2 * BCE (ln 2) * alpha_t (0.25*0.8 + 0.75*0.2 = 0.35) = 0.021834
    assert soft_focal(torch.zeros(1, 1), torch.full((1, 1), 0.8), mask, 2.0, 0.25).item() == pytest.approx(
        0.021834, rel=1e-4
    )
    # padded positions do not count
    two = soft_focal(torch.zeros(1, 2), torch.tensor([[0.8, 0.0]]), torch.tensor([[True, False]]), 2.0, 0.25)
    assert two.item() == pytest.approx(0.021834, rel=1e-4)


def test_abnormality_logit_matches_one_minus_normal_probability():
    logits = torch.tensor([[0.3, -1.0, 2.0, 0.5]])
    p_normal = torch.softmax(logits, -1)[0, 0]
    assert torch.sigmoid(abnormality_logit(logits)).item() == pytest.approx(1 - p_normal.item(), rel=1e-6)
