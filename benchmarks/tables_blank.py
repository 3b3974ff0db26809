"""The recipe's network on Rossmann's fold 2, trained as `pipeline run rossmann-store-sales`
trains it (the same rows, encoding, seed, recipe and `fit`), once as is and once for each group of
columns given with their codes set to 0, the row of a value training never saw: the column then
tells the network nothing. What a column costs or buys the network (tables_lightgbm.py --drop is
the trees' counterpart).

    PIPELINE_DATA=../shared/datasets python benchmarks/tables_blank.py none DateDayofyear,DateWeek

Each argument: "none", or categorical columns joined by commas. Prints each epoch's validation
RMSPE per argument; about 2-3 minutes each on a 2-core CPU. One seed each: a difference of a few
thousandths is within what a second seed might move. Record results in RESULTS.md."""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from pipeline.core.device import Device
from pipeline.tables.inputs import TableInputs
from pipeline.training.folds import FoldData
from pipeline.training.trainer import fit
from rossmann_fold import rossmann_fold


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("blanks", nargs="+", help='"none", or categorical columns joined by commas')
    args = ap.parse_args()
    fold = rossmann_fold()
    enc, task, recipe = fold.inputs.encoding, fold.comp.task, fold.comp.recipes["cpu"]
    labels = task.encode(pd.Series(fold.sales))
    print("| codes blanked | RMSPE after each epoch | seconds |\n|---|---|---|")
    for blank in args.blanks:
        columns = [] if blank == "none" else blank.split(",")
        x = fold.inputs.x.copy()
        for c in columns:
            x[:, enc.categorical.index(c)] = 0
        data = FoldData(inputs=TableInputs(x, encoding=enc), labels=labels, train_idx=fold.train_idx,
                        valid_idx=fold.valid_idx, task=task)
        torch.manual_seed(recipe.seed)  # as the train stage's fresh_model
        model = fold.source.model(recipe, 1, data.inputs)
        t0 = time.time()
        with tempfile.TemporaryDirectory() as out:
            history = fit(model, recipe, data, fold.comp.metric, Path(out), key="blank", dev=Device.pick("cpu"),
                          log=lambda *a: None)
        print(f"| {', '.join(columns) or 'none'} | {', '.join(f'{v:.4f}' for v in history['rmspe'])} | "
              f"{time.time() - t0:.0f} |", flush=True)


if __name__ == "__main__":
    main()
