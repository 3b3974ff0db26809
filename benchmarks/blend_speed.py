"""How long `pipeline blend` takes on 10 runs of 100k+ OOF rows each (issue 29's target: under a
minute on this 2-core CPU), by method.

    PIPELINE_DATA=../shared/datasets python benchmarks/blend_speed.py WORKDIR NET_RUN TREES_RUN

WORKDIR holds two finished Rossmann runs trained on every time fold (114,691 OOF rows over folds
0-2), e.g. `pipeline run rossmann-store-sales --train-folds all` and the same with `--recipe
trees`. The 10 runs are those two and four copies of each with noise added to their OOF and
test predictions (N(0, 0.03) in log1p units): this measures time, not what a blend of such copies
is worth. They are written beside the real runs (bench-0 ... bench-9) in a copy of WORKDIR's
data/runs/rossmann-store-sales, so WORKDIR's own files and registry stay as they were."""
from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.blending.blend import blend
from pipeline.core.workdir import Workdir

COMPETITION = "rossmann-store-sales"


def main() -> None:
    source, real = Path(sys.argv[1]), sys.argv[2:4]
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        runs = Path(tmp) / "data" / "runs" / COMPETITION
        names = []
        for i in range(10):
            name, base = f"bench-{i}", source / "data" / "runs" / COMPETITION / real[i % 2]
            shutil.copytree(base, runs / name, ignore=shutil.ignore_patterns("fold[0-9]*", "diagnostics", "run.lock"))
            if i >= 2:
                for f in ("oof_predictions.parquet", "test_predictions.parquet"):
                    df = pd.read_parquet(runs / name / f)
                    df["prediction"] += rng.normal(0, 0.03, len(df))
                    df.to_parquet(runs / name / f)
            names.append(name)
        rows = len(pd.read_parquet(runs / names[0] / "oof_predictions.parquet"))
        print(f"10 runs of {rows:,} OOF rows each (3 time folds)\n\n| method | seconds (wall) |\n|---|---|")
        for method in ("select", "mean", "stack"):
            t0 = time.perf_counter()
            blend(COMPETITION, names, method=method, run=f"b-{method}", workdir=Workdir(Path(tmp)), log=lambda *a: None)
            print(f"| {method} | {time.perf_counter() - t0:.1f} |", flush=True)


if __name__ == "__main__":
    main()
