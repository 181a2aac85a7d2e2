from pathlib import Path

import pytest
import yaml

from cplvad.config import Config, load_config
from cplvad.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


PAPER_RECIPE_CHANGES = {
    "data.dataset",
    "clip.pretrained",
    "car.rule",
    "car.keep_topk",
    "eval.report_author_protocol",
    "extract.crops",
}
XD_NUMBERS = {
    "car.official.max_gap": 21,
    "car.official.min_length": 7,
    "car.official.vote_sum": 33.0,
    "car.official.flat_ratio": 0.95,
    "car.official.flat_ratio_end": 0.95,
    "eval.author_script": "xd",
}


def _flat_keys(d: dict, prefix: str = "") -> set[str]:
    return {
        k
        for key, v in d.items()
        for k in (_flat_keys(v, f"{prefix}{key}.") if isinstance(v, dict) else {prefix + key})
    }


@pytest.mark.parametrize("name, dataset_numbers", [("paper-ucf.yaml", {}), ("paper-xd.yaml", XD_NUMBERS)])
def test_paper_recipes_are_the_defaults_plus_the_official_rule_with_each_datasets_numbers(
    name, dataset_numbers
):
    path = REPO / "configs" / name
    recipe, defaults = load_config(path).flat(), Config().flat()
    assert _flat_keys(yaml.safe_load(path.read_text())) == set(defaults)  # every setting spelled out
    changed = {k: v for k, v in recipe.items() if v != defaults[k]}
    assert set(changed) == PAPER_RECIPE_CHANGES | set(dataset_numbers)
    assert changed["car.rule"] == "official" and changed["car.keep_topk"] is False
    assert {k: changed[k] for k in dataset_numbers} == dataset_numbers
    # the UCF-Crime numbers of the authors' release are the documented defaults of car.official
    assert recipe["car.official.vote_sum"] == (33.0 if dataset_numbers else 22.0)


def test_root_params_file_is_the_demo_sizing_of_the_paper_config():
    demo, paper = load_config(REPO / "params.yaml").flat(), Config().flat()
    changed = {k for k in paper if demo[k] != paper[k]}
    assert changed == {
        "clip.model",
        "model.width",
        "model.heads",
        "train.epochs",
        "train.validation_fraction",
        "train.batch_size",
        "train.lr",
    }


def test_overrides_are_parsed_as_yaml_and_nested():
    cfg = load_config(
        REPO / "params.yaml", ["train.epochs=3", "car.thresholds=[0.4, 0.6]", "clip.config_dir=/x"]
    )
    assert cfg.train.epochs == 3
    assert cfg.car.thresholds == [0.4, 0.6]
    assert cfg.clip.config_dir == "/x"


def test_bad_literal_names_key_and_allowed_values():
    with pytest.raises(ConfigError) as err:
        load_config(REPO / "params.yaml", ["stage2.supervision=both"])
    msg = str(err.value)
    assert "stage2.supervision" in msg and "'both'" in msg
    for allowed in ("cross", "b_to_c", "c_to_b", "self"):
        assert allowed in msg


def test_unknown_key_lists_allowed_keys():
    with pytest.raises(ConfigError) as err:
        load_config(None, ["train.epoch=3"])
    msg = str(err.value)
    assert "train.epoch" in msg and "unknown key" in msg and "epochs" in msg


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("model.max_len=100", "multiple of 32"),
        ("car.thresholds=[1.5]", "(0, 1)"),
        ("extract.sampling=median", "mean:K"),
        ("train.lr=-1", "greater than 0"),
    ],
)
def test_value_checks(override, fragment):
    with pytest.raises(ConfigError, match=None) as err:
        load_config(None, [override])
    assert fragment in str(err.value)


def test_malformed_override_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="section.key=value"):
        load_config(None, ["train.epochs"])
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "p.yaml"
    bad.write_text("- a list\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(bad)


def test_flat_view_for_tracking():
    flat = Config().flat()
    assert flat["train.lr"] == 1e-4 and flat["stage2.supervision"] == "cross" and flat["seed"] == 0
