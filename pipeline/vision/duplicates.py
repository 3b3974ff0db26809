"""Near-duplicate images by a perceptual hash of the decoded pixels: the same scan saved under
two ids, or once more re-encoded or a shade brighter, must not sit on both sides of a fold
(a validation image whose twin was trained on scores as if memorised: the CV is inflated).

Each image is shrunk, in grey, to a 9x8 and a 16x16 thumbnail by area averaging. The 9x8 one
gives a 64-bit difference hash (dHash): a bit for each pair of horizontal neighbours, set where
the right one is brighter. Re-encoding, brightness and small resizes barely move it; another
picture moves about half its bits. Hashes at most MAX_DISTANCE bits apart propose a pair; the
16x16 thumbnails confirm it, differing by at most CLOSE grey levels on average once each is
centred on its own mean brightness (64 bits alone pair up distinct images of simple things:
two handwritten 1s). Near duplicates of near duplicates are one group (connected components).
"""
from __future__ import annotations

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

MAX_DISTANCE = 4   # bits of 64 that may differ in a proposed pair: re-encoding moves 0-3
CLOSE = 2.0        # grey levels (0-255): mean absolute difference of a confirmed pair's thumbnails
                   # (a JPEG re-encoding: about 1; the closest two of sklearn's distinct digits: 3.5)
FLAT = 2.0         # grey levels between the 9x8 thumbnail's darkest and brightest cells: below it
                   # the hash's bits are noise, and a blank image carries nothing to leak
SIZE = 64          # the side images are compared at, whatever sizes the recipe trains at: at the
                   # recipe's smallest, runs at 128 and 160 px found different pairs near the
                   # thresholds, so their folds differed and they could not be compared or blended
THUMB = 16         # side of the thumbnail that confirms a pair
CHUNK = 64         # images hashed at once (64 at 512 px: 64 MB as floats), and hashes compared
                   # with all later ones at once (64 x 100,000 pairs: 50 MB)
PAIRS = 65536      # proposed pairs confirmed at once
_BYTE_BITS = np.array([bin(b).count("1") for b in range(256)], np.uint8)


def fingerprints(images: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For uint8 images [N, H, W, 3] (an ImageCache size, read CHUNK images at a time): each
    one's 64-bit dHash, its grey THUMB x THUMB thumbnail (uint8), and whether it is too flat to
    hash (FLAT)."""
    n = len(images)
    hashes, thumbs, flat = np.zeros(n, np.uint64), np.zeros((n, THUMB * THUMB), np.uint8), np.zeros(n, bool)
    weights = 1 << np.arange(63, -1, -1, dtype=np.uint64)
    for start in range(0, n, CHUNK):
        grey = np.asarray(images[start:start + CHUNK]).sum(-1, dtype=np.uint16).astype(np.float32) / 3
        h, w = grey.shape[1:]
        cells = _area(h, 8) @ grey @ _area(w, 9).T  # [n, 8, 9]: each cell the mean of the pixels it covers
        bits = (cells[:, :, 1:] > cells[:, :, :-1]).reshape(len(cells), 64)
        at = slice(start, start + len(cells))
        hashes[at] = bits.astype(np.uint64) @ weights
        flat[at] = np.ptp(cells, axis=(1, 2)) < FLAT
        thumbs[at] = np.rint(_area(h, THUMB) @ grey @ _area(w, THUMB).T).reshape(len(cells), -1)
    return hashes, thumbs, flat


def _area(n_in: int, n_out: int) -> np.ndarray:
    """[n_out, n_in] weights averaging n_in pixels into n_out cells by the share of each pixel a
    cell covers (as cv2's INTER_AREA shrinks): one matrix product shrinks a whole chunk."""
    edges = np.arange(n_out + 1) * n_in / n_out
    pixel = np.arange(n_in)
    covered = np.minimum(edges[1:, None], pixel + 1) - np.maximum(edges[:-1, None], pixel)
    return (np.clip(covered, 0, None) * n_out / n_in).astype(np.float32)


def popcount(x: np.ndarray) -> np.ndarray:
    """Set bits of each uint64 (numpy >= 2 counts them natively; before it, a byte table)."""
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(x)
    return _BYTE_BITS[x[..., None].view(np.uint8)].sum(-1)


def duplicate_groups(hashes: np.ndarray, thumbs: np.ndarray, skip: np.ndarray | None = None) -> np.ndarray:
    """Each image's group: the position of the first image of its group of near duplicates, its
    own position when it has none (nor when `skip`ped). Every pair of hashes is compared, CHUNK
    against all later ones as one XOR and popcount: 100,000 images are 5e9 pairs, 10-20 seconds
    (decoding them takes many minutes)."""
    n = len(hashes)
    keep = np.flatnonzero(~skip) if skip is not None else np.arange(n)
    h = hashes[keep]
    pairs = [np.zeros((0, 2), np.int64)]
    for start in range(0, len(h), CHUNK):
        i, j = np.nonzero(popcount(h[start:start + CHUNK, None] ^ h[None, start + 1:]) <= MAX_DISTANCE)
        i, j = keep[i + start], keep[j + start + 1]
        i, j = i[j > i], j[j > i]  # (the chunk's own rows are compared once, in the upper triangle)
        pairs += [np.stack([i, j], 1)[_close(thumbs, i, j)]]
    i, j = np.concatenate(pairs).T
    _, component = connected_components(coo_matrix((np.ones(len(i), np.int8), (i, j)), shape=(n, n)), directed=False)
    first = np.full(n, n)
    np.minimum.at(first, component, np.arange(n))
    return first[component]


def _close(thumbs: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Whether thumbnails i and j, each centred on its mean brightness, differ by at most CLOSE."""
    out = np.zeros(len(i), bool)
    for s in range(0, len(i), PAIRS):
        d = thumbs[i[s:s + PAIRS]].astype(np.float32) - thumbs[j[s:s + PAIRS]]
        out[s:s + PAIRS] = np.abs(d - d.mean(1, keepdims=True)).mean(1) <= CLOSE
    return out
