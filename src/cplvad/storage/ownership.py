"""Folder ownership: cplvad writes only into folders that hold nothing but its own files, never deletes,
moves or overwrites a file it did not write, and lets one writer at a time into a folder.

Every folder cplvad writes holds a hidden ``.cplvad/``:

- ``owner.json``: the folder is cplvad's (it created it, or found it empty); cplvad may resume or replace it;
- ``written.jsonl``: each file cplvad wrote there, one JSON string per line (its path relative to the
  folder), appended by the atomic writers (``cplvad.storage.atomic``) before the file appears;
- ``lock`` and ``lock.holder.json``: the writer lock (``storage.locks``);
- ``tmp/``: the atomic writers' temporary files (``<pid>.<name>...``), so a killed writer leaves none among
  the outputs.

A folder that only receives declared output files (``evaluate --out DIR/metrics.json`` with ``DIR`` the
user's) gets a ``.cplvad/`` without ``owner.json``: there only the files listed in ``written.jsonl`` are
cplvad's. An ``s3://`` prefix is claimed by ``cplvad.storage.prefixes`` with the same marker and a lock
object.

A claim (``claim_folder``, ``claim_file``) checks a folder and takes its lock before any work: a folder
holding a file that cplvad did not write (or a directory with none of its files) is refused with
``ForeignDataError``; a folder another process writes, with ``BusyError``. Claims are re-entrant within a
process: the CLI claims every output a command declares (``cli/outputs.py``), and the library primitives
claim again for callers that do not come through the CLI. A folder a claim created that still holds
nothing but ``.cplvad/`` when the claim ends (a command failed before writing) is removed again.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from cplvad.errors import ConfigError, DataError, ForeignDataError
from cplvad.storage.locks import FolderLock, Holder

log = logging.getLogger(__name__)

MARKER_DIR = ".cplvad"
OWNER_FILE = "owner.json"
WRITTEN_FILE = "written.jsonl"
TMP_DIR = "tmp"
LOCK_NAME = "lock"
OWNER_FORMAT = "cplvad-folder/1"
NAMES_SHOWN = 5
"""Files named in a refusal (the rest are counted)."""
SHARED_WAIT = 10.0
"""Seconds a writer with a lock of its own (an extraction shard) waits for the folder's lock, which other
such writers hold only while they check the folder."""
WALK_LIMIT = 10_000
"""Foreign files counted at most: a refusal of a huge folder stays fast."""


@dataclass
class _Claim:
    """One claimed local folder of this process."""

    root: Path
    """The folder's real path."""
    shown: str
    """The folder as the user gave it, for messages."""
    what: str
    owned: bool
    created: bool
    """The folder did not exist before this claim."""
    made_marker: bool
    """``.cplvad/`` did not exist before this claim."""
    lock: FolderLock
    record: set[str] = field(default_factory=set)
    nested: dict[Path, set[str]] = field(default_factory=dict)
    """The records of folders of cplvad's inside this one that it wrote into, as far as known."""
    refs: int = 1

    @property
    def marker(self) -> Path:
        return self.root / MARKER_DIR


_claims: dict[Path, _Claim] = {}
_mutex = threading.RLock()


def _real(path: str | os.PathLike[str]) -> Path:
    return Path(os.path.realpath(path))


