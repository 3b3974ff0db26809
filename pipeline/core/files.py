"""Atomic writes, locks and content fingerprints: outputs are complete or absent, never
half-written, and never written by two processes at once."""
from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from pipeline import PipelineError


_UMASK = os.umask(0o022)
os.umask(_UMASK)


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success rename it over `path`, on failure delete it."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise unwritable(e, path) from None
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp's 0600 is for the temporary file, not the output
        os.replace(tmp, path)  # atomic on POSIX and Windows when on the same filesystem
    except OSError as e:
        written = Path(tmp).stat().st_size if Path(tmp).exists() else 0
        Path(tmp).unlink(missing_ok=True)
        raise unwritable(e, path, written) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


FULL = (errno.ENOSPC, errno.EDQUOT)
FORBIDDEN = (errno.EACCES, errno.EROFS, errno.EPERM)


def unwritable(e: OSError, path: Path, written: int = 0) -> OSError | PipelineError:
    """A write that failed for a reason the user fixes (a full disk, a folder not theirs) as one
    line naming the file; any other error as it was."""
    path = Path(path)
    if e.errno in FULL or "No space left" in str(e):  # (pyarrow's errors carry the text, not the errno)
        where = next((p for p in path.parents if p.exists()), Path("/"))
        free = shutil.disk_usage(where).free
        return PipelineError(f"{path}: the disk is full ({written / 2**20:.0f} MiB written, "
                             f"{free / 2**20:.0f} MiB free on {where}); free some space and run the same "
                             f"command again: it resumes")
    if e.errno in FORBIDDEN:
        return PipelineError(f"{path}: cannot write here ({e.strerror}); run pipeline from a folder you can "
                             f"write to (runs and submissions go under the current folder)")
    return e


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `path` (created if absent) while the block runs; another process
    asking for it waits. The OS drops the lock when its holder dies, so a killed process leaves none."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@contextmanager
def held(path: Path, holder: str) -> Iterator[None]:
    """Hold `path`'s lock for a long job, or fail at once: PipelineError names who holds it (the
    holder writes `holder` into the file). The OS drops it when the process dies, kill -9 too."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            raise PipelineError(f"in use by {fh.read().strip() or 'another process'}") from None
        fh.truncate(0)
        fh.write(holder)
        fh.flush()
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def is_held(path: Path) -> bool:
    """Whether a live process holds `path`'s lock (`held`)."""
    try:
        with open(path) as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(fh, fcntl.LOCK_UN)
            return False
    except FileNotFoundError:
        return False


def write_json(path: Path, obj: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, default=str) + "\n")


def read_json(path: Path, default: Any = None) -> Any:
    path = Path(path)
    return json.loads(path.read_text()) if path.exists() else default


def write_parquet(path: Path, df) -> None:
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False)


def write_csv(path: Path, df, **options) -> None:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, **options)


def fingerprint(*parts: Any) -> str:
    """A short stable hash of JSON-able values: equal settings give equal keys across runs."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha1(blob).hexdigest()[:12]


def file_sha1(path: Path) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def files_fingerprint(paths: list[Path]) -> str:
    """Hash of names, sizes and modification times: cheap, and changes when any file does."""
    rows = []
    for p in paths:
        st = os.stat(p)
        rows.append((str(p), st.st_size, st.st_mtime_ns))
    return fingerprint(rows)
