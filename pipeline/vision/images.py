"""Decode each image once and keep it resized for every size a recipe uses, so an epoch is spent
in the model rather than in PNG/JPEG decoding.

With a cache folder, each size is one .npy file on disk, read a few rows at a time as batches
ask for them (`Rows`), so RAM is bounded by batches, not by the data set (100k images at 384 px
are 44 GB a size). A build decodes chunks of images in worker processes and
writes them into a partial file as they come, recording how far it got, so a build killed half
way resumes there. A finished file is trusted only if its shape and size are right; a truncated
one is rebuilt. Without a cache folder (tests, small data) the arrays live in memory.

Every unreadable image is reported at once, in one error naming how many, the first few, and
the file listing all of them with why; or, for test images (whose rows a submission needs), each
kept as a placeholder row of zeros, listed (`unreadable`) so that nothing reads it as an image,
and said once with the listing file (`on_unreadable`). A JPEG cut short (a broken download or
copy) counts as unreadable, since libjpeg would fill its missing rows with grey and train on
them; a competition may keep such images instead (`truncated_images = "keep"`: a notice names them). What the C
decoders print on the way never reaches the terminal (`decode.py`). Grayscale, 16-bit, CMYK and
alpha images decode to 8-bit RGB (alpha dropped, as PIL's convert("RGB") does), and EXIF-rotated
JPEGs upright.
"""
from __future__ import annotations

import multiprocessing
import os
import shutil
import sys
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from pipeline import PipelineError
from pipeline.core.files import atomic_path, files_fingerprint, locked, read_json, write_json
from pipeline.core.progress import bar as progress_bar
from pipeline.preprocess import importable, tag
from pipeline.vision.decode import TRUNCATED, load_rgb

cv2.setNumThreads(1)  # resizing small images: threads only contend with torch's

CHUNK = 256  # images decoded per task: what RAM holds at once per worker, and the resume step

Unreadable = tuple[int, str, str]  # an image that could not be read: (position, path, why)


# How an image of any shape becomes the square a model takes, named by a competition (`resize`):
#   "squash": the whole image, stretched to a square (images that are square already, or whose
#             proportions don't matter: seedlings from above, satellite tiles)
#   "crop":   the central square, shorter side kept whole: proportions kept, the long side's ends
#             lost (photos, as ImageNet models were trained and are evaluated)
#   "pad":    the whole image, proportions kept, the short side filled out with black
RESIZE = ("squash", "crop", "pad")


def resize(img: np.ndarray, size: int, policy: str = "squash") -> np.ndarray:
    """`img` as a size x size square, by `policy` (RESIZE)."""
    h, w = img.shape[:2]
    if policy == "crop" and h != w:
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        img, h, w = img[top:top + side, left:left + side], side, side
    if policy == "pad" and h != w:
        scale = size / max(h, w)
        inner = _scaled(img, max(1, round(h * scale)), max(1, round(w * scale)))
        top, left = (size - inner.shape[0]) // 2, (size - inner.shape[1]) // 2
        return cv2.copyMakeBorder(inner, top, size - inner.shape[0] - top, left, size - inner.shape[1] - left,
                                  cv2.BORDER_CONSTANT, value=(0, 0, 0))
    return _scaled(img, size, size)


def _scaled(img: np.ndarray, h: int, w: int) -> np.ndarray:
    if img.shape[:2] == (h, w):
        return img
    shrinking = img.shape[0] > h or img.shape[1] > w
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC)


def decode_chunk(paths: list[Path], sizes: list[int], policy: str = "squash", preprocess: Callable | None = None,
                 truncated: str = "refuse") -> tuple[dict[int, np.ndarray], list[Unreadable], list[str]]:
    """Each image of `paths`, `preprocess`ed at its own size, at every size (zeros where
    unreadable), the (position in `paths`, path, reason) of those that could not be read, and the
    paths of truncated JPEGs kept (`truncated` "keep"). Runs in a worker process."""
    out = {s: np.zeros((len(paths), s, s, 3), np.uint8) for s in sizes}
    bad, kept = [], []
    for i, p in enumerate(paths):
        img, problem = load_rgb(p, truncated)
        if img is None:
            bad.append((i, str(p), problem))
            continue
        if problem:
            kept.append(str(p))
        if preprocess is not None:
            img = preprocess(img)
        for s in sizes:
            out[s][i] = resize(img, s, policy)
    return out, bad, kept


