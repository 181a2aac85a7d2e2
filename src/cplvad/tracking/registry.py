"""Model registry: register an evaluated model (with its model card as description), promote a version to
``champion`` only on validation evidence, and resolve ``models:/...`` URIs to a model directory.

Who moves the aliases: a pipeline execution (``dvc repro``, ``cplvad run --track``, the Kubeflow training
pipeline) registers its final model and points ``candidate`` at it; a DVC experiment registers its model
without any alias (``tracking.alias_experiments``), ``--seeds`` and ``ablate`` register nothing; only
``cplvad promote`` moves ``champion``.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from cplvad.config import Config
from cplvad.errors import CplvadError
from cplvad.modeling.factory import read_model_config
from cplvad.tracking.runs import mlflow_module, setup_mlflow, use_store

if TYPE_CHECKING:
    from cplvad.tracking.model_card import CardContext, ModelFacts

CANDIDATE, CHAMPION = "candidate", "champion"
MODEL_ARTIFACT = "model"
PYFUNC_FILE = Path(__file__).with_name("pyfunc_model.py")
PACKAGE_DIR = Path(__file__).resolve().parents[1]
RUNTIME_PACKAGES = (
    "torch",
    "numpy",
    "scipy",
    "scikit-learn",
    "pydantic",
    "pyyaml",
    "click",
    "rich",
    "tqdm",
    "matplotlib",
    "open_clip_torch",
    "mlflow",
)
VALIDATION_PREFIX = "validation."
"""Version tags ``validation.video_auc``, ``validation.video_ap``, ``validation.videos``,
``validation.fraction``, ``validation.split`` (the model's held-out videos, ``meta.json``
``extra.validation``)."""
RECIPE_TAG, SEED_TAG, MODEL_SHA_TAG = "recipe", "seed", "model_sha256"
XD_VIOLENCE = "xd-violence"


def _requirements() -> list[str]:
    reqs = []
    for name in RUNTIME_PACKAGES:
        try:
            reqs.append(f"{name}=={importlib.metadata.version(name).split('+')[0]}")
        except importlib.metadata.PackageNotFoundError:
            reqs.append(name)
    return reqs


def register_model(
    model_dir: str | Path,
    run_id: str,
    config: Config,
    *,
    dataset: str,
    metrics: dict[str, float | None],
    data_checksum: str | None = None,
    card: CardContext | None = None,
    pseudo: str | Path | None = None,
    alias: bool = True,
) -> str:
    """Log the model directory as a pyfunc model in ``run_id`` (with its signature and an input example),
    register it with its model card as description and, with ``alias``, point ``candidate`` at it; returns
    the new version.

    Version tags, read by ``promote``: ``dataset``, ``data_checksum``, ``metric.<name>`` for every test
    metric, ``validation.*`` when the model was trained with a validation split, ``recipe`` (the recipe
    fingerprint that finds a validation twin), ``seed`` and ``model_sha256``. ``pseudo``: the pseudo labels
    the model was trained on (the CAR settings the card names).
    """
    mlflow = mlflow_module()
    from cplvad.tracking.model_card import CardContext, model_card, read_facts
    from cplvad.tracking.serving import input_example, signature

    setup_mlflow(config)
    name = config.tracking.registered_model
    _, meta = read_model_config(model_dir)
    facts = read_facts(model_dir, pseudo)
    with mlflow.start_run(run_id=run_id):
        info = mlflow.pyfunc.log_model(
            name=MODEL_ARTIFACT,
            python_model=str(PYFUNC_FILE),
            artifacts={"model_dir": str(model_dir)},
            code_paths=[str(PACKAGE_DIR)],
            pip_requirements=_requirements(),
            signature=signature(),
            input_example=input_example(meta.feature_dim),
            registered_model_name=name,
        )
    version = str(info.registered_model_version)
    client = mlflow.MlflowClient()
    context = card or CardContext(dataset, data_checksum or "unknown", "unknown", metrics, run_id=run_id)
    client.update_model_version(name, version, description=model_card(facts, context))
    for key, value in version_tags(facts, dataset, metrics, data_checksum).items():
        client.set_model_version_tag(name, version, key, value)
    if alias:
        client.set_registered_model_alias(name, CANDIDATE, version)
    return version


def version_tags(
    facts: ModelFacts, dataset: str, metrics: dict[str, float | None], data_checksum: str | None
) -> dict[str, str]:
    tags = {"dataset": dataset, **({"data_checksum": data_checksum} if data_checksum else {})}
    tags.update({f"metric.{k}": str(v) for k, v in metrics.items() if v is not None})
    tags.update({f"{VALIDATION_PREFIX}{k}": str(v) for k, v in facts.validation.items() if v is not None})
    tags.update({RECIPE_TAG: facts.recipe, SEED_TAG: str(facts.seed), MODEL_SHA_TAG: facts.model_sha256})
    return tags


# ------------------------------------------------------------------------------------------------ promotion


@dataclass
class Evidence:
    """The validation numbers a version is judged on: its own, or those of its validation twin (the same
    recipe, seed and data with ``train.validation_fraction`` > 0) when it was trained on every video."""

    version: Any
    """The version whose ``validation.*`` tags these are (the judged version itself, or its twin)."""
    value: float
    split: str | None
    twin_of: str | None = None
    """The judged version, when ``version`` is its twin."""

    def describe(self, metric: str) -> str:
        source = f" (from its validation twin version {self.version.version})" if self.twin_of else ""
        return f"validation {metric} {self.value:.2f}{source}"


@dataclass
class PromotionContext:
    """What a promotion check sees. ``candidate`` / ``champion``: MLflow model versions (champion None when
    there is none yet); ``*_evidence``: their validation numbers (None: none found)."""

    config: Config
    name: str
    metric: str
    candidate: Any
    champion: Any | None
    candidate_evidence: Evidence | None
    champion_evidence: Evidence | None


PromotionCheck = Callable[[PromotionContext], "str | None"]
"""A promotion check: why the candidate must not become champion, or None when this check has nothing
against it."""


def no_validation(ctx: PromotionContext) -> str | None:
    if ctx.candidate_evidence is not None:
        return None
    return (
        f"version {ctx.candidate.version} has no validation {ctx.metric}: it was trained without a validation "
        "split (train.validation_fraction = 0) and no validation twin is registered (the same recipe, seed and "
        "data trained with train.validation_fraction > 0); the test set never decides. Retrain with "
        "--set train.validation_fraction=0.1, or register a twin (docs/protocol.md, Promotion)"
    )


def below_floor(ctx: PromotionContext) -> str | None:
    floor, ev = ctx.config.tracking.promote_floor, ctx.candidate_evidence
    if ev is None or ev.value >= floor:
        return None
    return (
        f"version {ctx.candidate.version}: {ev.describe(ctx.metric)} is below the floor "
        f"tracking.promote_floor = {floor:g}"
    )


def other_data(ctx: PromotionContext) -> str | None:
    """Why candidate and champion cannot be compared (other or unknown data, other held-out videos)."""
    cand, champ = ctx.candidate, ctx.champion
    if champ is None:
        return None
    ours, theirs = cand.tags.get("data_checksum"), champ.tags.get("data_checksum")
    if not ours or not theirs:
        unknown = ", ".join(str(v.version) for v, checksum in ((cand, ours), (champ, theirs)) if not checksum)
        return (
            f"not comparable: version(s) {unknown} carry no data checksum (registered without `cplvad track`, "
            "or before checksums were recorded), so the data they were evaluated on is unknown"
        )
    if ours != theirs:
        return (
            f"not comparable: the candidate (version {cand.version}, dataset {cand.tags.get('dataset')!r}, data "
            f"checksum {ours[:12]}) and the champion (version {champ.version}, dataset "
            f"{champ.tags.get('dataset')!r}, data checksum {theirs[:12]}) were evaluated on different data"
        )
    if ctx.champion_evidence is None:
        return (
            f"not comparable: champion version {champ.version} carries no validation {ctx.metric} (registered "
            "before promotion required one); move the alias by hand if the candidate is meant to replace it"
        )
    a, b = ctx.candidate_evidence, ctx.champion_evidence
    if a is not None and a.split != b.split:
        return (
            f"not comparable: the candidate's validation videos (split {a.split}) differ from the champion's "
            f"(split {b.split}): train both with the same seed and train.validation_fraction"
        )
    return None


def too_small_gain(ctx: PromotionContext) -> str | None:
    if ctx.champion is None or ctx.champion_evidence is None or ctx.candidate_evidence is None:
        return None
    value, best = ctx.candidate_evidence.value, ctx.champion_evidence.value
    margin, gain = ctx.config.tracking.promote_min_delta, value - best
    if gain > 0 and gain >= margin:
        return None
    return (
        f"version {ctx.candidate.version} does not beat champion version {ctx.champion.version} on validation "
        f"{ctx.metric} by the margin tracking.promote_min_delta = {margin:g}: {value:.2f} vs {best:.2f} "
        f"({gain:+.2f})"
    )


CHECKS: list[PromotionCheck] = [no_validation, below_floor, other_data, too_small_gain]
"""Run in order; the first reason refuses the promotion. Further checks (e.g. the operators' verdicts,
``feedback.metrics.feedback_check``) plug in from above: ``promote(config, checks=[*CHECKS, mine])`` with a
function of :class:`PromotionContext` that returns a reason or None."""


@dataclass
class Promotion:
    promoted: bool
    reason: str
    candidate: str | None
    champion: str | None


def promotion_metric(config: Config, dataset: str | None) -> str:
    """``tracking.promote_metric``; ``auto``: the dataset's headline metric (AP for XD-Violence, else AUC)."""
    chosen = config.tracking.promote_metric
    if chosen != "auto":
        return chosen
    return "video_ap" if dataset == XD_VIOLENCE else "video_auc"


