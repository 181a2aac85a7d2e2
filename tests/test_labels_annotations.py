import numpy as np
import pytest

from cplvad.data import ClassList, read_annotations
from cplvad.data.annotations import Segment, strip_video_extension
from cplvad.errors import DataError

XD = ClassList(
    ("Normal", "Fighting", "Shooting", "Riot", "Abuse", "CarAccident", "Explosion"),
    {
        "A": "Normal",
        "B1": "Fighting",
        "B2": "Shooting",
        "B4": "Riot",
        "B5": "Abuse",
        "B6": "CarAccident",
        "G": "Explosion",
    },
)


def test_class_names_and_xd_codes():
    ucf = ClassList(("Normal", "Abuse", "RoadAccidents"))
    assert ucf.parse("Abuse") == ("Abuse",)
    assert XD.parse("B1-B2-0") == ("Fighting", "Shooting")
    assert XD.parse("G-B2-B6") == ("Explosion", "Shooting", "CarAccident")
    assert XD.parse("A") == ("Normal",)
    assert XD.parse("B1-0-0") == ("Fighting",)
    np.testing.assert_array_equal(XD.multi_hot(XD.parse("B1-B2-0")), [0, 1, 1, 0, 0, 0, 0])


def test_unknown_label_lists_allowed_values():
    with pytest.raises(DataError, match="'B9'.*allowed"):
        XD.parse("B9-0-0")
    with pytest.raises(DataError, match="both normal and abnormal"):
        XD.parse("A-B1")
    with pytest.raises(DataError, match="not in classes"):
        ClassList(("Normal", "X"), {"Y": "Z"})


def test_extension_stripping_keeps_dots_in_names():
    assert (
        strip_video_extension("Bad.Boys.1995__#01-11-55_label_B2-0-0.mp4")
        == "Bad.Boys.1995__#01-11-55_label_B2-0-0"
    )
    assert (
        strip_video_extension("Bad.Boys.1995__#01-11-55_label_B2-0-0")
        == "Bad.Boys.1995__#01-11-55_label_B2-0-0"
    )


def test_three_text_formats(tmp_path):
    ucf = tmp_path / "ucf.txt"
    ucf.write_text(
        "Arson011_x264  Arson  150  420  680  1267  \nNormal_Videos_003_x264  Normal  -1  -1  -1  -1  \n"
    )
    ann = read_annotations(ucf, "ucf")
    assert ann["Arson011_x264"] == [Segment(150, 420, "Arson"), Segment(680, 1267, "Arson")]
    assert ann["Normal_Videos_003_x264"] == []

    xd = tmp_path / "xd.txt"
    xd.write_text("v=U6MC8JJJZSY__#1_label_G-0-0.mp4 150 779\nclipB 1 2 3 4 5 6\n")
    ann = read_annotations(xd, "xd")
    assert ann["v=U6MC8JJJZSY__#1_label_G-0-0"] == [Segment(150, 779)]
    assert len(ann["clipB"]) == 3

    multi = tmp_path / "multi.txt"
    multi.write_text("clip B2 157 180 G 185 244 B2 250 282\n")
    assert read_annotations(multi, "xd-multiclass")["clip"] == [
        Segment(157, 180, "B2"),
        Segment(185, 244, "G"),
        Segment(250, 282, "B2"),
    ]
    # auto understands all three
    assert read_annotations(multi)["clip"][1] == Segment(185, 244, "G")


def test_json_form(tmp_path):
    p = tmp_path / "a.json"
    p.write_text('{"v1.mp4": [{"start": 3, "end": 9, "label": "Fighting"}, [20, 30]], "v2": []}')
    ann = read_annotations(p)
    assert ann == {"v1": [Segment(3, 9, "Fighting"), Segment(20, 30, None)], "v2": []}


@pytest.mark.parametrize(
    "line, fmt, fragment",
    [
        ("v 1 2 3", "xd", "odd number"),
        ("v Arson 1 2 Burglary 3 4", "ucf", "class tokens"),
        ("v B1 1 2 3 4", "xd-multiclass", "before every frame pair"),
        ("v Arson 1 2", "xd", "without class tokens"),
        ("v 1 X 2", "auto", "splits a frame pair"),
    ],
)
def test_malformed_lines_name_file_and_line(tmp_path, line, fmt, fragment):
    p = tmp_path / "ann.txt"
    first = {"ucf": "ok C 1 2", "xd-multiclass": "ok B1 1 2"}.get(fmt, "ok 1 2")
    p.write_text(f"{first}\n{line}\n")
    with pytest.raises(DataError) as err:
        read_annotations(p, fmt)
    assert f"{p}:2" in str(err.value) and fragment in str(err.value)


def test_duplicate_video_line(tmp_path):
    p = tmp_path / "ann.txt"
    p.write_text("v 1 2\nv.mp4 3 4\n")
    with pytest.raises(DataError, match="annotated twice"):
        read_annotations(p)