def _shown(name: str) -> str:
    """A file name for a message: bytes that are not UTF-8 shown as replacement characters."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


# ------------------------------------------------------------------------------------------------- records


def read_record(folder: Path) -> set[str]:
    """The files cplvad wrote in ``folder`` (relative paths); a line cut short by a kill is skipped."""
    try:
        lines = (folder / MARKER_DIR / WRITTEN_FILE).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return set()
    record = set()
    for line in lines:
        with contextlib.suppress(ValueError):
            record.add(json.loads(line))
    return record


def _append(marker: Path, rel: str) -> None:
    fd = os.open(marker / WRITTEN_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (json.dumps(rel) + "\n").encode())
    finally:
        os.close(fd)


def _write_marker_file(marker: Path, name: str, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=marker)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, marker / name)


def is_owned(folder: str | os.PathLike[str]) -> bool:
    return (Path(folder) / MARKER_DIR / OWNER_FILE).is_file()


def _unrecorded(root: Path, record: set[str]) -> list[str]:
    """Paths under ``root`` that cplvad did not write (at most ``WALK_LIMIT``): files (and links, and any
    other non-folder) missing from the record, and folders that hold none of its files. A nested folder
    with its own ``.cplvad/`` adds its record."""
    found: list[str] = []

    def visit(folder: Path, prefix: str, known: set[str]) -> bool:
        holds_ours = bool(prefix) and (folder / MARKER_DIR).is_dir()  # a folder of cplvad's of its own
        if holds_ours:
            known = known | {prefix + r for r in read_record(folder)}
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            return False
        for entry in entries:
            if len(found) >= WALK_LIMIT:
                return True
            rel = prefix + entry.name
            if entry.name == MARKER_DIR and entry.is_dir(follow_symlinks=False):
                continue
            if entry.is_dir(follow_symlinks=False):
                if visit(Path(entry.path), rel + "/", known):
                    holds_ours = True
                else:
                    found.append(rel + "/")
            elif rel in known:
                holds_ours = True
            else:
                found.append(rel)
        return holds_ours

    visit(root, "", record)
    return found


def foreign_error(what: str, shown: str, foreign: list[str], tail: str) -> ForeignDataError:
    count = f"more than {WALK_LIMIT - 1}" if len(foreign) >= WALK_LIMIT else str(len(foreign))
    names = ", ".join(_shown(f) for f in foreign[:NAMES_SHOWN])
    more = f" and {len(foreign) - NAMES_SHOWN} more" if len(foreign) > NAMES_SHOWN else ""
    return ForeignDataError(
        f"{what} {shown} holds {count} file(s) that cplvad did not write ({names}{more}); cplvad never "
        f"deletes, moves or overwrites them. {tail}"
    )


# -------------------------------------------------------------------------------------------------- claims


def _innermost(path: Path) -> _Claim | None:
    """The claim that ``path`` belongs to: of the innermost claimed folder of cplvad's around it, or of the
    user's folder that holds it (a folder claimed for its output files covers its own files only)."""
    if not _claims:
        return None
    for folder in (path, *path.parents):
        claim = _claims.get(folder)
        if claim is not None and (claim.owned or folder == path.parent):
            return claim
    return None


def _open(
    folder: str | os.PathLike[str], what: str, *, owned: bool, files: tuple[str, ...] = (), wait: float = 0.0
) -> _Claim:
    """Claim a local folder (see the module docstring); ``owned=False`` with ``files``: only those files
    (names in the folder) are checked, in a folder that stays the user's. ``wait``: seconds to wait for the
    lock (writers that only pass through it to take a lock of their own)."""
    shown, root = str(folder), _real(folder)
    created = False
    if not root.exists():
        root.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            root.mkdir()
            created = True
    if not root.is_dir():
        raise DataError(f"{what} {shown} is a file, not a folder; give a folder")
    was_owned = is_owned(root)
    whole = owned or created or was_owned
    if not was_owned:  # a first look, before anything is written into a folder that may not be ours
        _refuse_foreign(root, shown, what, whole=whole, files=files, record=read_record(root))
    marker = root / MARKER_DIR
    made_marker = not marker.exists()
    marker.mkdir(exist_ok=True)
    lock = FolderLock(marker, LOCK_NAME, what, shown, wait=wait)
    lock.acquire()
    claim = _Claim(root, shown, what, whole, created, made_marker, lock)
    try:
        _sweep_tmp(marker / TMP_DIR)
        claim.record = read_record(root)
        _refuse_foreign(root, shown, what, whole=whole, files=files, record=claim.record)
        if whole and not was_owned:
            _write_marker_file(marker, OWNER_FILE, owner_record())
    except BaseException:
        _close(claim)
        raise
    return claim


