"""Model pieces: level upsampling, masking, prompts (causal-EOT shortcut), losses with hand values."""

import math

import pytest
import torch

from cplvad.clip import create_clip
from cplvad.config import ClipConfig, Config
from cplvad.modeling.factory import create_model
from cplvad.modeling.losses import abnormality_logit, mil_align, soft_focal, topk_bce, topk_count, topk_mean
from cplvad.modeling.model import upsample_levels
from cplvad.modeling.prompts import FrozenTextEncoder, class_words

TINY = {"clip": {"model": "cplvad-tiny"}, "model": {"max_len": 32, "width": 32, "heads": 2, "levels": 3,
                                                   "stem_blocks": 1, "window": 4, "dropout": 0.0}}


@pytest.fixture(scope="module")
def tiny_model():
    model, meta = create_model(Config.model_validate(TINY), ["Normal", "Fighting", "RoadAccidents"], 16, stage=1)
    return model.eval()


def test_level_upsampling_positions():
    # level 0: snippets 0..5; level 1 value j at snippet 2j; level 2 value j at snippet 4j
    lv0 = torch.arange(6.0)[None]
    lv1 = torch.tensor([[10.0, 20.0, 30.0]])
    lv2 = torch.tensor([[100.0, 200.0]])
    masks = [torch.ones_like(v, dtype=torch.bool) for v in (lv0, lv1, lv2)]
    up = upsample_levels([lv0, lv1, lv2], masks, 6)[0]
    assert up[0].tolist() == [0, 1, 2, 3, 4, 5]
    assert up[1].tolist() == [10, 15, 20, 25, 30, 30]  # snippet 5 is past the last value: held
    assert up[2].tolist() == [100, 125, 150, 175, 200, 200]
    # a video with 3 valid snippets: level 1 has 2 valid values, padding is never interpolated in
    masks = [torch.tensor([[1, 1, 1, 0, 0, 0]]).bool(), torch.tensor([[1, 1, 0]]).bool(), torch.tensor([[1, 0]]).bool()]
    up = upsample_levels([lv0, lv1, lv2], masks, 6)[0]
    assert up[1, :3].tolist() == [10, 15, 20] and up[2, :3].tolist() == [100, 100, 100]


def test_padding_never_leaks_into_valid_positions(tiny_model):
    torch.manual_seed(0)
    x = torch.randn(2, 32, 16)
    mask = torch.arange(32)[None] < torch.tensor([[20], [32]])
    noisy = x.clone()
    noisy[0, 20:] = torch.randn(12, 16) * 100
    with torch.no_grad():
        a, b = tiny_model(x, mask), tiny_model(noisy, mask)
    for la, lb, m in zip(a.binary, b.binary, a.masks):
        torch.testing.assert_close(la[m], lb[m])
    for la, lb, m in zip(a.classes, b.classes, a.masks):
        torch.testing.assert_close(la[m], lb[m])
    assert [m.shape[1] for m in a.masks] == [32, 16, 8]
    assert [int(m[0].sum()) for m in a.masks] == [20, 10, 5]


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
    # the learnable prompts: truncated batch == the same embeddings padded to all 77 positions
    prompts = tiny_model.prompts
    with torch.no_grad():
        truncated = prompts.encode()
        emb = prompts.encoder.token_embedding(prompts.template_ids)
        emb = emb.unsqueeze(0).expand(prompts.levels, -1, -1, -1).clone()
        n_type = prompts.type_tokens.shape[1]
        for m, p in enumerate(prompts.prefix_len):
            emb[:, m, p : p + n_type] = prompts.type_tokens[0 if m == 0 else 1]
            emb[:, m, p + n_type : prompts.eot[m]] = prompts.level_tokens
        padded = torch.zeros(*emb.shape[:2], 77, emb.shape[-1])
        padded[:, :, : emb.shape[2]] = emb
        full = prompts.encoder(padded.flatten(0, 1), prompts.eot.repeat(prompts.levels)).view_as(truncated)
    torch.testing.assert_close(truncated, full, rtol=1e-5, atol=1e-5)


def test_gradients_reach_prompt_tokens_not_clip(tiny_model):
    tiny_model.train()
    try:
        text = tiny_model.prompts()
        text.sum().backward()
        assert tiny_model.prompts.type_tokens.grad is not None and tiny_model.prompts.level_tokens.grad is not None
        assert all(p.grad is None for p in tiny_model.prompts.encoder.parameters())
    finally:
        tiny_model.zero_grad(set_to_none=True)
        tiny_model.eval()


def test_topk_mean_over_valid_positions():
    values = torch.tensor([[0.1, 0.9, 0.5, 0.95] + [0.0] * 16, [0.2] * 20])
    mask = torch.tensor([[True] * 3 + [False] * 17, [True] * 20])
    k = topk_count(mask)
    assert k.tolist() == [1, 2]  # floor(3/16)+1, floor(20/16)+1
    assert topk_mean(values, mask, k).tolist() == pytest.approx([0.9, 0.2])  # 0.95 is padding


def test_topk_bce_and_mil_align_hand_values():
    # one level, 4 valid snippets -> k = 1; logits 0 and ln 3 -> top-1 probability 0.75
    logits = [torch.tensor([[0.0, math.log(3.0), 0.0, 0.0]])]
    masks = [torch.ones(1, 4, dtype=torch.bool)]
    assert topk_bce(logits, masks, torch.tensor([1.0])).item() == pytest.approx(-math.log(0.75), rel=1e-5)
    assert topk_bce(logits, masks, torch.tensor([0.0])).item() == pytest.approx(-math.log(0.25), rel=1e-5)
    # classes (normal, A, B): top-1 per class -> video logits (1, 2, 0); label A+B -> target (0, .5, .5)
    cls = [torch.tensor([[[1.0, 2.0, 0.0], [0.0, 1.0, -1.0]]])]
    m2 = [torch.ones(1, 2, dtype=torch.bool)]
    log_p = torch.log_softmax(torch.tensor([1.0, 2.0, 0.0]), 0)
    expected = -(0.5 * log_p[1] + 0.5 * log_p[2]).item()
    assert mil_align(cls, m2, torch.tensor([[0.0, 1.0, 1.0]])).item() == pytest.approx(expected, rel=1e-5)


def test_focal_loss_at_soft_targets():
    mask = torch.ones(1, 1, dtype=torch.bool)
    # p = 0.5 at a 0.5 target: |y - p|^2 = 0 -> no loss
    assert soft_focal(torch.zeros(1, 1), torch.full((1, 1), 0.5), mask, 2.0, 0.25).item() == 0.0
    # y = 0.8, p = 0.5: 0.3^2 * BCE (ln 2) * alpha_t (0.25*0.8 + 0.75*0.2 = 0.35) = 0.021834
    assert soft_focal(torch.zeros(1, 1), torch.full((1, 1), 0.8), mask, 2.0, 0.25).item() == pytest.approx(0.021834, rel=1e-4)
    # padded positions do not count
    two = soft_focal(torch.zeros(1, 2), torch.tensor([[0.8, 0.0]]), torch.tensor([[True, False]]), 2.0, 0.25)
    assert two.item() == pytest.approx(0.021834, rel=1e-4)


def test_abnormality_logit_matches_one_minus_normal_probability():
    logits = torch.tensor([[0.3, -1.0, 2.0, 0.5]])
    p_normal = torch.softmax(logits, -1)[0, 0]
    assert torch.sigmoid(abnormality_logit(logits)).item() == pytest.approx(1 - p_normal.item(), rel=1e-6)
