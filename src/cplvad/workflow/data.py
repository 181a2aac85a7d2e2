"""The data step of a pipeline: the ``data`` section turned into one dataset folder, extracting only when needed.

The folder (``dataset.yaml``, its lists and annotation files, and ``features/`` when videos were
extracted) is what every later stage reads. Extraction runs in a work folder beside it and resumes there
after an interruption; only the finished folder replaces the output, so a pipeline tool may delete its
outputs before a run (DVC does) without losing partial work. Both folders must be new, empty or cplvad's
own (``cplvad.storage.ownership``): files of anyone else in them are refused, never touched.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from cplvad.config import Config
from cplvad.data.check import check_dataset
from cplvad.data.dataset import load_dataset
from cplvad.data.selection import (
    MANIFEST_FILE,
    DataPlan,
    plan_data,
    resolve_dataset,
)
from cplvad.errors import DataError
from cplvad.extract.dataset_folder import FEATURES_DIR, write_extracted_manifest
from cplvad.io import write_text
from cplvad.storage.ownership import claim_folder, discard, discard_contents, replace_folder

SELECTION_FILE = "selection.json"


def default_work_dir(out_dir: str | Path) -> Path:
    """``data/dataset`` -> ``data/.dataset.work``: beside the output, on the same file system."""
    out = Path(out_dir)
    return out.with_name(f".{out.name}.work")


def prepare_data(
    config: Config,
    out_dir: str | Path,
    *,
    demo_dir: str | Path | None = None,
    work_dir: str | Path | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> Path:
    """Resolve ``config.data`` into the dataset folder ``out_dir``; return its ``dataset.yaml``.

    Built-in benchmark: its manifest over the published features (checked: DataError when training
    could not run). Demo or videos: both splits extracted (resumably, in ``work_dir``) into
    ``features/``, with the manifest's classes and annotation files beside them.
    """
    plan = plan_data(config.data, demo_dir)
    if not plan.needs_extraction:
        manifest = resolve_dataset(config.data, out_dir)
        report = check_dataset(load_dataset(manifest))
        for line in report.lines():
            log(line)
        if not report.ok:
            raise DataError(f"{plan.dataset}: training could not run on this data (see above)")
        return manifest
    work = Path(work_dir) if work_dir is not None else default_work_dir(out_dir)
    with claim_folder(out_dir, "dataset folder"), claim_folder(work, "work folder"):
        _keep_if_same_selection(work, plan)
        staged = work / "dataset"
        with claim_folder(staged, "work folder"):
            _extract_splits(plan, config, staged / FEATURES_DIR, progress=progress, log=log)
            write_extracted_manifest(plan, staged)
            replace_folder(staged, out_dir)
        discard(work)
    return Path(out_dir) / MANIFEST_FILE


def _keep_if_same_selection(work: Path, plan: DataPlan) -> None:
    """Keep the work folder's partial extraction only if it was started for these very videos (else its
    files, all cplvad's, are deleted)."""
    selection = json.dumps({"dataset": plan.dataset, "videos": plan.videos}, sort_keys=True)
    marker = work / SELECTION_FILE
    if marker.is_file() and marker.read_text() != selection:
        discard_contents(work)
    write_text(marker, selection)


def _extract_splits(
    plan: DataPlan, config: Config, features: Path, *, progress: bool, log: Callable[[str], None]
) -> None:
    from cplvad import preflight
    from cplvad.extract.options import ExtractOptions
    from cplvad.extract.runner import extract

    for split, src in plan.videos.items():
        log(preflight.for_extraction(src, str(features), config))
        options = ExtractOptions(list_name=f"{split}.csv")
        report = extract(src, str(features), config, options, progress=progress, log=log)
        log(
            f"{split}: extracted {report.extracted}, skipped {report.skipped} (done before), "
            f"failed {len(report.failed)} of {report.selected} videos from {src}"
        )
        if report.failed:
            examples = "; ".join(f"{k}: {v}" for k, v in list(report.failed.items())[:3])
            raise DataError(
                f"{len(report.failed)} {split} video(s) of {src} failed extraction ({examples}); every "
                f"reason is in {report.sink.uri(report.names.manifest)}. Fix or remove them and re-run: "
                "finished videos are not extracted again"
            )
