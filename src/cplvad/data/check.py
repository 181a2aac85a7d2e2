"""``cplvad datasets check``: what a dataset's features folder holds, before an hour of training.

Per split: videos found and missing, crops per video, feature width and snippet counts (from the
``.npy`` headers only); for a built-in benchmark, the test videos' snippet counts against the annotated
frame counts. Problems that would stop training or evaluation (missing or unreadable files, mixed feature
widths, no normal or no abnormal training video, annotations that do not fit the test list) make the
check fail; differences that only deserve a note (frame counts a few frames off, fewer crops) do not.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from cplvad.data.benchmark_specs import BENCHMARKS
from cplvad.data.benchmarks import load_benchmark
from cplvad.data.dataset import Dataset, FeatureList
from cplvad.data.features import open_features
from cplvad.errors import DataError

EXAMPLES = 3


@dataclass
class SplitCheck:
    split: str
    videos: int = 0
    found: int = 0
    missing: list[str] = field(default_factory=list)
    """``video__crop (path tried)`` of listed files that are not there."""
    unreadable: list[str] = field(default_factory=list)
    crops: Counter = field(default_factory=Counter)
    """Crops found per video -> number of videos."""
    widths: Counter = field(default_factory=Counter)
    """Feature width -> number of files."""
    snippets: dict[str, int] = field(default_factory=dict)
    """Video -> T of its first crop found."""
    normal: int = 0
    abnormal: int = 0


@dataclass
class DatasetCheck:
    name: str
    train: SplitCheck
    test: SplitCheck
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        out = [
            f"{self.name}: {_split_line(self.train)}",
            f"{self.name}: {_split_line(self.test)}",
            *self.notes,
        ]
        out += [f"problem: {p}" for p in self.problems]
        out.append(
            "OK: training and evaluation can run" if self.ok else "NOT OK: training or evaluation would fail"
        )
        return out


def _split_line(s: SplitCheck) -> str:
    text = f"{s.split}: {s.found} of {s.videos} videos found"
    if s.crops:
        common, _ = s.crops.most_common(1)[0]
        others = sum(n for c, n in s.crops.items() if c != common)
        text += f", {common} crop{'s' if common > 1 else ''} per video" + (
            f" ({others} videos differ)" if others else ""
        )
    if s.widths:
        text += ", " + " and ".join(f"{w}-d" for w in sorted(s.widths))
    if s.snippets:
        text += f", {min(s.snippets.values())} to {max(s.snippets.values())} snippets"
    if s.split == "train":
        text += f"; {s.normal} normal, {s.abnormal} abnormal"
    return text


def _scan(lst: FeatureList) -> SplitCheck:
    report = SplitCheck(lst.split, videos=len(lst))
    for video in lst:
        found = 0
        for row in video.rows:
            try:
                path = lst.locate(row)
            except DataError:
                report.missing.append(f"{video.name}__{row.crop} ({row.listed_path})")
                continue
            try:
                arr = open_features(path)
            except DataError as exc:
                report.unreadable.append(str(exc))
                continue
            found += 1
            report.widths[int(arr.shape[1])] += 1
            report.snippets.setdefault(video.name, int(arr.shape[0]))
        if found:
            report.found += 1
            report.crops[found] += 1
            if video.abnormal:
                report.abnormal += 1
            else:
                report.normal += 1
    return report


def _list_or_problem(dataset: Dataset, split: str, problems: list[str]) -> FeatureList | None:
    try:
        return getattr(dataset, split)
    except DataError as exc:
        problems.append(str(exc))
        return None


def check_dataset(dataset: Dataset) -> DatasetCheck:
    """Check a dataset's lists, feature files and annotations (feature headers only)."""
    problems: list[str] = []
    lists = {split: _list_or_problem(dataset, split, problems) for split in ("train", "test")}
    scans = {split: _scan(lst) if lst is not None else SplitCheck(split) for split, lst in lists.items()}
    check = DatasetCheck(dataset.name, scans["train"], scans["test"], problems=problems)
    for s in scans.values():
        for kind, items in (("missing", s.missing), ("unreadable", s.unreadable)):
            if items:
                problems.append(
                    f"{s.split}: {len(items)} feature file(s) {kind}, e.g. " + "; ".join(items[:EXAMPLES])
                )
    widths = scans["train"].widths + scans["test"].widths
    if len(widths) > 1:
        problems.append(
            f"feature widths differ ({dict(widths)} files per width): features of different CLIP "
            "models are mixed; use one release or re-extract"
        )
    train = scans["train"]
    if lists["train"] is not None and train.found and not (train.normal and train.abnormal):
        problems.append(
            f"train: no {'normal' if not train.normal else 'abnormal'} video found; weak supervision "
            "needs both"
        )
    if lists["train"] is not None and not train.found:
        problems.append("train: no training feature file found")
    if lists["test"] is not None:
        try:
            dataset.annotations  # noqa: B018  (reading checks them against the test list)
            dataset.segment_annotations  # noqa: B018
        except DataError as exc:
            problems.append(str(exc))
    if dataset.name in BENCHMARKS:
        check.notes += _benchmark_notes(dataset.name, train, scans["test"])
    return check


def _benchmark_notes(name: str, train: SplitCheck, test: SplitCheck) -> list[str]:
    bench = load_benchmark(name)
    notes = [
        f"{name}: the published training split has {bench.train_videos} videos with {bench.crops} crops each"
    ]
    expected = {v.name: v.frames for v in bench.test}
    off = {
        n: (t * bench.frames_per_snippet, expected[n])
        for n, t in test.snippets.items()
        if n in expected and t * bench.frames_per_snippet != expected[n]
    }
    if test.snippets:
        text = (
            f"{name}: test snippet counts x {bench.frames_per_snippet} match the annotated frame counts for "
            f"{len(test.snippets) - len(off)} of {len(test.snippets)} videos"
        )
        if off:
            worst = max(abs(a - b) for a, b in off.values())
            examples = ", ".join(f"{n} {a} vs {b}" for n, (a, b) in list(off.items())[:EXAMPLES])
            text += (
                f"; {len(off)} differ by up to {worst} frames (e.g. {examples}): the published counts of some "
                "videos come from another feature release; evaluation uses the features' own length"
            )
        notes.append(text)
    return notes
