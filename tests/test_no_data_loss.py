"""Nothing lost (``cplvad.storage``): no command deletes, moves or overwrites a file that cplvad did not
write, each refuses such an output before any work and leaves it byte for byte as it was, its own earlier
output is still resumed or replaced, and one writer at a time goes into a folder.

The commands and their outputs come from the CLI itself (the click tree, parameters typed ``OutputFolder``
/ ``OutputFile``), so a new command is covered as soon as it exists, and one whose output is not declared
with these types fails ``test_every_output_is_declared``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import click
import pytest
from click.testing import CliRunner
from conftest import REPO, tiny_cli_args, tiny_config
from test_extract import make_video

import cplvad
from cplvad.cli import cli
from cplvad.cli.outputs import OutputFile, OutputFolder, declared_outputs
from cplvad.data import load_dataset
from cplvad.data.training_set import load_training_set
from cplvad.errors import BusyError, ConfigError, ForeignDataError
from cplvad.io import write_text
from cplvad.storage import locks
from cplvad.storage.atomic import atomic_dir
from cplvad.storage.location import open_location
from cplvad.storage.ownership import MARKER_DIR, claim_file, claim_folder, replace_folder
from cplvad.storage.prefixes import claim_prefix
from cplvad.train.trainer import fingerprint

TINY = tiny_cli_args()
EXTRACT_TINY = ["--clip-model", "cplvad-tiny", "--device", "cpu", "--batch-size", "16"]

FOREIGN = {  # a user's folder: 15 files, many named like cplvad's own outputs
    "model.pt": b"my own weights",
    "config.json": b'{"mine": true}\n',
    "meta.json": b"{}\n",
    "history.json": b"[1, 2]\n",
    "fingerprint.txt": b"not yours\n",
    "metrics.json": b'{"auc": 0.99}\n',
    "predictions.npz": b"PK not really\n",
    "pseudo.npz": b"PK mine\n",
    "index.html": b"<html>my page</html>\n",
    "index.json": b'{"videos": []}\n',
    "features.csv": b"path,label\n",
    "dataset.yaml": b"name: mine\n",
    "notes/plan.txt": b"keep me\n",
    ".hidden": b"secret plans\n",
    os.fsdecode(b"caf\xe9.txt"): b"a name that is not UTF-8\n",
}
OUTPUT_NAME = re.compile(r"^--(?:[a-z0-9]+-)*(?:out|output|outdir|plots|work-dir)$")
INPUTS = {("track", "plots")}
"""Parameters named like an output that are read only: ``track --plots`` logs an evaluation's plots."""
EXPECTED = {
    ("ablate",),
    ("baseline",),
    ("datasets", "prepare"),
    ("demo-data",),
    ("demo-videos",),
    ("evaluate",),
    ("extract",),
    ("extract-merge",),
    ("metrics",),
    ("monitor",),
    ("predict",),
    ("pseudo-labels",),
    ("report",),
    ("run",),
    ("track",),
    ("train",),
}


def leaf_commands(
    group: click.Group = cli, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            yield from leaf_commands(command, (*path, name))
        else:
            yield (*path, name), command


OUTPUTS = [(path, command, param) for path, command in leaf_commands() for param in declared_outputs(command)]


def output_id(case: tuple[tuple[str, ...], click.Command, click.Parameter]) -> str:
    path, _, param = case
    return " ".join(path) + " " + (param.opts[0] if isinstance(param, click.Option) else param.name or "")


def invoke(*args: str | Path):
    return CliRunner().invoke(cli, [str(a) for a in args])


def error_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in output, output
    return lines[0]


def make_foreign(folder: Path) -> None:
    for name, data in FOREIGN.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)


