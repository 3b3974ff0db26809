"""Do a fold's images have look-alikes among the other folds' that a nearest-neighbour vote could
use (issue 17)? Plant-seedlings photographs each plant several times as it grows, so a
validation image may have a sibling in training that the classifier's own features blur with
its class. Embeds every training image (pooled features, the recipe's TTA views averaged) with a
finished run's fold weights, or with the ImageNet weights alone (`--imagenet`: instance-level
features, not tuned to the classes), and prints the 1-nearest-neighbour accuracy on the fold,
then (fold weights) the fold's score when the run's OOF probabilities are blended with a vote of
the k nearest (a softmax of the cosine similarities over 0.05).

    cd WORKDIR && PIPELINE_DATA=../shared/datasets python benchmarks/neighbours.py plant-seedlings --run RUN --fold 0 [--imagenet]
"""
from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
import torch

from pipeline.models import create_model, normalization
from pipeline.predict import load_checkpoint
from pipeline.run import read_folds, start
from pipeline.transforms import to_input, tta_views


@torch.inference_mode()
def embed(model, images, views: int, dev, batch: int = 64) -> np.ndarray:
    """Pooled features (the classifier's input) of every image, averaged over `views` TTA views, unit length."""
    mean, std = normalization(model)
    out = []
    for i in range(0, len(images), batch):
        x = to_input(torch.from_numpy(images[i:i + batch]), mean, std, dev.device, dev.channels_last)
        out.append(sum(model.forward_head(model.forward_features(v), pre_logits=True) for v in tta_views(x, views))
                   .float().cpu().numpy())
    f = np.concatenate(out)
    return f / np.linalg.norm(f, axis=1, keepdims=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("competition")
    ap.add_argument("--run", required=True)
    ap.add_argument("--fold", type=int, default=0)
    ap.add_argument("--imagenet", action="store_true", help="the ImageNet weights, not the fold's")
    args = ap.parse_args()
    r = start(args.competition, run=args.run, log=lambda *a: None)
    folds, size = read_folds(r), r.recipe.phases[-1].size
    if args.imagenet:
        model, views = create_model(r.recipe.arch, len(r.comp.classes), r.recipe.weights).eval(), 1
        r.dev.place(model)
    else:
        model, _ = load_checkpoint(r.fold_dir(args.fold) / "last.pt", r.dev)
        views = r.recipe.tta
    feats, y = embed(model, r.train_images[size][:], views, r.dev), r.targets
    va, tr = np.flatnonzero(folds == args.fold), np.flatnonzero(folds != args.fold)
    sim = feats[va] @ feats[tr].T
    order = np.argsort(-sim, axis=1)
    print(f"fold {args.fold}, {'ImageNet' if args.imagenet else 'fold'} features: 1-NN accuracy "
          f"{(y[tr][order[:, 0]] == y[va]).mean():.4f}")
    if args.imagenet:
        return
    oof = pd.read_parquet(r.run_dir / "oof_predictions.parquet").set_index("id")
    probs = oof.loc[r.train["id"].to_numpy()[va], r.comp.classes].to_numpy()
    rows = np.arange(len(va))[:, None]
    for k in (1, 5, 10, 20):
        near = order[:, :k]
        vote = np.zeros_like(probs)
        np.add.at(vote, (np.repeat(rows, k, 1), y[tr][near]), np.exp(sim[rows, near] / 0.05))
        vote /= vote.sum(1, keepdims=True)
        blends = [((1 - w) * probs + w * vote).argmax(1) == y[va] for w in (0, 0.25, 0.5, 0.75, 1)]
        print(f"  k={k:2d}: the run's probabilities blended with the vote at 0, 0.25, 0.5, 0.75, 1: "
              + ", ".join(f"{b.mean():.4f}" for b in blends))


if __name__ == "__main__":
    main()
