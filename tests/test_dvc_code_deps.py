"""Every DVC stage depends on the code it runs: the cplvad modules its command imports, read from the source.

A stage's code is the closure of module-level ``cplvad`` imports of the modules that do its work (listed
below: the command's module and what it calls, including the few imports made inside those functions).
``cplvad.cli``'s ``__init__`` registers every command; only the stage's own command module counts.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
WORK = {
    "demo_videos": ["cplvad.cli.extract", "cplvad.extract.demo_videos"],
    "prepare_data": [
        "cplvad.cli.datasets",
        "cplvad.workflow.data",
        "cplvad.extract.runner",
        "cplvad.preflight",
    ],
    "train_stage1": ["cplvad.cli.stages", "cplvad.workflow.stages"],
    "pseudo_labels": ["cplvad.cli.stages", "cplvad.workflow.stages"],
    "train_stage2": ["cplvad.cli.stages", "cplvad.workflow.stages"],
    "evaluate": ["cplvad.cli.stages", "cplvad.workflow.stages", "cplvad.tracking.registry"],
    "track": [
        "cplvad.cli.mlops",
        "cplvad.workflow.stages",
        "cplvad.tracking.registry",
        "cplvad.tracking.runs",
    ],
}
NOT_FOLLOWED = {"cplvad.cli"}
STAGES = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def module_file(name: str) -> Path | None:
    base = SRC.joinpath(*name.split("."))
    for candidate in (base / "__init__.py", base.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def imported(name: str) -> set[str]:
    """cplvad modules imported at module level by ``name`` (with their parent packages)."""
    tree = ast.parse(module_file(name).read_text())
    found = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("cplvad"):
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names if module_file(f"{node.module}.{a.name}")}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("cplvad")}
    parents = {".".join(m.split(".")[:i]) for m in found for i in range(1, m.count(".") + 1)}
    return {m for m in found | parents if module_file(m)}


def code_of(stage: str) -> set[Path]:
    seen: set[str] = set()
    todo = list(WORK[stage])
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        if name not in NOT_FOLLOWED:
            todo += imported(name)
    return {module_file(m).relative_to(REPO) for m in seen - NOT_FOLLOWED}


def covered(path: Path, deps: list[str]) -> bool:
    return any(path == Path(d) or Path(d) in path.parents for d in deps)


def test_every_stage_is_described():
    assert set(WORK) == set(STAGES)


@pytest.mark.parametrize("stage", sorted(WORK))
def test_each_stage_depends_on_the_code_it_imports_and_not_on_all_of_it(stage):
    deps = STAGES[stage]["deps"]
    code = code_of(stage)
    missing = sorted(str(p) for p in code if not covered(p, deps) and p.name != "__init__.py")
    assert not missing, f"{stage} runs {missing} but does not depend on it"
    assert "src/cplvad" not in deps and "src" not in deps
    extra = [
        d
        for d in deps
        if d.startswith("src/")
        and d != "src/cplvad/clip_configs"
        and not any(p == Path(d) or Path(d) in p.parents for p in code)
    ]
    assert not extra, f"{stage} depends on {extra}, which it does not import"


def test_training_imports_no_extraction_or_prediction_code():
    code = code_of("train_stage1")  # tracking code it runs: the stage logs itself into MLflow while it trains
    assert not [p for p in code if p.parts[2] in ("predict", "extract")]


def test_resumable_outputs_keep_the_run_cache_and_data_comes_from_params():
    # persist: true turns DVC's run cache off for a stage: only `track` wants that (it must run in every
    # experiment, so that each has its MLflow run); the outputs of the others stay restorable
    for name, stage in STAGES.items():
        outputs = [o for key in ("outs", "metrics") for o in stage.get(key, [])]
        persisted = [o for o in outputs if isinstance(o, dict) and any(v.get("persist") for v in o.values())]
        assert bool(persisted) == (name == "track"), name
    assert "${data.dataset}" in STAGES["prepare_data"]["cmd"]
    for stage in ("train_stage1", "train_stage2"):
        assert "--work-dir" in STAGES[stage]["cmd"]
    consumers = [s for s in STAGES if s not in ("demo_videos", "prepare_data")]
    assert all("data/dataset" in STAGES[s]["deps"] for s in consumers)  # dataset.yaml, lists, annotations