def promote(
    config: Config, version: str | None = None, checks: Sequence[PromotionCheck] = tuple(CHECKS)
) -> Promotion:
    """Give ``version`` (default: the ``candidate``) the ``champion`` alias when every check of ``CHECKS``
    passes: validation evidence on the dataset's headline metric (its own or its validation twin's), at
    least ``tracking.promote_floor``, the champion's data and validation videos, and a gain of at least
    ``tracking.promote_min_delta`` over the champion. The reason says why either way."""
    mlflow = mlflow_module()
    use_store(config)
    name = config.tracking.registered_model
    client = mlflow.MlflowClient()
    cand = _version(client, name, version)
    champ = _by_alias(client, name, CHAMPION)

    def result(promoted: bool, reason: str) -> Promotion:
        if promoted:
            client.set_registered_model_alias(name, CHAMPION, cand.version)
        kept = "" if promoted or champ is None else f"; champion version {champ.version} kept"
        return Promotion(
            promoted, reason + kept, cand.version, cand.version if promoted else champ and champ.version
        )

    if champ is not None and champ.version == cand.version:
        return result(False, f"version {cand.version} is already the champion")
    metric = promotion_metric(config, cand.tags.get("dataset"))
    versions = _all_versions(client, name)
    ctx = PromotionContext(
        config,
        name,
        metric,
        cand,
        champ,
        _evidence(cand, metric, versions),
        _evidence(champ, metric, versions) if champ is not None else None,
    )
    for check in checks:
        if (reason := check(ctx)) is not None:
            return result(False, reason + "; not promoted")
    ev = ctx.candidate_evidence
    if champ is None:
        return result(
            True, f"no champion yet: version {cand.version} ({ev.describe(metric)}) becomes champion"
        )
    gain = ev.value - ctx.champion_evidence.value
    return result(
        True,
        f"version {cand.version} beats champion version {champ.version}: {ev.describe(metric)} vs "
        f"{ctx.champion_evidence.value:.2f} (+{gain:.2f}, margin {config.tracking.promote_min_delta:g}); promoted",
    )


