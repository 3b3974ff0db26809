"""How far blending finished runs would go (issue 17): their OOF predictions on one fold, each
run alone, the best pair, the average of all of them, and how many runs get each of the blend's
errors right. Errors that every run shares are beyond what more models of the same kind buy.

    python benchmarks/blend_runs.py --fold 0 data/runs/plant-seedlings/RUN_A data/runs/plant-seedlings/RUN_B ...
"""
from __future__ import annotations

import argparse
import itertools
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd


def read(run: Path, fold: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(probabilities, labels) of `run`'s OOF predictions on `fold`, in id order, and the classes."""
    df = pd.read_parquet(run / "oof_predictions.parquet")
    df = df[df["fold"] == fold].sort_values("id")
    classes = list(df.columns[3:])
    return df[classes].to_numpy(), df["label"].map(classes.index).to_numpy(), classes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--fold", type=int, default=0)
    args = ap.parse_args()
    probs, y, classes = {}, None, None
    for run in args.runs:
        probs[run.name], labels, classes = read(run, args.fold)
        if y is not None and not np.array_equal(labels, y):
            raise SystemExit(f"{run}: fold {args.fold} holds other images than {args.runs[0]}'s")
        y = labels
    acc = lambda p: float((p.argmax(1) == y).mean())
    print(f"fold {args.fold}: {len(y)} images; one image is {100 / len(y):.2f} points")
    for name, p in probs.items():
        print(f"  {acc(p):.4f}  {name}")
    pairs = sorted(((acc(probs[a] + probs[b]), a, b) for a, b in itertools.combinations(probs, 2)), reverse=True)
    for s, a, b in pairs[:3]:
        print(f"  {s:.4f}  {a} + {b}")
    blend = sum(probs.values())
    wrong = np.flatnonzero(blend.argmax(1) != y)
    print(f"  {acc(blend):.4f}  all {len(probs)} averaged: {len(wrong)} errors")
    right = Counter(sum(int(p[i].argmax() == y[i]) for p in probs.values()) for i in wrong)
    print("  of the blend's errors, how many runs get each right: "
          + ", ".join(f"{n} runs: {right[n]}" for n in sorted(right)))
    pairs = Counter((classes[y[i]], classes[blend[i].argmax()]) for i in wrong)
    print("  the blend's confusions: " + "; ".join(f"{a} as {b} {n}" for (a, b), n in pairs.most_common(4)))


if __name__ == "__main__":
    main()