class ImageCache:
    """Resized copies of one list of images: `cache[size]` is a uint8 array [N, size, size, 3],
    each image `preprocess`ed (preprocess.py) and made square by `resize` (RESIZE): in memory, or
    with a cache folder, `Rows` read from disk as indexed. JPEGs cut short are refused as
    unreadable, or kept as decoded with a notice (`truncated` "keep").
    An unreadable image is an error (all of them in one), or, given `on_unreadable` (test images,
    which a submission cannot leave out), a placeholder row of zeros: `unreadable(size)` lists
    them, and `on_unreadable(them, listing file)` hears of them once, when a size is built or opened."""

    def __init__(self, paths: list[Path], cache_dir: Path | None = None, progress: str = "decode",
                 key: str | None = None, workers: int | None = None, resize: str = "squash",
                 preprocess: Callable | None = None, truncated: str = "refuse",
                 on_unreadable: Callable[[list[Unreadable], Path], None] | None = None):
        if resize not in RESIZE:
            raise PipelineError(f"resize {resize!r}; use one of {', '.join(RESIZE)}")
        if truncated not in TRUNCATED:
            raise PipelineError(f"truncated_images {truncated!r}; use one of {', '.join(TRUNCATED)}")
        self.paths, self.resize, self.preprocess = [Path(p) for p in paths], resize, preprocess
        self.truncated = truncated
        self.cache_dir = cache_dir
        self.progress = progress
        # names the disk copies: a changed, added or removed file gives new ones
        self._key = key or (files_fingerprint(self.paths) if cache_dir else None)
        self.workers = (workers or min(8, os.cpu_count() or 1)) if importable(preprocess) else 1
        self.listings = cache_dir  # where the lists of unreadable and kept images go (None: the current folder)
        self._arrays: dict[int, np.ndarray] = {}
        self.on_unreadable = on_unreadable
        self._placeholders: dict[int, list[Unreadable]] = {}  # per size: the rows that hold no image
        self._said = False

    def __len__(self) -> int:
        return len(self.paths)

    def subset(self, positions, progress: str = "decode") -> "ImageCache":
        """The images at `positions`, decoded in memory as the same cache would (resize, preprocess,
        truncated JPEGs) without decoding the rest or writing cache files: a look at a few of them.
        Unreadable ones among them are listed where this cache lists its own."""
        part = ImageCache([self.paths[i] for i in positions], None, progress, resize=self.resize,
                          preprocess=self.preprocess, truncated=self.truncated)
        part.listings = self.listings
        return part

    def __getitem__(self, size: int) -> np.ndarray:
        if size not in self._arrays:
            self.prepare([size])
        return self._arrays[size]

    def unreadable(self, size: int) -> list[Unreadable]:
        """The images that could not be read, whose rows at `size` are placeholders (zeros), not
        images: none unless the cache keeps them (`on_unreadable`)."""
        self.prepare([size])
        return self._placeholders.get(size, [])

    def _file(self, size: int, suffix: str = ".npy") -> Path:
        policy = "" if self.resize == "squash" else f"-{self.resize}"  # (squash: the names caches always had)
        made = f"-{tag(self.preprocess)}" if self.preprocess else ""
        # kept truncated images: a cache of their own, so going back to "refuse" refuses them again
        kept = "-truncated-kept" if self.truncated == "keep" else ""
        return self.cache_dir / f"{self._key}-{size}px{policy}{made}{kept}{suffix}"

    def prepare(self, sizes: list[int]) -> None:
        """Open each size from disk, or decode every image once and resize it to all missing sizes."""
        missing = [s for s in dict.fromkeys(sizes) if s not in self._arrays and not self._open(s)]
        if not missing:
            return
        if self.cache_dir is None:
            arrays = {s: np.empty((len(self), s, s, 3), np.uint8) for s in missing}
            bad = self._build({s: arrays[s].__setitem__ for s in missing}, 0)
            self._arrays.update(arrays)
            self._kept_placeholders(missing, bad)
            return
        # one builder at a time (the ranks of a run, two runs on one cache); the others wait, then open
        with locked(self.cache_dir / f"{self._key}.lock"):
            missing = [s for s in missing if not self._open(s)]
            if missing:
                self._build_files(missing)

    def _build_files(self, missing: list[int]) -> None:
        files, start, earlier = self._partial(missing)
        try:
            bad = self._build({s: f.write for s, f in files.items()}, start, earlier)
        except PipelineError:  # unreadable images: fixing them changes the key, so nothing here is reused
            for s in missing:
                self._file(s, ".partial.npy").unlink(missing_ok=True)
                self._file(s, ".partial.json").unlink(missing_ok=True)
            raise
        finally:
            for f in files.values():
                f.close()
        for s in missing:
            # the placeholders' record before the file it describes: a finished file is never without it
            if bad:
                write_json(self._file(s, ".unreadable.json"), bad)
            else:
                self._file(s, ".unreadable.json").unlink(missing_ok=True)
            os.replace(self._file(s, ".partial.npy"), self._file(s))
            self._file(s, ".partial.json").unlink(missing_ok=True)
            self._open(s)

    def _open(self, size: int) -> bool:
        """Open a finished cache file if it is whole: the right shape, and as long as its header says."""
        if self.cache_dir is None or not self._file(size).exists():
            return False
        try:
            arr = np.load(self._file(size), mmap_mode="r")  # reads the header; checks the length
        except ValueError:  # shorter than its header says: a copy cut off, a full disk
            arr = None
        if arr is None or arr.shape != (len(self), size, size, 3) or arr.dtype != np.uint8:
            print(f"{self._file(size)}: cut off or not this data's; decoding the images again", file=sys.stderr)
            self._file(size).unlink()
            return False
        bad = [tuple(b) for b in read_json(self._file(size, ".unreadable.json"), [])]
        if bad and self.on_unreadable is None:  # (built for test images, opened as training images)
            raise PipelineError(self._unreadable([(p, why) for _, p, why in bad]))
        self._arrays[size] = Rows(self._file(size), arr.shape, arr.offset)
        self._kept_placeholders([size], bad)
        return True

    def _kept_placeholders(self, sizes: list[int], bad: list[Unreadable]) -> None:
        """Remember which rows at `sizes` hold no image, and say so the first time there are any."""
        for s in sizes:
            self._placeholders[s] = bad
        if bad and not self._said:
            self._said = True
            self.on_unreadable(bad, self._listing("unreadable", [f"{p}\t{why}" for _, p, why in bad]))

    def _partial(self, sizes: list[int]) -> tuple[dict[int, "_RowWriter"], int, list[Unreadable]]:
        """Writers into the partial files of an interrupted build, how many images all of them
        hold and the unreadable ones among those (kept as placeholders); or into new files.
        Written with plain writes, not a writable mapping, so a build's memory is its chunks in
        flight, not the pages it wrote."""
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        files, done, bad = {}, [], []
        for s in sizes:
            f, shape = self._file(s, ".partial.npy"), (len(self), s, s, 3)
            record = read_json(self._file(s, ".partial.json"), {}) or {}
            try:
                resumable = bool(record) and np.load(f, mmap_mode="r").shape == shape
            except (OSError, ValueError):
                resumable = False
            if not resumable:
                record = {}
                # the header, and the file at its full length (sparse until written)
                np.lib.format.open_memmap(f, mode="w+", dtype=np.uint8, shape=shape).flush()
            files[s] = _RowWriter(f, s)
            done.append(record.get("done", 0))
            bad.append(record.get("unreadable", []))
        start = min(done)
        self._room(sizes, start)
        return files, start, [tuple(b) for b in bad[0] if b[0] < start]

    def _room(self, sizes: list[int], start: int) -> None:
        """Refuse a build the disk can't hold, before decoding for an hour: the files are sparse
        until written, so a full disk would otherwise show up halfway."""
        needed = sum((len(self) - start) * s * s * 3 for s in sizes)
        free = shutil.disk_usage(self.cache_dir).free
        if needed > free:
            raise PipelineError(f"{self._file(sizes[0], '.partial.npy')}: the decoded images need {needed / 2**20:,.0f} MiB "
                                f"more at {', '.join(f'{s}px' for s in sizes)}, and {self.cache_dir} has "
                                f"{free / 2**20:,.0f} MiB free; free some space and run again")

    def _build(self, put: dict, start: int, earlier: list[Unreadable] = ()) -> list[Unreadable]:
        """Decode images start.. and `put[size](slice, block)` them, chunk by chunk in worker
        processes; on disk, after each chunk, how far the files go is recorded (and, when kept as
        placeholders, the unreadable images so far). All unreadable images are reported at the
        end, in one error, or returned (with those `earlier` than start) when the cache keeps them;
        truncated JPEGs kept, in one notice."""
        sizes, n = sorted(put), len(self)
        chunks = [(i, self.paths[i:i + CHUNK]) for i in range(start, n, CHUNK)]
        bad: list[Unreadable] = list(earlier)
        kept: list[str] = []
        bar = progress_bar(total=n, initial=start, desc=f"{self.progress} {sizes}px", unit="images")
        for i, (out, failed, kept_here) in self._decoded(chunks, sizes):
            k = len(out[sizes[0]])
            for s in sizes:
                put[s](slice(i, i + k), out[s])
            bad += [(i + at, p, why) for at, p, why in failed]
            kept += kept_here
            if self.cache_dir is not None and (self.on_unreadable or not bad):
                for s in sizes:
                    write_json(self._file(s, ".partial.json"), {"done": i + k, "unreadable": bad})
            bar.update(k)
        bar.close()
        if bad and self.on_unreadable is None:
            raise PipelineError(self._unreadable([(p, why) for _, p, why in bad]))
        if kept:
            print(self._kept(kept), file=sys.stderr)
        return bad

    def _decoded(self, chunks: list[tuple[int, list[Path]]], sizes: list[int]):
        """(first position, decode_chunk's result) per chunk, in order; at most two chunks a worker
        in flight, so memory stays bounded however many images there are."""
        if self.workers <= 1 or len(chunks) <= 1:
            for i, paths in chunks:
                yield i, decode_chunk(paths, sizes, self.resize, self.preprocess, self.truncated)
            return
        # forkserver: workers need no copy of a parent that has torch's threads running. Each worker
        # still imports the main script, as under spawn: `pipeline`'s own is light; a script of
        # one's own should import torch late (benchmarks/cache_scale.py does)
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([__name__])
        with ProcessPoolExecutor(self.workers, mp_context=context) as pool:
            pending: deque = deque()
            todo = iter(chunks)
            for i, paths in todo:
                pending.append((i, pool.submit(decode_chunk, paths, sizes, self.resize, self.preprocess,
                                               self.truncated)))
                if len(pending) >= 2 * self.workers:
                    break
            while pending:
                i, future = pending.popleft()
                yield i, future.result()
                for j, paths in todo:
                    pending.append((j, pool.submit(decode_chunk, paths, sizes, self.resize, self.preprocess,
                                                   self.truncated)))
                    break

    def _unreadable(self, bad: list[tuple[str, str]]) -> str:
        """The one-line error for unreadable images, with the full list written to a file: a line
        each, path and reason (what the decoder said, "truncated", ...) separated by a tab."""
        where = self._listing("unreadable", [f"{p}\t{why}" for p, why in bad])
        first = ", ".join(p for p, _ in bad[:3]) + (", ..." if len(bad) > 3 else "")
        keep = ("; or, to train on JPEGs cut short as decoded (the missing part grey), set "
                "truncated_images = \"keep\" in the competition's competition.py"
                if any(why == "truncated" for _, why in bad) else "")
        return (f"{len(bad)} of {len(self)} images are not readable (corrupt, cut short or not images): {first}; "
                f"all of them are listed with the reason in {where}: replace or delete them and run again{keep}")

    def _kept(self, kept: list[str]) -> str:
        """The notice naming the truncated JPEGs kept, with the full list written to a file."""
        where = self._listing("truncated", kept)
        first = ", ".join(kept[:3]) + (", ..." if len(kept) > 3 else "")
        return (f"kept {len(kept)} of {len(self)} images that are JPEGs cut short, the missing part grey "
                f"(truncated_images = \"keep\"): {first}; all of them are listed in {where}")

    def listing(self, what: str) -> Path:
        """The file listing the images that are `what` ("unreadable", "truncated")."""
        return (self.listings or Path.cwd()) / f"{what}-{self._key or 'images'}.txt"

    def _listing(self, what: str, lines: list[str]) -> Path:
        where = self.listing(what)
        with atomic_path(where) as tmp:
            tmp.write_text("\n".join(lines) + "\n")
        return where


