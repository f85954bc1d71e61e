"""What a team's file or folder *is*: the SHA-256 digest a task on it holds, and the store
that keeps each file's hash between processes.

A file's digest is the first 16 hex digits of what `sha256sum` prints; a folder's, of the
SHA-256 over its files' paths below it and their SHA-256s, in path order. Each file's SHA-256
is kept in the service's cache (`<cache>/digests/`) by its size and modification time, so after
the first read a process only lists the folder, and only files added or rewritten are read
again.

The first read of a large folder (an image dataset of hundreds of GB) takes minutes, longer
than an HTTP request should. Under `waiting_at_most(seconds)` (the API's submission route) the
read goes on in a background thread and `DataPending` says how far it got; the same request
sent again finds it finished or further on, and one process's read is never repeated by
another (a lock file per folder beside its store entry).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import threading
import time
from collections.abc import Callable, Hashable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeGuard, TypeVar, cast

from tuner.errors import DataError

T = TypeVar("T")


class DataPending(Exception):
    """The team's data is still being prepared in the background (`waiting_at_most`): read
    for its digest (`stage` reading: `done_bytes` of `total_bytes` so far, or, with
    `elsewhere`, another process is reading it), or loaded to check the job against it
    (`stage` loading, for `seconds` so far: `awaited`)."""

    def __init__(self, field: str, done_bytes: int, total_bytes: int, elsewhere: bool,
                 stage: str = "reading", seconds: float = 0.0) -> None:
        self.field, self.done_bytes, self.total_bytes = field, done_bytes, total_bytes
        self.elsewhere, self.stage, self.seconds = elsewhere, stage, seconds
        if stage == "loading":
            what = f"loading your data to check the job against it ({seconds:.0f} s so far)"
        else:
            what = "reading your data to identify it (" + (
                "another process of the service is reading it" if elsewhere else
                f"{human_bytes(done_bytes)} of {human_bytes(total_bytes)} read, "
                f"{100 * done_bytes // max(total_bytes, 1)}%") + ")"
        super().__init__(f"{field}: still {what}; nothing is created until it is done: send "
                         "the same submission again with the same Idempotency-Key (the tuner "
                         "client does so itself)")

    def progress(self) -> dict[str, Any]:
        return {"field": self.field, "stage": self.stage, "read_bytes": self.done_bytes,
                "total_bytes": self.total_bytes, "elsewhere": self.elsewhere,
                "seconds": round(self.seconds, 1)}


# A task's digests in words: what tells two tasks of the same names and parameters apart.
TASK_DIGESTS = (("data_digest", "data"), ("model_digest", "model files"), ("code_digest", "code"))


def digests_apart(other: Mapping[str, Any], this: Mapping[str, Any]
                  ) -> list[tuple[str, str, str]]:
    """(label, other's, this one's) for each digest in which task `other` differs from task
    `this` (as the API lists tasks), `none` where a task has none."""
    return [(label, other.get(k) or "none", this.get(k) or "none")
            for k, label in TASK_DIGESTS if other.get(k) != this.get(k)]


def human_bytes(n: int) -> str:
    """Decimal units, as disks are sold: 41.2 GB."""
    if n < 1000:
        return f"{n} B"
    value, units = n / 1000, ["KB", "MB", "GB", "TB"]
    while value >= 1000 and len(units) > 1:
        value, units = value / 1000, units[1:]
    return f"{value:.1f} {units[0]}"


_WAIT: ContextVar[float | None] = ContextVar("tuner_digest_wait", default=None)


@contextmanager
def waiting_at_most(seconds: float | None) -> Iterator[None]:
    """Within this block, a digest that is not known yet is read in a background thread, and
    waited for at most `seconds`; then `DataPending` is raised, the read going on. None: read
    in the calling thread, however long it takes (the dispatcher, a worker, `tuner run`)."""
    token = _WAIT.set(seconds)
    try:
        yield
    finally:
        _WAIT.reset(token)


Listing = list[tuple[str, str, int, int]]  # (path below the root, path, size, mtime in ns)


def _listing(root: Path) -> Listing:
    """Every file of a file or folder, in path order, with its size and modification time: a
    stat per entry, nothing read. The service's digest store is left out where it lies inside
    (`tuner run` over the whole data root)."""
    if root.is_file():
        st = root.stat()
        return [("", str(root), st.st_size, st.st_mtime_ns)]
    out: Listing = []
    store = str(_store_dir())
    _walk(str(root), "", store, out)
    out.sort(key=lambda e: e[0].split("/"))  # as Paths sort: part by part
    return out


def _walk(folder: str, rel: str, store: str, out: Listing) -> None:
    """`Path.rglob("*")`'s files (symlinked files followed, symlinked folders not entered),
    with one stat per file: the entries' types come with the listing."""
    with os.scandir(folder) as entries:
        for e in entries:
            name = f"{rel}{e.name}"
            if e.path == store or e.path.startswith(store + os.sep):
                continue
            if e.is_dir(follow_symlinks=False):
                _walk(e.path, name + "/", store, out)
            elif e.is_file():
                st = e.stat()
                out.append((name, e.path, st.st_size, st.st_mtime_ns))  # a str: a Path
                # per file cost more than the stat


