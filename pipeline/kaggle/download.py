"""`pipeline download` and the download stage of `pipeline run`: the competition's archive from
Kaggle into data/<competition>/, extracted safely and all at once.

The archive lands in data/.<competition>.download/ (the client resumes it there if a transfer
breaks off); it is extracted into a temporary folder beside the target, inner archives too, and
renamed into place only when complete. No entry may leave the folder; a bad archive is an error,
never a partial dataset. download.json in the target records what was fetched: a second call does
nothing (no network either) unless forced."""
from __future__ import annotations

import shutil
import stat
import time
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from pipeline import PipelineError
from pipeline.competition import Competition
from pipeline.core.files import read_json, write_json
from pipeline.core.workdir import in_kernel
from pipeline.kaggle import api as kaggle_api
from pipeline.kaggle.locate import has_data, needed

RECORD = "download.json"


def download(comp: Competition, dest: Path, force: bool = False, log=print) -> Path:
    record = read_json(dest / RECORD)
    if record and not force:
        log(f"{comp.name}: downloaded {record['downloaded_at']} into {dest}, skipped (--force downloads again)")
        return dest
    if in_kernel():
        raise PipelineError(f"downloading {comp.slug}: Kaggle kernels have no network; attach the competition's "
                            f"data to the kernel (Add Input -> Competitions -> {comp.slug})")
    staging = dest.parent / f".{dest.name}.download"
    doing = f"downloading {comp.slug}"
    api = kaggle_api.connect(comp.slug, doing)
    log(f"{comp.name}: downloading https://www.kaggle.com/c/{comp.slug}/data into {dest}")
    with kaggle_api.errors(comp.slug, doing, f"download https://www.kaggle.com/c/{comp.slug}/data by hand "
                           f"and unzip it into {dest}"):
        api.competition_download_files(comp.slug, path=str(staging), force=force, quiet=False)
    archives = [p for p in staging.iterdir() if p.suffix == ".zip"]
    if len(archives) != 1:
        raise PipelineError(f"{staging}: expected the one archive Kaggle sends, found "
                            f"{', '.join(p.name for p in staging.iterdir()) or 'nothing'}; delete the folder and run again")
    archive = archives[0]
    with kaggle_api.errors(comp.slug, f"extracting {archive}"):
        files, size = extract(archive, dest)
    write_json(dest / RECORD, {"competition": comp.name, "slug": comp.slug, "archive": archive.name,
                               "archive_bytes": archive.stat().st_size, "files": files, "bytes": size,
                               "downloaded_at": time.strftime("%Y-%m-%d %H:%M:%S")})
    shutil.rmtree(staging)
    log(f"{comp.name}: {files} files, {size / 1e6:.1f} MB in {dest}")
    sevens = sorted(p.name for p in dest.rglob("*.7z"))
    if sevens and not has_data(dest, comp):  # e.g. planet's images: train-jpg.tar.7z
        raise PipelineError(f"{dest}: Kaggle ships part of this data as 7z archives ({', '.join(sevens[:3])}), "
                            f"which pipeline does not unpack; in {dest} run `7z x FILE.tar.7z && tar xf FILE.tar` "
                            f"for each (p7zip), then run again")
    if not has_data(dest, comp):
        raise PipelineError(f"{dest}: the downloaded data has no {', '.join(needed(comp))}; fix `layout` or `submission` in "
                            f"{comp.folder / 'competition.py'} to match what Kaggle ships")
    return dest


def extract(archive: Path, dest: Path) -> tuple[int, int]:
    """Extract `archive` and the archives inside it into `dest`, replacing it only once all of it
    is out. Returns (files, bytes)."""
    work = dest.parent / f".{dest.name}.extracting"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        _unzip(archive, work)
        # Kaggle often ships train.zip, test.zip and sample_submission.csv.zip inside the archive
        for _ in range(3):
            inner = sorted(work.rglob("*.zip"))
            for z in inner:
                _unzip(z, z.parent)
                z.unlink()
            if not inner:
                break
        old = dest.parent / f".{dest.name}.old"
        if dest.exists():
            shutil.rmtree(old, ignore_errors=True)
            dest.rename(old)
        work.rename(dest)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    files = [p for p in dest.rglob("*") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


def _unzip(archive: Path, into: Path) -> None:
    """Every entry checked before any is written: none may be absolute, climb out with '..', or be a link."""
    try:
        with zipfile.ZipFile(archive) as z:
            for info in z.infolist():
                parts = PurePosixPath(info.filename.replace("\\", "/")).parts
                if (info.filename.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0])
                        or stat.S_ISLNK(info.external_attr >> 16)):
                    raise PipelineError(f"{archive}: entry {info.filename!r} would land outside {into}; refused, "
                                        f"nothing extracted (delete the archive and download again)")
            need, free = sum(i.file_size for i in z.infolist()), shutil.disk_usage(into).free
            if need > free:
                raise PipelineError(f"{archive}: needs {need / 1e6:.0f} MB to extract, {free / 1e6:.0f} MB free "
                                    f"on that disk; free some space and run again")
            z.extractall(into)
    except (zipfile.BadZipFile, zlib.error, EOFError) as e:
        archive.unlink()  # keeping it would only make the next run skip the download and fail again
        raise PipelineError(f"{archive}: not a valid zip archive ({e}); deleted it, nothing extracted: "
                            f"run again to download it afresh") from None