class _RowWriter:
    """Writes blocks of rows into an .npy file at their place (after the header)."""

    def __init__(self, path: Path, size: int):
        self.row = size * size * 3
        self.fh = open(path, "r+b")
        version = np.lib.format.read_magic(self.fh)
        (np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0)(self.fh)
        self.offset = self.fh.tell()

    def write(self, rows: slice, block: np.ndarray) -> None:
        self.fh.seek(self.offset + rows.start * self.row)
        self.fh.write(np.ascontiguousarray(block).tobytes())
        self.fh.flush()  # in the file (the OS's cache) before the record says so: a kill loses nothing

    def close(self) -> None:
        self.fh.close()


class Rows:
    """A finished cache file as a read-only array of images, read a few rows at a time with
    plain reads as they are indexed: the data passes through the operating system's page cache,
    never into this process's memory as a whole (a memory map would count every page an epoch
    touched as the process's own: 16 GB over one epoch of 80,000 images at 256 px). Indexing with
    an int, a slice or an array of positions gives numpy arrays."""

    dtype = np.dtype(np.uint8)

    def __init__(self, path: Path, shape: tuple[int, ...], offset: int):
        self.path, self.shape, self.offset = path, shape, offset
        self.row = int(np.prod(shape[1:]))
        self._fd = os.open(path, os.O_RDONLY)  # preadv: no shared position, safe in forked loader workers

    def __len__(self) -> int:
        return self.shape[0]

    def __getstate__(self):  # a loader worker started by spawn opens the file again
        return {"path": self.path, "shape": self.shape, "offset": self.offset}

    def __setstate__(self, state):
        self.__init__(**state)

    def __del__(self):
        if hasattr(self, "_fd"):
            os.close(self._fd)

    def _read(self, start: int, count: int) -> np.ndarray:
        out = np.empty((count, *self.shape[1:]), np.uint8)
        if count and os.preadv(self._fd, [out], self.offset + start * self.row) != out.nbytes:
            raise PipelineError(f"{self.path}: shorter than its header says (changed while in use?); "
                                f"delete it and run again")
        return out

    def __getitem__(self, index):
        if isinstance(index, (int, np.integer)):
            return self._read(range(len(self))[index], 1)[0]
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step == 1:
                return self._read(start, max(0, stop - start))
            index = np.arange(start, stop, step)
        index = np.arange(len(self))[np.asarray(index)]  # bounds, negatives and boolean masks as numpy has them
        out, at = np.empty((len(index), *self.shape[1:]), np.uint8), 0
        for run in np.split(index, np.flatnonzero(np.diff(index) != 1) + 1):  # consecutive rows: one read
            if len(run):
                out[at:at + len(run)] = self._read(int(run[0]), len(run))
                at += len(run)
        return out

    def __array__(self, dtype=None, copy=None):
        whole = self._read(0, len(self))
        return whole if dtype is None else whole.astype(dtype)