def _by_alias(client: Any, name: str, alias: str) -> Any | None:
    try:
        return client.get_model_version_by_alias(name, alias)
    except mlflow_module().exceptions.MlflowException:
        return None


def _version(client: Any, name: str, version: str | None) -> Any:
    """The version to promote: a number, an alias, or (None) the candidate."""
    if version is not None and version.isdigit():
        try:
            return client.get_model_version(name, version)
        except mlflow_module().exceptions.MlflowException:
            raise CplvadError(f"registered model {name!r} has no version {version}") from None
    alias = version or CANDIDATE
    found = _by_alias(client, name, alias)
    if found is None:
        raise CplvadError(
            f"registered model {name!r} has no '{alias}' version; run the pipeline (or `cplvad track`) first, "
            "or name a version: cplvad promote --version N"
        )
    return found


def _all_versions(client: Any, name: str) -> list[Any]:
    versions, token = [], None
    while True:
        page = client.search_model_versions(f"name = '{name}'", max_results=1000, page_token=token)
        versions += list(page)
        token = page.token
        if not token:
            return versions


def _evidence(version: Any, metric: str, versions: list[Any]) -> Evidence | None:
    """``version``'s own validation numbers, else those of its newest validation twin: another version
    with the same recipe fingerprint (recipe and seed) and data checksum that has them."""
    own = _validation(version, metric)
    if own is not None:
        return own
    recipe, checksum = version.tags.get(RECIPE_TAG), version.tags.get("data_checksum")
    if not recipe or not checksum:
        return None
    twins = [
        v
        for v in versions
        if v.version != version.version
        and v.tags.get(RECIPE_TAG) == recipe
        and v.tags.get("data_checksum") == checksum
        and _validation(v, metric) is not None
    ]
    if not twins:
        return None
    twin = max(twins, key=lambda v: int(v.version))
    ev = _validation(twin, metric)
    ev.twin_of = str(version.version)
    return ev


