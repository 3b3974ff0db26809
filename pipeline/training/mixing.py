"""Mixup (Zhang et al., 2018) and CutMix (Yun et al., 2019): each training batch blended with a
shuffled copy of itself, and the loss shared between each image's label and its partner's in
the blend's proportions. Mixup blends whole images; CutMix pastes a box of the partner over
the image, its area the partner's share. With both on, each batch takes one of them at even odds
(timm's Mixup does the same). Seeded per epoch, as the batches' order and augmentation are, so a
resumed run mixes exactly as it would have."""
from __future__ import annotations

import numpy as np
import torch


class Mixer:
    def __init__(self, mixup: float, cutmix: float, seed: int | list[int]):
        """`mixup`, `cutmix`: the alpha of each one's Beta(alpha, alpha) share; 0: off."""
        self.mixup, self.cutmix = mixup, cutmix
        self.rng = np.random.default_rng(seed)

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, float, torch.Tensor]:
        """(the mixed batch, each image's own share, the positions of the partners)."""
        n, (h, w) = len(x), x.shape[-2:]
        partner = torch.from_numpy(self.rng.permutation(n)).to(x.device)
        cut = self.cutmix > 0 and (self.mixup == 0 or self.rng.random() < 0.5)
        own = float(self.rng.beta(*(2 * [self.cutmix if cut else self.mixup])))
        if not cut:
            return own * x + (1 - own) * x[partner], own, partner
        # a box of the partner's with (1 - own) of the area, centred anywhere, cut at the edges
        side = np.sqrt(1 - own)
        cy, cx = self.rng.integers(h), self.rng.integers(w)
        y0, y1 = np.clip([cy - int(h * side) // 2, cy + int(h * side) // 2], 0, h)
        x0, x1 = np.clip([cx - int(w * side) // 2, cx + int(w * side) // 2], 0, w)
        x = x.clone()
        x[..., y0:y1, x0:x1] = x[partner][..., y0:y1, x0:x1]
        return x, 1 - (y1 - y0) * (x1 - x0) / (h * w), partner  # (the share as cut, after the edges)