def _version(listing: Listing) -> str:
    """What a computed digest is keyed by: every file's path, size and modification time. Any
    file added, removed, resized or written again (a new mtime, whatever its bytes) is another
    version; only a rewrite to the same size that also restores the old mtime to the
    nanosecond is not (the trust git's index places in a stat)."""
    import hashlib

    h = hashlib.sha256()
    for rel, _, size, mtime in listing:
        h.update(f"{rel}\0{size}\0{mtime}\n".encode())
    return h.hexdigest()


def path_digest(path: Path) -> str:
    """The digest a task on this file or folder holds (`data_digest`, `model_digest` of an
    `hf:` folder), for any path: `tuner data digest`."""
    return digest(path.resolve())


_DIGESTS: dict[tuple[str, str], str] = {}  # (path, version) -> digest, this process's
_DIGESTS_MAX = 256
DIGEST_SAVE_EVERY_S = 5.0  # a long first read keeps what it hashed so far this often
_DIGESTS_LOCK = threading.Lock()


@dataclass
class _Progress:
    """How far a read has got, for `DataPending`."""

    total: int
    done: int = 0
    elsewhere: bool = False  # waiting for another process's read of the same folder


@dataclass
class _Run:
    """Work going on in a background thread (`awaited`): a read for a digest (with its
    `progress`), or a load."""

    started: float
    progress: _Progress | None = None
    done: threading.Event = dataclasses.field(default_factory=threading.Event)
    result: Any = None
    error: Exception | None = None


_RUNS: dict[Hashable, _Run] = {}  # key -> its background work, until collected


def digest(root: Path, field: str = "task.dataset") -> str:
    """The digest of a file's bytes, or of a folder's files (their paths below it and the
    SHA-256 of each one's bytes, in path order). Computed once per version (`_version`) in a
    process, and each file's SHA-256 kept in the service's digest store (`_store_dir`) by its
    size and modification time, so other processes (the dispatcher, every worker) and later
    versions of the folder read only the files that changed since. Under `waiting_at_most`,
    a read that takes longer raises `DataPending` and goes on in the background."""
    listing = _listing(root)
    key = (str(root), _version(listing))
    with _DIGESTS_LOCK:
        found = _DIGESTS.get(key)
    if found is not None:
        return found
    progress = _Progress(_total(listing))
    if _WAIT.get() is None:
        return _settle(key, *_compute(root, listing, field, progress))
    return awaited(("digest", *key), lambda: _settle(key, *_read(root, listing, field, progress)),
                   field, progress)


def awaited(key: Hashable, fn: Callable[[], T], field: str,
            progress: _Progress | None = None) -> T:
    """`fn()`; under `waiting_at_most`, in a background thread (one per `key` at a time),
    waited for at most the wait, past which `DataPending` is raised (stage `reading` with
    `progress`, else `loading`) and the work goes on: the same request sent again gets its
    result, or its error. `fn` must keep its own result (`_DIGESTS`, an lru_cache): a success
    nobody came back for is forgotten here. For what a submission does with the team's data
    (its digest; then loading it: a large `hf:` folder builds its Arrow cache, minutes)."""
    wait = _WAIT.get()
    if wait is None:
        return fn()
    with _DIGESTS_LOCK:
        run = _RUNS.get(key)
        if run is None:
            run = _RUNS[key] = _Run(time.monotonic(), progress)
            threading.Thread(target=_in_background, args=(run, key, fn), daemon=True,
                             name=f"prepare {field}").start()
    if not run.done.wait(max(wait, 0.0)):
        p = run.progress
        if p is not None:
            raise DataPending(field, p.done, p.total, p.elsewhere)
        raise DataPending(field, 0, 0, False, "loading", time.monotonic() - run.started)
    with _DIGESTS_LOCK:
        if _RUNS.get(key) is run:
            del _RUNS[key]
    if run.error is not None:
        raise run.error
    return cast(T, run.result)


def _in_background(run: _Run, key: Hashable, fn: Callable[[], Any]) -> None:
    """An error waits in `_RUNS` for the next request to say it (and that request's resend
    starts the work again)."""
    try:
        run.result = fn()
        with _DIGESTS_LOCK:
            if _RUNS.get(key) is run:
                del _RUNS[key]
    except Exception as exc:  # a thread's error must reach the request waiting for it
        run.error = exc
    finally:
        run.done.set()


def _read(root: Path, listing: Listing, field: str, progress: _Progress) -> tuple[str, bool]:
    """`_compute` in the background: any error said as the field's, for the request that
    comes back for it (a DataError is a 422)."""
    try:
        return _compute(root, listing, field, progress)
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"{field}: cannot read your data ({type(exc).__name__}: {exc})") from exc


def _total(listing: Listing) -> int:
    return sum(e[2] for e in listing)


