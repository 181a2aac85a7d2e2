"""Any file name, UTF-8 or not, in what ``predict`` and ``report`` write: documents, index, plots, review page.

A name that is not UTF-8 (Linux file names are bytes) is held as surrogate escapes; the outputs name it
with its undecodable bytes written as ``\\xNN`` text (the page's links percent-encode the raw bytes), and
stay valid UTF-8.
"""

from __future__ import annotations

import json
import os
import re
import shutil

import pytest
from click.testing import CliRunner
from conftest import tiny_config

from cplvad.cli import cli
from cplvad.predict.index import INDEX_FILE, failed_entry, update_index
from cplvad.predict.report import SCHEMA
from cplvad.storage.location import open_location
from cplvad.storage.ownership import claim_folder
from cplvad.workflow import train_stage

RAW = b"caf\xe9"
"""Latin-1 bytes of "café": not UTF-8."""
NAME = os.fsdecode(RAW)


def test_the_review_page_and_index_name_a_file_that_is_not_utf8(tmp_path):
    out, videos = tmp_path / "out", tmp_path / "videos"
    videos.mkdir()
    video = videos / f"{NAME}.mp4"
    video.write_bytes(b"")  # reachable from the page: linked
    doc = {
        "schema": SCHEMA,
        "input": str(video),
        "input_kind": "video",
        "fps": 25.0,
        "frames_per_snippet": 16,
        "snippet_scores": [0.1, 0.9, 0.2],
        "threshold": 0.5,
        "events": [],
    }
    with claim_folder(out):  # what `cplvad predict` writes, by hand
        open_location(str(out)).write_bytes(f"{NAME}.json", json.dumps(doc).encode())
        update_index(
            open_location(str(out)),
            [failed_entry(f"{NAME}-2", f"/videos/{NAME}-2.mp4", "video", "unreadable")],
        )
    index = json.loads((out / INDEX_FILE).read_bytes().decode("utf-8"))
    assert index["videos"][0]["name"] == f"{NAME}-2"  # the name round-trips

    res = CliRunner().invoke(cli, ["report", str(out)])
    assert res.exit_code == 0, res.output
    page = (out / "index.html").read_bytes().decode("utf-8")  # valid UTF-8
    assert "caf\\xe9-2" in page  # the failed input
    assert "caf%E9.mp4" in page  # the link to the video: its raw bytes
    shown = re.sub(r"<script.*?</script>", "", page, flags=re.S)  # the page's data keeps the exact name
    assert shown.count("caf\\xe9") >= 2 and "\\udce9" not in shown


@pytest.mark.slow
def test_predict_report_and_plot_name_a_file_that_is_not_utf8(demo_manifest, tmp_path):
    model = tmp_path / "model"
    train_stage(demo_manifest, model, tiny_config("train.device=cpu"), stage=1, progress=False)
    inputs = tmp_path / "in"
    inputs.mkdir()
    feature = sorted((demo_manifest.parent / "features").rglob("*.npy"))[0]
    shutil.copy(feature, inputs / f"{NAME}.npy")
    shutil.copy(feature, inputs / "plain.npy")
    out = tmp_path / "out"
    res = CliRunner().invoke(
        cli, ["predict", "--model", str(model), "--out", str(out), "--report", "--plot", str(inputs)]
    )
    assert res.exit_code == 0, res.output
    assert {f"{NAME}.json", f"{NAME}.png", "plain.json", INDEX_FILE, "index.html"} <= set(os.listdir(out))
    index = json.loads((out / INDEX_FILE).read_bytes().decode("utf-8"))
    assert sorted(v["name"] for v in index["videos"]) == [NAME, "plain"]
    doc = json.loads((out / f"{NAME}.json").read_bytes().decode("utf-8"))
    assert doc["input"].endswith(f"{NAME}.npy")
    assert "caf\\xe9" in (out / "index.html").read_bytes().decode("utf-8")
