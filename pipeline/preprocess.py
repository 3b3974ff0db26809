"""Preprocessing a competition names in one line (`preprocess = green_plants`): a function from
an RGB uint8 image, as decoded at its full size, to the RGB uint8 image the model sees. It runs
once per image when the image cache is built, so training, validation, prediction and `pipeline
check` all see the same images, and its name and source are part of the cache's file names: an
edited function gives new files. A competition may define its own function in its
competition.py (decoding then runs in the main process: worker processes cannot import it)."""
from __future__ import annotations

import hashlib
import inspect
from typing import Callable

import cv2
import numpy as np

# Green in OpenCV's HSV (hue 0-179): yellow-green to blue-green, saturated, not in shadow. Chosen
# on plant-seedlings' photos, where it keeps thin grass blades and drops soil, stones and the ruler
GREEN_LOW, GREEN_HIGH = (25, 40, 30), (95, 255, 255)


def green_mask(img: np.ndarray) -> np.ndarray:
    """0/1 mask of the green pixels of an RGB image, small gaps within a plant closed (a kernel
    that grows with the image: about a thirtieth of its short side)."""
    mask = cv2.inRange(cv2.cvtColor(img, cv2.COLOR_RGB2HSV), GREEN_LOW, GREEN_HIGH)
    side = max(3, round(min(img.shape[:2]) / 30) | 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (side, side))
    return (cv2.morphologyEx(mask, cv2.MORPH_CLOSE, kernel) > 0).astype(np.uint8)


def green_plants(img: np.ndarray) -> np.ndarray:
    """The plants alone on black: soil, gravel and rulers removed, so the model looks at leaf
    shapes (photos of seedlings from above, e.g. plant-seedlings)."""
    return img * green_mask(img)[..., None]


def tag(fn: Callable | None) -> str:
    """A short name for `fn` in cache file names: its name and a hash of its source."""
    if fn is None:
        return ""
    try:
        source = inspect.getsource(fn)
    except (OSError, TypeError):  # a builtin or a lambda typed at a prompt: its name alone
        source = ""
    return f"{getattr(fn, '__name__', 'preprocess')}-{hashlib.sha1(source.encode()).hexdigest()[:8]}"


def importable(fn: Callable | None) -> bool:
    """Whether worker processes can import `fn`: not when it lives in a competition.py, which is
    loaded from its file rather than imported."""
    return fn is None or not getattr(fn, "__module__", "").startswith("competitions.")
