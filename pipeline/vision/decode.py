"""One image file to 8-bit RGB pixels, and what is wrong with it if it won't: any depth and
channel count as OpenCV reads them, EXIF orientation applied, a JPEG cut short found on its bytes
(the decoders fill its missing rows with grey rather than say), and whatever the C decoders print
kept off the terminal and returned as the file's reason. images.py decodes every image through it."""
from __future__ import annotations

import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

TRUNCATED = ("refuse", "keep")  # what becomes of a JPEG cut short: a competition's `truncated_images`


def read_rgb(path: Path, truncated: str = "refuse") -> np.ndarray | None:
    """RGB uint8 [H, W, 3], EXIF orientation applied; None when the file is not a readable image
    (a JPEG cut short included, unless `truncated` is "keep")."""
    return load_rgb(path, truncated)[0]


def load_rgb(path: Path, truncated: str = "refuse") -> tuple[np.ndarray | None, str]:
    """read_rgb's image and what is wrong with the file ("" if nothing): why it is unreadable (the
    image None), or "truncated" for a JPEG cut short that `truncated` "keep" kept as decoded."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:  # a folder, a dangling link, no permission
        return None, e.strerror or type(e).__name__
    if not data:
        return None, "empty file"
    cut = _cut_jpeg(data)
    if cut and truncated != "keep":
        return None, "truncated"
    if cut:  # an end marker where the file stops: libjpeg decodes what is there, as cv2.imread would
        data += b"\xff\xd9"
    try:  # any depth and channel count -> 8-bit BGR, as cv2.imread gives
        img, said = _quietly(cv2.imdecode, np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error as e:
        img, said = None, str(e)
    if img is None:
        return None, _last_word(said) or "not an image OpenCV reads"
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB), "truncated" if cut else ""


def _last_word(said: str) -> str:
    """The last line a decoder printed, less OpenCV's log prefix ("[ WARN:0@0.1] global grfmt_png.cpp:793 f ")."""
    lines = [line.strip() for line in said.splitlines() if line.strip()]
    return re.sub(r"^\[[^]]*\]\s*(global\s+)?\S+:\d+\s+\S+\s+", "", lines[-1]) if lines else ""


_STANDALONE = (0x01, *range(0xD0, 0xD8))  # JPEG markers with no length after them (TEM, RST0-7)


def _cut_jpeg(data: bytes) -> bool:
    """Whether `data` is a JPEG that stops before its end marker (FFD9). The segments before the
    first scan are stepped over by their lengths (an EXIF thumbnail's own FFD9 sits in one), then
    FFD9 is looked for after the scan starts: scan data escapes each FF byte as FF00, so no FFD9
    occurs in it. Whatever follows the end marker (zero padding, a camera's trailer) is allowed.
    Checked on the bytes because the decoders don't say: cv2.imread fills the missing rows with
    grey, and cv2.imdecode gives up on a cut file but decodes one padded with zeros."""
    if not data.startswith(b"\xff\xd8"):
        return False
    at = 2
    while at + 4 <= len(data):
        if data[at] != 0xFF:  # no marker where one belongs: malformed rather than cut; the decoder judges
            return False
        marker = data[at + 1]
        if marker == 0xDA:  # start of scan
            return data.find(b"\xff\xd9", at) < 0
        if marker == 0xD9:  # the end before any scan: the decoder judges
            return False
        at += 1 if marker == 0xFF else 2 if marker in _STANDALONE else 2 + int.from_bytes(data[at + 2:at + 4], "big")
    return True  # cut before the first scan


def _quietly(decode: Callable, *args):
    """decode(*args) and what it printed. libjpeg and libpng print their warnings and errors
    ("Premature end of JPEG file", "libpng warning: iCCP: known incorrect sRGB profile") with
    fprintf to file descriptor 2, which neither sys.stderr nor OpenCV's log level reaches
    (cv2.setLogLevel covers OpenCV's own log only), and decoding with PIL instead would change the
    cached pixels. So fd 2 points at a temporary file for the call and what landed there comes back
    (an unreadable image's reason). No other thread writes meanwhile: decoding runs in worker
    processes, or in a run's one thread before training starts (DataLoader workers are processes)."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no fd 2 at all (a daemon): nothing can be printed
        return decode(*args), ""
    sink = _sink()
    sink.seek(0)
    sink.truncate()
    os.dup2(sink.fileno(), 2)
    try:
        result = decode(*args)
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    sink.seek(0)
    return result, sink.read().decode(errors="replace")


_sinks: dict[int, object] = {}


def _sink():
    """This process's temporary file for what the decoders print, made once, not per image. By
    process id: a forked worker must not share its parent's file (and its offset)."""
    pid = os.getpid()
    if pid not in _sinks:
        _sinks[pid] = tempfile.TemporaryFile()
    return _sinks[pid]