def _settle(key: tuple[str, str], found: str, settled: bool) -> str:
    if settled:  # nothing was being written while it was read: this version's digest
        with _DIGESTS_LOCK:
            _DIGESTS[key] = found
            if len(_DIGESTS) > _DIGESTS_MAX:
                del _DIGESTS[next(iter(_DIGESTS))]
    return found


@contextmanager
def _reading(root: Path, progress: _Progress) -> Iterator[None]:
    """One process at a time reads a file or folder (a lock file beside its store entry): a
    second one waits, then finds the first one's hashes in the store and reads nothing. Where
    the store cannot be written (a read-only cache), each reads on its own."""
    import fcntl

    lock = _store_file(root).with_suffix(".lock")
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            progress.elsewhere = True
            fcntl.flock(fd, fcntl.LOCK_EX)
            progress.elsewhere = False
        yield
    finally:
        os.close(fd)  # releases the lock


def _compute(root: Path, listing: Listing, field: str,
             progress: _Progress) -> tuple[str, bool]:
    """(digest, whether every file read was still as listed afterwards). A file written while
    it was read is not stored: its size and time are another version's, its hash maybe
    neither's (the next check lists it again and reads it again)."""
    with _reading(root, progress):
        return _hash(root, listing, field, progress)


def _hash(root: Path, listing: Listing, field: str, progress: _Progress) -> tuple[str, bool]:
    import hashlib

    known = _load_known(root)
    now: dict[str, list[Any]] = {}
    settled = True
    h = hashlib.sha256()
    saved, every = time.monotonic(), DIGEST_SAVE_EVERY_S
    for rel, p, size, mtime in listing:
        if time.monotonic() - saved >= every:
            # What is hashed so far, kept: a request that times out and is sent again (or a
            # worker started meanwhile) reads only the rest. A store of a million files takes
            # seconds to write: never more than a tenth of the time goes to it.
            started = time.monotonic()
            _save_known(root, {**known, **now})
            saved = time.monotonic()
            every = max(DIGEST_SAVE_EVERY_S, 10 * (saved - started))
        k = known.get(rel)
        if _entry_ok(k) and k[0] == size and k[1] == mtime:
            sha = str(k[2])
            now[rel] = k
        else:
            try:
                with open(p, "rb") as fh:
                    sha = hashlib.file_digest(fh, "sha256").hexdigest()
                st = os.stat(p)
            except OSError as exc:  # unreadable, or gone since the listing: say which file
                _save_known(root, {**known, **now})
                raise DataError(f"{field}: cannot read {rel or Path(p).name!r} in your data folder "
                                f"({exc.strerror or type(exc).__name__})") from None
            if (st.st_size, st.st_mtime_ns) == (size, mtime):
                now[rel] = [size, mtime, sha]
            else:
                settled = False
        progress.done += size
        h.update(rel.encode() + b"\0" + bytes.fromhex(sha))
    if now != known:
        _save_known(root, now)
    if root.is_file():  # what sha256sum prints, its first 16 hex digits
        return (now[""][2] if now else sha)[:16], settled
    return h.hexdigest()[:16], settled


_SHA256_HEX = re.compile("[0-9a-f]{64}")


def _entry_ok(k: Any) -> TypeGuard[list[Any]]:
    """A stored entry as `_compute` writes it: [size, mtime in ns, SHA-256 in hex]. Anything
    else (a store from elsewhere, edited by hand) is read again, never trusted."""
    return (isinstance(k, list) and len(k) == 3 and all(isinstance(v, int) for v in k[:2])
            and isinstance(k[2], str) and len(k[2]) == 64
            and _SHA256_HEX.fullmatch(k[2]) is not None)


def _store_dir() -> Path:
    """Where each file's SHA-256 is kept between processes: `digests/` in the service's cache
    (`TUNER_CACHE_ROOT`, default `<TUNER_DATA_ROOT>/.tuner-cache`)."""
    from tuner.config import get_settings

    s = get_settings()
    return ((s.cache_root or s.data_root / ".tuner-cache") / "digests").resolve()


def _store_file(root: Path) -> Path:
    """One file per data file or folder, named by a hash of its absolute path."""
    import hashlib

    return _store_dir() / (hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:32]
                           + ".json")


def _load_known(root: Path) -> dict[str, list[Any]]:
    import json

    try:
        data = json.loads(_store_file(root).read_text())
    except (OSError, ValueError):  # none yet, unreadable or cut short: hash again
        return {}
    return data if isinstance(data, dict) else {}


def _save_known(root: Path, known: dict[str, list[Any]]) -> None:
    """Written whole to a temporary file and renamed over the old one: a reader never sees
    half a file, and of two processes writing at once the last one's (equally valid) wins. A
    store that cannot be written (a read-only cache) only costs the next process a read."""
    import json
    import tempfile

    path, tmp = _store_file(root), None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".digests-")
        with os.fdopen(fd, "w") as fh:
            json.dump(known, fh, separators=(",", ":"))
        os.replace(tmp, path)
    except OSError:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
