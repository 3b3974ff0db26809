"""Atomic writes, locks and content fingerprints: outputs are complete or absent, never
half-written, and never written by two processes at once."""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator


_UMASK = os.umask(0o022)
os.umask(_UMASK)


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success rename it over `path`, on failure delete it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp's 0600 is for the temporary file, not the output
        os.replace(tmp, path)  # atomic on POSIX and Windows when on the same filesystem
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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


def files_fingerprint(paths: list[Path]) -> str:
    """Hash of names, sizes and modification times: cheap, and changes when any file does."""
    rows = []
    for p in paths:
        st = os.stat(p)
        rows.append((str(p), st.st_size, st.st_mtime_ns))
    return fingerprint(rows)
