import re
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
    "car.release.max_gap": 21,
    "car.release.min_length": 7,
    "car.release.vote_sum": 33.0,
    "car.release.flat_ratio": 0.95,
    "car.release.flat_ratio_end": 0.95,
    "eval.author_script": "xd",
}


def _flat_keys(d: dict, prefix: str = "") -> set[str]:
    return {
        k
        for key, v in d.items()
        for k in (_flat_keys(v, f"{prefix}{key}.") if isinstance(v, dict) else {prefix + key})
    }


@pytest.mark.parametrize("name, dataset_numbers", [("paper-ucf.yaml", {}), ("paper-xd.yaml", XD_NUMBERS)])
def test_paper_recipes_are_the_defaults_plus_the_paper_rule_with_each_datasets_numbers(name, dataset_numbers):
    path = REPO / "configs" / name
    recipe, defaults = load_config(path).flat(), Config().flat()
    assert _flat_keys(yaml.safe_load(path.read_text())) == set(defaults)  # every setting spelled out
    changed = {k: v for k, v in recipe.items() if v != defaults[k]}
    assert set(changed) == PAPER_RECIPE_CHANGES | set(dataset_numbers)
    assert changed["car.rule"] == "paper" and changed["car.keep_topk"] is False
    assert {k: changed[k] for k in dataset_numbers} == dataset_numbers
    # the UCF-Crime numbers of the authors' release are the documented defaults of car.release
    assert recipe["car.release.vote_sum"] == (33.0 if dataset_numbers else 22.0)


def test_root_params_file_is_the_demo_sizing_of_the_paper_config():
    demo, paper = load_config(REPO / "params.yaml").flat(), Config().flat()
    changed = {k for k in paper if demo[k] != paper[k]}
    assert changed == {
        "data.feedback",  # the repository's feedback folder (README, "The operators' loop")
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


RELEASE_CHANGES = {
    "model.max_len",
    "train.epochs",
    "train.lr_schedule",
    "train.lr_milestones",
    "car.rule",
    "eval.level_fusion",
    "eval.level_upsampling",
}
CITATION = re.compile(r"\[release\][^#]*?\b[\w/]+\.py:\d+")
"""A comment naming the release and one of its files with a line number."""


def _leaf_lines(text: str) -> dict[str, str]:
    """``section.key`` (and ``section.sub.key``) -> its YAML line, for a file of two-space indented sections."""
    lines, path = {}, []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        depth = (len(line) - len(line.lstrip())) // 2
        key = line.strip().split(":", 1)[0]
        path = [*path[:depth], key]
        lines[".".join(path)] = line
    return lines


@pytest.mark.parametrize("name, extra", [("ucf", set()), ("xd", {"train.lr"})])
def test_release_recipes_are_the_paper_recipes_with_the_releases_values_each_citing_its_line(name, extra):
    paper_path, release_path = (
        REPO / "configs" / f"paper-{name}.yaml",
        REPO / "configs" / f"release-{name}.yaml",
    )
    paper, release = load_config(paper_path).flat(), load_config(release_path).flat()
    assert _flat_keys(yaml.safe_load(release_path.read_text())) == set(paper)  # every setting spelled out
    changed = {k for k in paper if paper[k] != release[k]}
    assert changed == RELEASE_CHANGES | extra
    assert release["car.rule"] == "release" and release["train.lr_schedule"] == "multistep"
    lines = _leaf_lines(release_path.read_text())
    for key in changed:
        assert CITATION.search(lines[key]), f"{key} does not cite the release's file and line: {lines[key]}"
    assert (
        CITATION.search(_leaf_lines(paper_path.read_text())["model.max_len"]) is None
    )  # n = 192: the paper's