def snapshot(root: Path) -> dict[str, str]:
    """Every file and folder under ``root``: content hash (files) or ``dir``."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            out[os.path.relpath(Path(dirpath, d), root)] = "dir"
        for f in filenames:
            out[os.path.relpath(Path(dirpath, f), root)] = hashlib.sha256(
                Path(dirpath, f).read_bytes()
            ).hexdigest()
    return out


def dummy(param: click.Parameter, tmp: Path) -> str:
    """A value click accepts for a required parameter that the command never reaches (it is refused first)."""
    kind = param.type
    if isinstance(kind, OutputFolder):
        return str(tmp / f"other-{param.name}")
    if isinstance(kind, OutputFile):
        return str(tmp / f"other-{param.name}.json")
    if isinstance(kind, click.Choice):
        return str(kind.choices[0])
    if isinstance(kind, click.IntRange):
        return str(kind.min if kind.min is not None else 1)
    if isinstance(kind, click.types.IntParamType):
        return "2"
    if isinstance(kind, click.types.FloatParamType):
        return "0.5"
    return "dummy"


def arguments(command: click.Command, tested: click.Parameter, value: str, tmp: Path) -> list[str]:
    """The command line: ``tested`` set to ``value``, every other required parameter set to a dummy."""
    options, positional = [], []
    for param in command.params:
        given = value if param is tested else (dummy(param, tmp) if param.required else None)
        if given is None:
            continue
        if isinstance(param, click.Argument):
            positional.append(given)
        else:
            options += [param.opts[0], given]
    return [*options, *positional]


# ------------------------------------------------------------------------------------- declared outputs


def test_every_output_is_declared():
    """A parameter named like an output (--out, --*-out, --plots, --work-dir, OUT) is typed as one, and every
    command that writes is found."""
    undeclared = [
        f"{' '.join(path)} {param.name}"
        for path, command in leaf_commands()
        for param in command.params
        if (
            any(OUTPUT_NAME.match(opt) for opt in param.opts)
            or (isinstance(param, click.Argument) and param.name in ("out", "dst"))
        )
        and (path[-1], param.name) not in INPUTS
        and not isinstance(param.type, OutputFolder | OutputFile)
    ]
    assert not undeclared, f"outputs not declared with OutputFolder / OutputFile: {undeclared}"
    assert {path for path, _, _ in OUTPUTS} >= EXPECTED


@pytest.mark.parametrize("case", OUTPUTS, ids=output_id)
def test_a_folder_of_foreign_files_is_refused_before_any_work_and_left_untouched(case, tmp_path, monkeypatch):
    path, command, param = case
    monkeypatch.chdir(tmp_path)  # whatever a command would write relatively shows up in the snapshot
    user = tmp_path / "mine"
    make_foreign(user)
    before = snapshot(tmp_path)
    target = user if isinstance(param.type, OutputFolder) else user / "metrics.json"
    res = invoke(*path, *arguments(command, param, str(target), tmp_path))
    assert res.exit_code == 2, res.output
    line = error_line(res.output)
    assert str(target) in line and "cplvad did not write" in line
    assert snapshot(tmp_path) == before  # byte for byte, and nothing added (no marker, no other folder)


@pytest.mark.parametrize(
    "case",
    [c for c in OUTPUTS if isinstance(c[2].type, OutputFile) and c[2].name != "mlflow_parent"],
    ids=output_id,
)
def test_a_new_file_output_beside_foreign_files_is_accepted(case, tmp_path):
    """A new file in the user's folder is fine: the refusal is about the file, not its neighbours (the
    command then stops at its dummy inputs; ``--mlflow-parent``, which opens an MLflow run first, is left
    to the tracking tests); the user's folder is unchanged, and keeps no marker of a command that wrote
    nothing there."""
    path, command, param = case
    user = tmp_path / "mine"
    make_foreign(user)
    before = snapshot(user)
    res = invoke(*path, *arguments(command, param, str(user / "new-output.json"), tmp_path))
    assert res.exit_code == 2 and "cplvad did not write" not in res.output, res.output
    assert snapshot(user) == before


def test_a_foreign_file_dropped_into_cplvads_folder_stops_a_replacement_and_is_kept(tmp_path):
    out = tmp_path / "data"
    with atomic_dir(out) as tmp:
        write_text(tmp / "dataset.yaml", "name: first\n")
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ForeignDataError, match=r"notes\.txt"), atomic_dir(out) as tmp:
        write_text(tmp / "dataset.yaml", "name: second\n")
    assert (out / "notes.txt").read_text() == "mine" and "first" in (out / "dataset.yaml").read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["data"]  # no staging folder left


def test_inside_its_folder_cplvad_never_overwrites_a_file_it_did_not_write(tmp_path):
    out = tmp_path / "out"
    with claim_folder(out):
        write_text(out / "metrics.json", "{}")
        (out / "user.json").write_text("mine")  # appears while cplvad writes
        with pytest.raises(ForeignDataError, match="user.json exists and cplvad did not write it"):
            write_text(out / "user.json", "{}")
        write_text(out / "metrics.json", '{"again": 1}')  # its own: replaced
    assert (out / "user.json").read_text() == "mine"


def test_file_outputs_in_a_users_folder_are_recorded_and_replaced_on_a_rerun(tmp_path):
    user = tmp_path / "mine"
    make_foreign(user)
    for text in ("first", "second"):
        with claim_file(user / "result.json"):
            write_text(user / "result.json", text)
    assert (user / "result.json").read_text() == "second"
    assert json.loads((user / MARKER_DIR / "written.jsonl").read_text()) == "result.json"
    assert not (user / MARKER_DIR / "owner.json").exists()  # the folder stays the user's


def test_a_work_folder_inside_the_output_is_refused(tmp_path):
    with (
        claim_folder(tmp_path / "out"),
        claim_folder(tmp_path / "out" / "work"),
        pytest.raises(ConfigError, match="neither inside the other"),
    ):
        replace_folder(tmp_path / "out" / "work", tmp_path / "out")


# --------------------------------------------------------------------------- its own output, run again


@pytest.fixture(scope="module")
def stage1(demo_manifest, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("stage1") / "model"
    res = invoke("train", "--stage", "1", "--dataset", demo_manifest, "--out", out, "--quiet", *TINY)
    assert res.exit_code == 0, res.output
    return out


RERUNS = set()
"""The commands whose rerun on their own output is tested below (every command with an output must be)."""


def reruns(*paths: tuple[str, ...]):
    RERUNS.update(paths)
    return lambda test: test


def test_every_command_with_an_output_is_rerun_on_its_own_output():
    assert {path for path, _, _ in OUTPUTS} <= RERUNS


@reruns(("demo-data",))
def test_demo_data_replaces_its_own_folder(tmp_path):
    out = tmp_path / "demo"
    for _ in range(2):
        res = invoke("demo-data", "--out", out, *TINY)
        assert res.exit_code == 0, res.output
    assert (out / "dataset.yaml").is_file() and sorted(p.name for p in tmp_path.iterdir()) == ["demo"]


@reruns(("datasets", "prepare"))
def test_datasets_prepare_replaces_its_own_folder(demo_manifest, tmp_path):
    for _ in range(2):
        res = invoke("datasets", "prepare", demo_manifest, "--out", tmp_path / "dataset", *TINY)
        assert res.exit_code == 0, res.output
    assert load_dataset(tmp_path / "dataset" / "dataset.yaml").name == load_dataset(demo_manifest).name


@reruns(("demo-videos",), ("extract",), ("extract-merge",))
def test_videos_and_features_resume_in_their_own_folders(tmp_path):
    for _ in range(2):
        res = invoke("demo-videos", "--out", tmp_path / "videos", *TINY)
        assert res.exit_code == 0, res.output
    src = tmp_path / "src"
    make_video(src / "Normal" / "a.mp4", 40, seed=1)
    make_video(src / "Fighting" / "b.mp4", 33, seed=2)
    first = invoke("extract", "--videos", src, "--out", tmp_path / "features", *EXTRACT_TINY)
    again = invoke("extract", "--videos", src, "--out", tmp_path / "features", *EXTRACT_TINY)
    assert first.exit_code == again.exit_code == 0, again.output
    assert "extracted 0, skipped 2" in again.output
    for _ in range(2):
        for k in (0, 1):
            res = invoke(
                "extract", "--videos", src, "--out", tmp_path / "shards", "--shard", f"{k}/2", *EXTRACT_TINY
            )
            assert res.exit_code == 0, res.output
        res = invoke("extract-merge", "--out", tmp_path / "shards", "--shards", "2")
        assert res.exit_code == 0 and "merged 2 shards: 2 videos" in res.output, res.output


@reruns(("train",))
def test_train_skips_retrains_and_moves_from_its_work_folder(stage1, demo_manifest, tmp_path):
    res = invoke("train", "--stage", "1", "--dataset", demo_manifest, "--out", stage1, "--quiet", *TINY)
    assert res.exit_code == 0 and "nothing to do" in res.output, res.output
    out, work = tmp_path / "stage1", tmp_path / ".stage1.work"
    for _ in range(2):  # DVC's way: the work folder resumes, only the finished model moves to --out
        res = invoke(
            "train",
            "--stage",
            "1",
            "--dataset",
            demo_manifest,
            "--out",
            out,
            "--work-dir",
            work,
            "--quiet",
            *TINY,
        )
        assert res.exit_code == 0, res.output
        assert (out / "model.pt").is_file() and not work.exists()
    res = invoke(
        "train", "--stage", "1", "--dataset", demo_manifest, "--out", out, "--force", "--quiet", *TINY
    )
    assert res.exit_code == 0 and "trained" in res.output, res.output


@reruns(("pseudo-labels",), ("evaluate",), ("metrics",), ("baseline",))
def test_scoring_outputs_are_replaced(stage1, demo_manifest, tmp_path):
    out = tmp_path / "eval"
    for _ in range(2):
        cases = [
            ("pseudo-labels", "--model", stage1, "--out", out / "pseudo.npz", "--quiet"),
            (
                "evaluate",
                "--model",
                stage1,
                "--out",
                out / "metrics.json",
                "--predictions-out",
                out / "P.npz",
                "--plots",
                out / "plots",
                "--quiet",
            ),
            ("metrics", "--predictions", out / "P.npz", "--out", out / "again.json"),
            ("baseline", "--kind", "random", "--out", out / "random.npz"),
        ]
        for args in cases:
            res = invoke(*args, "--dataset", demo_manifest, *TINY)
            assert res.exit_code == 0, res.output
    assert json.loads((out / "again.json").read_text()) == json.loads((out / "metrics.json").read_text())


@reruns(("predict",), ("report",), ("monitor",))
def test_predictions_resume_and_the_review_page_is_rewritten(stage1, demo_manifest, tmp_path):
    test = load_dataset(demo_manifest).test
    inputs = [str(test.locate(v.rows[0])) for v in test.videos[:2]]
    out = tmp_path / "predictions"
    first = invoke("predict", *inputs, "--model", stage1, "--out", out, "--report", *TINY)
    again = invoke("predict", *inputs, "--model", stage1, "--out", out, "--report", *TINY)
    assert first.exit_code == again.exit_code == 0, again.output
    assert "2 already done, skipped" in again.output
    rescored = invoke("predict", *inputs, "--model", stage1, "--out", out, "--rescore", *TINY)
    assert rescored.exit_code == 0, rescored.output
    for _ in range(2):
        res = invoke("report", out)
        assert res.exit_code == 0 and "review page of 2 prediction(s)" in res.output, res.output
    for _ in range(2):  # the drift plot of the same folder, drawn again
        res = invoke("monitor", out, "--plot", tmp_path / "drift.png")
        assert res.exit_code in (0, 1) and (tmp_path / "drift.png").is_file(), res.output


@pytest.mark.slow
@reruns(("run",), ("ablate",), ("track",))
def test_run_ablate_and_track_resume_in_their_own_folders(demo_manifest, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the sqlite tracking store of `track` (./mlflow.db)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    for _ in range(2):
        res = invoke("run", "--dataset", demo_manifest, "--out", "run", "--no-track", "--quiet", *TINY)
        assert res.exit_code == 0, res.output
    for _ in range(2):
        res = invoke(
            "ablate", "--dataset", demo_manifest, "--out", "ablation", "--no-track", "--quiet", *TINY
        )
        assert res.exit_code == 0, res.output
    for _ in range(2):
        res = invoke(
            "track",
            "--dataset",
            demo_manifest,
            "--stage2",
            "run/stage2",
            "--metrics",
            "run/stage2/metrics.json",
            "--out",
            "outputs/mlflow_run.json",
            "--mlflow-parent",
            "outputs/mlflow_parent.json",
            "--no-register",
            *TINY,
        )
        assert res.exit_code == 0, res.output
    assert json.loads(Path("outputs/mlflow_run.json").read_text())["run_id"]

    track = ["track", "--dataset", demo_manifest, "--stage2", "run/stage2", "--metrics"]
    track += ["run/stage2/metrics.json", "--out", "outputs/mlflow_run.json", "--no-register", *TINY]
    shutil.rmtree("outputs/.cplvad")  # the record alone, as git brings it (a DVC metrics file kept in git)
    res = invoke(*track)
    assert res.exit_code == 0, res.output  # recognised as cplvad's by its content, and replaced
    mine = b'{"run_id": "the user\'s own"}'
    Path("outputs/mlflow_run.json").write_bytes(mine)
    shutil.rmtree("outputs/.cplvad")
    res = invoke(*track)
    assert res.exit_code == 2 and "cplvad did not write it" in " ".join(res.output.split()), res.output
    assert Path("outputs/mlflow_run.json").read_bytes() == mine


# ------------------------------------------------------------------------------------- one writer


def _command(out: Path, dataset: Path, *settings: str) -> list[str]:
    return [
        sys.executable,
        "-c",
        "from cplvad.cli import main; main()",
        "train",
        "--stage",
        "1",
        "--dataset",
        str(dataset),
        "--out",
        str(out),
        "--quiet",
        *tiny_cli_args(*settings),
    ]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(Path(cplvad.__file__).parents[1])}


@pytest.mark.slow
def test_two_trainings_on_one_folder_one_trains_the_other_stops_at_once(demo_manifest, tmp_path):
    out = tmp_path / "model"
    settings = {"a": ("train.lr=0.001", "train.epochs=4"), "b": ("train.lr=0.003", "train.epochs=4")}
    procs = {
        k: subprocess.Popen(
            _command(out, demo_manifest, *s),
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for k, s in settings.items()
    }
    done = {k: (p.communicate(timeout=600), p.returncode, p.pid) for k, p in procs.items()}
    codes = sorted(code for _, code, _ in done.values())
    assert codes == [0, 2], {k: v[0][1] for k, v in done.items()}
    winner = next(k for k, v in done.items() if v[1] == 0)
    loser = next(k for k, v in done.items() if v[1] == 2)
    line = error_line(done[loser][0][1])
    assert f"--out {out} is being written by another cplvad process: pid {done[winner][2]}" in line
    assert "preflight" not in done[loser][0][1]  # stopped before any work
    config = tiny_config(*settings[winner])
    assert json.loads((out / "config.json").read_text())["train"]["lr"] == config.train.lr
    data = load_training_set(load_dataset(demo_manifest), config.model.max_len, progress=False)
    assert (out / "fingerprint.txt").read_text().strip() == fingerprint(config, data, 1, None)
    assert len(json.loads((out / "history.json").read_text())) == config.train.epochs


@pytest.mark.slow
def test_the_lock_of_a_killed_training_is_recovered_and_it_resumes(demo_manifest, tmp_path):
    out = tmp_path / "model"
    settings = ("train.epochs=10", "train.checkpoint_every=1", "train.checkpoint_seconds=0")
    proc = subprocess.Popen(
        _command(out, demo_manifest, *settings),
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    while not (out / "checkpoint.pt").exists():
        assert proc.poll() is None and time.monotonic() < deadline, "training never wrote a checkpoint"
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (out / MARKER_DIR / "lock.holder.json").exists()  # left by the killed process
    done = subprocess.run(
        _command(out, demo_manifest, *settings), env=_env(), capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stderr
    assert (
        f"recovered the lock of pid {proc.pid}" in done.stderr
        and "which ended without releasing it" in done.stderr
    )
    assert re.search(r"resumed from epoch \d+ \(checkpoint of \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\)", done.stderr)
    assert len(json.loads((out / "history.json").read_text())) == 10
    assert not (out / MARKER_DIR / "lock.holder.json").exists()


def test_a_second_writer_in_one_process_tree_is_refused_by_the_lock(tmp_path):
    """The lock itself, without the process-wide claim registry: a second lock of a held folder fails."""
    marker = tmp_path / MARKER_DIR
    marker.mkdir()
    first = locks.FolderLock(marker, "lock", "--out", str(tmp_path))
    first.acquire()
    try:
        with pytest.raises(BusyError, match=rf"pid {os.getpid()} on .*since"):
            locks.FolderLock(marker, "lock", "--out", str(tmp_path)).acquire()
    finally:
        first.release()
    second = locks.FolderLock(marker, "lock", "--out", str(tmp_path))
    second.acquire()
    second.release()


# ------------------------------------------------------------------------------------------------- S3


@pytest.fixture
def bucket(s3_env: str):
    """(client, name) of a new bucket: the S3 server lives as long as the test session."""
    client = boto3.client("s3")
    name = f"mine-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=name)
    return client, name


def _objects(bucket) -> dict[str, str]:
    client, name = bucket
    listed = client.list_objects_v2(Bucket=name).get("Contents", [])
    return {o["Key"]: o["ETag"] for o in listed}


@pytest.mark.parametrize(
    "case", [c for c in OUTPUTS if isinstance(c[2].type, OutputFolder) and c[2].type.s3], ids=output_id
)
def test_an_s3_prefix_of_foreign_objects_is_refused_and_left_untouched(case, bucket, tmp_path):
    path, command, param = case
    client, name = bucket
    for key, data in FOREIGN.items():
        if key.isascii():
            client.put_object(Bucket=name, Key=f"theirs/{key}", Body=data)
    before = _objects(bucket)
    res = invoke(*path, *arguments(command, param, f"s3://{name}/theirs", tmp_path))
    assert res.exit_code == 2, res.output
    assert f"s3://{name}/theirs holds 14 file(s) that cplvad did not write" in error_line(res.output)
    assert _objects(bucket) == before


def test_an_s3_prefix_is_locked_and_a_crashed_writers_lock_recovered(bucket, caplog):
    client, name = bucket
    first = locks.S3Lock(f"s3://{name}/out", "lock", "--out")
    first.acquire()
    try:
        with pytest.raises(BusyError, match=rf"s3://{name}/out is being written by .*pid {os.getpid()}"):
            locks.S3Lock(f"s3://{name}/out", "lock", "--out").acquire()
    finally:
        first.release()
    assert "out/.cplvad/lock" not in _objects(bucket)
    # a pod that crashed: its lock stopped being renewed (here: one already past its lifetime)
    holder = locks.Holder(
        pid=1, host="pod-1", command="cplvad extract ...", since="2026-01-01T00:00:00+00:00"
    )
    client.put_object(Bucket=name, Key="out/.cplvad/lock", Body=holder.to_bytes(ttl=-1.0))
    recovered = locks.S3Lock(f"s3://{name}/out", "lock", "--out")
    recovered.acquire()
    recovered.release()
    assert "recovered the lock of pid 1 on pod-1" in caplog.text


def test_s3_outputs_are_claimed_marked_and_resumed(bucket, tmp_path):
    _, name = bucket
    with claim_prefix(f"s3://{name}/out", "--out"):
        open_location(f"s3://{name}/out").write_bytes("a.json", b"{}")
    assert set(_objects(bucket)) == {"out/.cplvad/owner.json", "out/a.json"}
    with claim_prefix(f"s3://{name}/out", "--out"):  # its own prefix: claimed again
        pass
    with claim_prefix(f"s3://{name}/empty", "--out"):  # nothing written: nothing left behind
        pass
    assert not any(k.startswith("empty/") for k in _objects(bucket))
    assert sorted(_objects(bucket)) == ["out/.cplvad/owner.json", "out/a.json"]


@pytest.mark.slow
def test_pipeline_compile_never_overwrites_a_yaml_of_yours(tmp_path):
    (tmp_path / "training.yaml").write_text("# my own pipeline\n")
    before = snapshot(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "pipelines", "compile", "--pipeline", "training", "--out", str(tmp_path)],
        env={**_env(), "PYTHONPATH": os.pathsep.join([str(Path(cplvad.__file__).parents[1]), str(REPO)])},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 2, done.stderr
    assert f"--out {tmp_path / 'training.yaml'} exists and cplvad did not write it" in done.stderr
    assert snapshot(tmp_path) == before


def test_the_shards_of_one_extraction_write_one_folder_at_the_same_time(tmp_path):
    """Each shard holds a lock of its own; a second writer of the same shard is refused."""
    out = tmp_path / "features"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from cplvad.storage.ownership import claim_folder\n"
            f"with claim_folder({str(out)!r}, '--out', lock_name='lock.shard-0-of-2'):\n"
            "    print('held', flush=True)\n"
            "    sys.stdin.read()\n",
        ],
        env=_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with claim_folder(out, "--out", lock_name="lock.shard-1-of-2"):
            write_text(out / "features.shard1-of-2.csv", "path,label\n")
        with (
            pytest.raises(BusyError, match=rf"pid {holder.pid}"),
            claim_folder(out, "--out", lock_name="lock.shard-0-of-2"),
        ):
            pass
    finally:
        holder.communicate("", timeout=60)
    assert holder.returncode == 0 and (out / "features.shard1-of-2.csv").is_file()