def _refuse_foreign(
    root: Path, shown: str, what: str, *, whole: bool, files: tuple[str, ...], record: set[str]
) -> None:
    if whole:
        foreign = _unrecorded(root, record)
        if foreign:
            raise foreign_error(
                what, shown, foreign, "Give a new or empty folder, or move those files out of it"
            )
        return
    for name in files:
        if os.path.lexists(root / name) and name not in record:
            raise ForeignDataError(
                f"{what} {Path(shown) / name} exists and cplvad did not write it: it is never overwritten; "
                "give another file name, or move that file away"
            )


def _sweep_tmp(tmp: Path) -> None:
    """Remove the temporary files of writers that are no longer running (killed mid-write)."""
    if not tmp.is_dir():
        return
    for entry in os.scandir(tmp):
        pid = entry.name.split(".", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            with contextlib.suppress(OSError):
                os.unlink(entry.path)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def owner_record() -> bytes:
    """The content of ``owner.json``: the folder is cplvad's, since when, made by which command."""
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return json.dumps({"format": OWNER_FORMAT, "created": now, "by": Holder.this_process().command}).encode()


def _close(claim: _Claim) -> None:
    """Release a claim; a folder it created (or a marker it added) that holds nothing of cplvad's goes."""
    try:
        if claim.root.is_dir() and (claim.created or claim.made_marker) and not _holds_outputs(claim):
            _remove_marker(claim)
            if claim.created:
                with contextlib.suppress(OSError):
                    claim.root.rmdir()  # only when empty: what else is there is not ours
            return
        with contextlib.suppress(OSError):
            (claim.marker / TMP_DIR).rmdir()  # only when empty: no writer of this folder is still running
    except OSError as exc:
        log.warning("%s %s: could not tidy up (%s)", claim.what, claim.shown, exc)
    claim.lock.release()


def _holds_outputs(claim: _Claim) -> bool:
    """Whether the claimed folder holds anything written under the claim: in a folder of cplvad's, anything
    at all; in the user's folder, a file of its record."""
    if claim.owned:
        return any(e != MARKER_DIR for e in os.listdir(claim.root))
    return any(os.path.lexists(claim.root / r) for r in claim.record)


def _remove_marker(claim: _Claim) -> None:
    """Delete ``.cplvad/`` of a claim that wrote nothing (the lock file last, while still held)."""
    marker = claim.marker
    for name in (OWNER_FILE, WRITTEN_FILE):
        (marker / name).unlink(missing_ok=True)
    shutil.rmtree(marker / TMP_DIR, ignore_errors=True)
    claim.lock.release()
    (marker / claim.lock.name).unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        marker.rmdir()


@contextlib.contextmanager
def claim_folder(
    folder: str | os.PathLike[str], what: str = "output folder", *, lock_name: str = LOCK_NAME
) -> Iterator[None]:
    """Hold the local ``folder`` as an output folder of this process for the block: checked (only
    cplvad's files in it), locked, marked as cplvad's. ``lock_name``: a lock of its own for writers that
    may share a folder (extraction shards). An ``s3://`` prefix: ``cplvad.storage.prefixes.claim_prefix``."""
    root = _real(folder)
    with _mutex:
        claim = _claims.get(root)
        if claim is not None:
            claim.refs += 1
    if claim is None:
        shared = lock_name != LOCK_NAME
        claim = _open(folder, what, owned=True, wait=SHARED_WAIT if shared else 0.0)
        if shared:  # the folder's lock was held for the check only; this writer's own lock from now on
            claim.lock.release()
            claim.lock = FolderLock(claim.marker, lock_name, what, str(folder))
            claim.lock.acquire()
        with _mutex:
            _claims[root] = claim
    try:
        yield
    finally:
        _release(claim)


@contextlib.contextmanager
def claim_file(
    path: str | os.PathLike[str], what: str = "output file", ours: Callable[[Path], bool] | None = None
) -> Iterator[None]:
    """Hold the folder of the output file ``path`` for the block: the innermost folder of cplvad's around
    it (claimed as a whole), else its own folder, where only ``path`` itself is checked: an existing file
    that cplvad did not write there is refused. ``ours``: recognises by its content a file of cplvad's that
    arrived without its folder's ledger (a record kept in git); such a file is recorded and replaced."""
    target = _real(path)
    if target.is_dir():
        raise DataError(f"{what} {path} is a folder; give a file name")
    adopt = ours is not None and target.is_file() and not target.is_symlink() and ours(target)
    with _mutex:
        claim = _innermost(target)
        if claim is not None:
            claim.refs += 1
    if claim is None:
        owner = next((f for f in target.parents if is_owned(f)), None)
        if owner is not None:
            with claim_folder(owner, what):
                _refuse_foreign_file(_claims[owner], target, what, str(path), adopt)
                yield
            return
        claim = _open(Path(path).parent, what, owned=False, files=() if adopt else (target.name,))
        with _mutex:
            _claims[claim.root] = claim
    try:
        _refuse_foreign_file(claim, target, what, str(path), adopt)
        yield
    finally:
        _release(claim)


def _refuse_foreign_file(claim: _Claim, target: Path, what: str, shown: str, adopt: bool) -> None:
    rel = target.relative_to(claim.root).as_posix()
    if os.path.lexists(target) and rel not in claim.record:
        if adopt:
            with _mutex:
                _append(claim.marker, rel)
                claim.record.add(rel)
            return
        raise ForeignDataError(
            f"{what} {shown} exists and cplvad did not write it: it is never overwritten; give another file "
            "name, or move that file away"
        )


def _release(claim: _Claim) -> None:
    with _mutex:
        claim.refs -= 1
        if claim.refs:
            return
        _claims.pop(claim.root, None)
    _close(claim)


# --------------------------------------------------------------------------------------- the atomic writers


def record_write(target: Path) -> Path | None:
    """Called by ``cplvad.storage.atomic`` before it writes ``target``: inside a claimed folder, refuse to
    overwrite a file cplvad did not write, record the file, and return the folder for the temporary file
    (``None`` outside every claim: the temporary file goes beside the target). The record is kept by the innermost
    folder of cplvad's around the file, which may be a folder of its own inside the claimed one (a model
    directory inside a run folder)."""
    target = _real(target)
    with _mutex:
        claim = _innermost(target)
        if claim is None:
            return None
        folder = next((f for f in target.parents if f == claim.root or is_owned(f)), claim.root)
        if folder == claim.root:
            marker, record = claim.marker, claim.record
        else:
            marker = folder / MARKER_DIR
            if folder not in claim.nested:
                claim.nested[folder] = read_record(folder)
            record = claim.nested[folder]
        rel = target.relative_to(folder).as_posix()
        if rel not in record:
            if os.path.lexists(target):
                raise ForeignDataError(
                    f"{target} exists and cplvad did not write it: it is never overwritten; move it out of "
                    f"{claim.shown} and run again"
                )
            _append(marker, rel)
            record.add(rel)
    tmp = marker / TMP_DIR
    tmp.mkdir(exist_ok=True)
    return tmp


def tmp_prefix(name: str) -> str:
    """The prefix of a temporary file of this process (``_sweep_tmp`` knows whose it is)."""
    return f"{os.getpid()}.{name}."


# ------------------------------------------------------------------------------------------------ replacing


def replace_folder(
    src: str | os.PathLike[str], target: str | os.PathLike[str], what: str = "output folder"
) -> None:
    """Put the finished folder ``src`` (cplvad's, on the same file system) in the place of ``target``.

    Both are claimed (re-entrantly) and checked again: a file that cplvad did not write in either is
    refused and named, nothing is moved. The two folders are exchanged in one step where the system can
    (Linux ``renameat2``), else by two renames; the old content, now at ``src``, is deleted file by recorded
    file, and ``target`` keeps its lock throughout (the locks are exchanged with the folders).
    """
    a, b = _real(src), _real(target)
    if a == b or a in b.parents or b in a.parents:
        raise ConfigError(f"{src} and {target} must be two separate folders, neither inside the other")
    with claim_folder(src, "work folder"), claim_folder(target, what):
        new, old = _claims[a], _claims[b]
        for claim in (new, old):
            foreign = _unrecorded(claim.root, claim.record | read_record(claim.root))
            if foreign:
                raise foreign_error(
                    claim.what,
                    claim.shown,
                    foreign,
                    "Move those files out of it and run again: nothing was replaced",
                )
        if not is_owned(a):
            _write_marker_file(new.marker, OWNER_FILE, owner_record())
        _exchange(a, b)
        with _mutex:  # the folders changed places: so do their locks and records
            new.lock, old.lock = old.lock, new.lock
            new.record, old.record = old.record, new.record
            new.nested, old.nested = old.nested, new.nested
            new.lock.marker_dir, old.lock.marker_dir = new.marker, old.marker
            old.owned = True
        discard(a)


def _exchange(a: Path, b: Path) -> None:
    """Swap two folders: atomically with Linux ``renameat2(RENAME_EXCHANGE)``, else with two renames (``b``
    is absent for a moment)."""
    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is not None:
        at_fdcwd, rename_exchange = -100, 2
        if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
            return
        err = ctypes.get_errno()
        if err not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
            raise OSError(err, os.strerror(err), str(a), None, str(b))
    aside = b.with_name(f".{b.name}.cplvad-old-{os.getpid()}")
    os.replace(b, aside)
    os.replace(a, b)
    os.replace(aside, a)


def discard(folder: str | os.PathLike[str]) -> None:
    """Delete cplvad's files in ``folder`` (those of its record), then the folders they leave empty and the
    marker; a file it did not write stays, and so does the folder, with a warning."""
    root = _real(folder)
    if not root.is_dir():
        return
    with _mutex:
        claim = _claims.get(root)
    _delete_recorded(root, read_record(root) | (claim.record if claim is not None else set()))
    left = _unrecorded(root, set())
    if left:
        log.warning(
            "kept %s: it holds %d file(s) that cplvad did not write (%s)",
            root,
            len(left),
            ", ".join(_shown(f) for f in left[:NAMES_SHOWN]),
        )
        return
    marker = root / MARKER_DIR
    for entry in (OWNER_FILE, WRITTEN_FILE):
        (marker / entry).unlink(missing_ok=True)
    shutil.rmtree(marker / TMP_DIR, ignore_errors=True)
    for entry in os.listdir(marker) if marker.is_dir() else []:
        if entry.startswith(LOCK_NAME):  # lock files (held ones too: unlinking them keeps the hold)
            (marker / entry).unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        marker.rmdir()
        root.rmdir()
    if claim is not None:
        claim.record = set()


def discard_contents(folder: str | os.PathLike[str]) -> None:
    """Delete cplvad's files in a claimed ``folder`` and keep the folder (with its claim and lock)."""
    root = _real(folder)
    claim = _claims[root]
    _delete_recorded(root, read_record(root) | claim.record)
    (claim.marker / WRITTEN_FILE).unlink(missing_ok=True)
    claim.record = set()


def _delete_recorded(root: Path, record: set[str]) -> None:
    """Delete the recorded files under ``root`` (with those of the nested folders that keep a record of
    their own), then the folders they leave empty, nested markers included; nothing else."""
    nested = [
        Path(dirpath)
        for dirpath, dirnames, _ in os.walk(root)
        if Path(dirpath) != root
        and MARKER_DIR in dirnames
        and MARKER_DIR not in Path(dirpath).relative_to(root).parts
    ]
    for folder in nested:
        prefix = folder.relative_to(root).as_posix() + "/"
        record = record | {prefix + r for r in read_record(folder)}
    for rel in record:
        with contextlib.suppress(FileNotFoundError, IsADirectoryError, NotADirectoryError):
            (root / rel).unlink()
    for folder in nested:
        if os.listdir(folder) == [MARKER_DIR]:
            shutil.rmtree(folder / MARKER_DIR, ignore_errors=True)
    for dirpath, _, _ in os.walk(root, topdown=False):
        if Path(dirpath) != root and MARKER_DIR not in Path(dirpath).relative_to(root).parts:
            with contextlib.suppress(OSError):
                os.rmdir(dirpath)
