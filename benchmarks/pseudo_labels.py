"""Pseudo-labelling the test images (issue 17, measured and not kept): a finished run's fold,
from its snapshot at the end of the phase its SWA round continues, trains that round again with
the test images its model labels (top class, at or above --threshold) added to the fold's
training images, then scores the round's last weights and their SWA average on the fold as the
run's predict stage does (4 views). With --threshold 1 (no test image passes: label smoothing keeps every top probability under 1) it retrains the
round exactly as the run did, and scores what the run scored: the check that the two compare.
The recipe is the competition's default one (`cpu` on a CPU), as `pipeline run` without
--recipe or overrides resolves it: the run must have been made with it.

    cd WORKDIR && PIPELINE_DATA=../shared/datasets python benchmarks/pseudo_labels.py plant-seedlings \
        --run RUN --fold 0 --threshold 0.9      # --threshold 0: every test image
"""
from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from pipeline.averages import WeightAverage
from pipeline.checkpoints import snapshot_name
from pipeline.predict import load_checkpoint, predict_views
from pipeline.recipe import averaging_points
from pipeline.run import fold_data, read_folds, start
from pipeline.trainer import Progress, run_epoch, setup_phase


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("competition")
    ap.add_argument("--run", required=True, help="a finished run whose recipe ends in an SWA round")
    ap.add_argument("--fold", type=int, default=0)
    ap.add_argument("--threshold", type=float, default=0.9, help="least top-class probability of a test image kept")
    args = ap.parse_args()
    r = start(args.competition, run=args.run, log=lambda *a: None)
    rc, pi = r.recipe, len(r.recipe.phases) - 1
    if not rc.phases[pi].swa:
        raise SystemExit(f"{args.run}: the recipe's last phase is not an SWA round")
    before, size = rc.phases[pi - 1], rc.phases[pi].size
    model, _ = load_checkpoint(r.fold_dir(args.fold) / "snapshots" / snapshot_name(pi - 1, before.epochs - 1), r.dev)
    t0 = time.time()
    r.test_images.prepare([size])
    probs, _ = predict_views(model, r.test_images[size], rc.tta, r.dev, rc.batch_size * 2, desc="pseudo-label")
    kept = np.flatnonzero(probs.max(1) >= args.threshold)
    print(f"{len(kept)} of {len(probs)} test images at >= {args.threshold} ({time.time() - t0:.0f} s)")

    data = fold_data(r, read_folds(r), args.fold)
    n = len(data.labels)
    data = replace(data, images={size: np.concatenate([data.images[size][:], r.test_images[size][kept]])},
                   labels=np.concatenate([data.labels, probs[kept].argmax(1).astype(data.labels.dtype)]),
                   train_idx=np.concatenate([data.train_idx, n + np.arange(len(kept))]))
    setup = setup_phase(model, rc, pi, data, dev=r.dev, symmetry=r.comp.symmetry)
    swa, progress = WeightAverage(model), Progress("pseudo")
    for epoch in range(setup.phase.epochs):
        run_epoch(setup, epoch, None, r.comp.metric, progress, print)
        if epoch + 1 in averaging_points(setup.phase):
            swa.update()
    with tempfile.TemporaryDirectory() as out:
        swa.finish(rc, data, r.comp.metric, Path(out), r.dev, r.comp.symmetry, print)
        averaged, _ = load_checkpoint(Path(out) / swa.file, r.dev)
    valid = data.images[size][data.valid_idx]
    last, last_1 = predict_views(model.eval(), valid, rc.tta, r.dev, rc.batch_size * 2)
    avg, _ = predict_views(averaged, valid, rc.tta, r.dev, rc.batch_size * 2)
    y = data.labels[data.valid_idx]
    score = lambda p: r.comp.metric(y, p / p.sum(1, keepdims=True))
    print(f"fold {args.fold}, {len(kept)} pseudo-labelled: last 1 view {score(last_1):.4f}, last {rc.tta} views "
          f"{score(last):.4f}, SWA {score(avg):.4f}, last + SWA {score(last + avg):.4f} ({time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()