def _validation(version: Any, metric: str) -> Evidence | None:
    value = version.tags.get(f"{VALIDATION_PREFIX}{metric}")
    if value is None:
        return None
    return Evidence(version, float(value), version.tags.get(f"{VALIDATION_PREFIX}split"))


def registration_markdown(record: dict[str, str | None]) -> str:
    """A short Markdown note of a tracked execution (``track_pipeline``'s record), e.g. for the Kubeflow UI."""
    return (
        "# CPL-VAD training run\n\n"
        f"- MLflow tracking URI: `{record['tracking_uri']}`\n"
        f"- MLflow run: `{record['run_id']}` (experiment `{record['experiment']}`)\n"
        f"- Registered model: `{record['registered_model']}` version {record['model_version'] or 'none'} "
        f"(alias `{CANDIDATE}`)\n\n"
        f"Promote it with `cplvad promote` (it becomes `{CHAMPION}` when its validation metric passes the floor and "
        "beats the current champion's by the margin).\n"
    )


def resolve_model(model: str | Path, config: Config) -> Path:
    """A model directory for a path, or for an MLflow URI such as ``models:/cplvad@champion``."""
    text = str(model)
    if not text.startswith(("models:/", "runs:/")):
        return Path(model)
    mlflow = mlflow_module()
    use_store(config)
    try:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=text))
    except Exception as exc:  # MLflow raises several types for unknown names/aliases
        raise CplvadError(f"cannot fetch {text} from the MLflow registry ({exc})") from None
    try:
        mlmodel = yaml.safe_load((local / "MLmodel").read_text())
        model_dir = local / mlmodel["flavors"]["python_function"]["artifacts"]["model_dir"]["path"]
    except (OSError, KeyError, TypeError, yaml.YAMLError):
        raise CplvadError(
            f"{text} is not a cplvad model (its MLmodel names no 'model_dir' artifact)"
        ) from None
    return model_dir
