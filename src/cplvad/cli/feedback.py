"""``cplvad feedback add``: the review page's verdicts become training samples (``cplvad.feedback``)."""

from __future__ import annotations

from collections import Counter

import click

from cplvad.cli.main import cli, config_options, console
from cplvad.config import Config

DEFAULT_FOLDER = "feedback"


@cli.group("feedback")
def feedback() -> None:
    """Operators' verdicts as training data (review page -> feedback folder -> data.feedback)."""


@feedback.command("add")
@click.argument("verdicts", type=click.Path(dir_okay=False))
@click.option(
    "--dataset",
    "folder",
    default=None,
    type=click.Path(file_okay=False),
    help=f"The feedback folder to add to (default: data.feedback, else ./{DEFAULT_FOLDER}); created if needed.",
)
@click.option(
    "--predictions",
    default=None,
    help="The folder of the judged predictions (default: the one the review page recorded).",
)
@click.option(
    "--model",
    default=None,
    help="Model whose CLIP encodes the judged videos again (default: the model that scored them).",
)
@click.option(
    "--no-dvc", is_flag=True, help="Do not `dvc add` the features (default: when in a DVC repository)."
)
@config_options
def add_cmd(
    verdicts: str,
    folder: str | None,
    predictions: str | None,
    model: str | None,
    no_dvc: bool,
    config: Config,
) -> None:
    """Turn VERDICTS (the review page's export) into video-level training samples: a false alarm -> a
    normal clip, a confirmed event -> a clip of its class, a missed anomaly -> the video with its class,
    a reviewed video without confirmed events -> the normal video. Contradictory verdicts and unknown videos
    are refused with the line."""
    from cplvad.feedback.add import add_feedback

    target = folder or config.data.feedback or DEFAULT_FOLDER
    added = add_feedback(
        verdicts,
        target,
        config,
        predictions=predictions,
        model=model,
        version=not no_dvc,
        log=lambda text: console.print(text, highlight=False, soft_wrap=True),
    )
    kinds = ", ".join(
        f"{n} {k.replace('_', ' ')}" for k, n in sorted(Counter(s["kind"] for s in added.samples).items())
    )
    replaced = f", replacing {added.replaced} earlier sample(s) of the same videos" if added.replaced else ""
    console.print(
        f"added {len(added.samples)} sample(s) ({kinds}) to {added.folder} (revision {added.revision}){replaced}",
        highlight=False,
        soft_wrap=True,
    )
    if added.versioned:
        console.print(
            f"versioned with DVC: commit {added.versioned} and {added.folder}/feedback.* with git",
            highlight=False,
        )
    if config.data.feedback is None:
        console.print(
            f"train on it with --set data.feedback={added.folder} (or in params.yaml)", highlight=False
        )
