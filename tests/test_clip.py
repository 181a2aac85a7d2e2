import pytest
import torch

from cplvad.clip import create_clip
from cplvad.config import ClipConfig
from cplvad.errors import ConfigError


def test_tiny_builtin_config_builds_offline():
    bundle = create_clip(ClipConfig(model="cplvad-tiny"))
    assert bundle.embed_dim == 64 and bundle.image_size == 32 and bundle.weights_sha256 is None
    with torch.no_grad():
        assert bundle.model.encode_text(bundle.tokenizer(["a video of fighting"])).shape == (1, 64)


def test_state_dict_weights_round_trip(tmp_path):
    a = create_clip(ClipConfig(model="cplvad-tiny"))
    path = tmp_path / "tiny.pt"
    torch.save(a.model.state_dict(), path)
    b = create_clip(ClipConfig(model="cplvad-tiny", pretrained=str(path)))
    assert len(b.weights_sha256) == 64
    for (ka, va), (kb, vb) in zip(a.model.state_dict().items(), b.model.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)


def test_clear_errors_for_unknown_model_and_missing_weights(tmp_path):
    with pytest.raises(ConfigError, match="not an open_clip model"):
        create_clip(ClipConfig(model="no-such-model"))
    with pytest.raises(ConfigError, match="neither a file nor an open_clip pretrained tag of cplvad-tiny"):
        create_clip(ClipConfig(model="cplvad-tiny", pretrained=str(tmp_path / "missing.pt")))
    with pytest.raises(ConfigError, match="config_dir"):
        create_clip(ClipConfig(model="cplvad-tiny", config_dir=str(tmp_path / "nope")))


def test_random_weights_are_the_same_everywhere():
    torch.manual_seed(123)
    a = create_clip(ClipConfig(model="cplvad-tiny"))
    torch.manual_seed(456)
    b = create_clip(ClipConfig(model="cplvad-tiny"))
    assert a.weights_id == b.weights_id == "random-init-seed-0"
    assert all(
        torch.equal(x, y) for x, y in zip(a.model.state_dict().values(), b.model.state_dict().values())
    )
