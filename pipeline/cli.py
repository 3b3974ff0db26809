"""The command line: `pipeline run <competition>`, `pipeline snapshots <competition>`, `pipeline list`,
`pipeline download <competition>`."""
from __future__ import annotations

import argparse
import sys

from . import PipelineError


def _folds(text: str) -> tuple[int, ...] | str:
    return "all" if text == "all" else tuple(int(k) for k in text.split(","))


def _snapshots(text: str) -> int | tuple[str, ...]:
    return int(text) if text.isdigit() else tuple(text.split(","))


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="pipeline", description=__doc__)
    sub = ap.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="folds -> train -> predict -> submit -> scores for a competition")
    run.add_argument("competition")
    run.add_argument("--data", help="the competition's data folder (default: $PIPELINE_DATA/<competition>, "
                                    "data/<competition>, or a Kaggle kernel's input)")
    run.add_argument("--run", help="run name: its folder is data/runs/<competition>/<run> (default: the recipe's name)")
    run.add_argument("--recipe", help="which of the competition's recipes (default: gpu on CUDA, else cpu)")
    run.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    run.add_argument("--arch", help="timm model name")
    run.add_argument("--weights", help="'imagenet', 'none' (train from scratch) or a weights file")
    run.add_argument("--folds", type=int, help="number of folds K")
    run.add_argument("--train-folds", type=_folds, help="folds to train: 'all' or e.g. 0,1")
    run.add_argument("--tta", type=int, choices=(1, 2, 4, 8), help="test-time views averaged")
    run.add_argument("--batch-size", type=int)
    run.add_argument("--checkpoint", choices=("last", "best"), help="which weights predict")
    run.add_argument("--seed", type=int)
    run.add_argument("--oversample", type=lambda t: t if t in ("none", "max") else float(t),
                     help="rare classes per epoch: none, max (up to the largest class) or a power in [0, 1]")
    run.add_argument("--snapshots", type=_snapshots,
                     help="predict with the last N cycle-end snapshots of each fold, or these names "
                          "(e.g. phase4-epoch3,phase5-epoch2; `pipeline snapshots` lists them); 0: the checkpoint")
    run.add_argument("--swa", type=int, dest="swa_epochs", metavar="EPOCHS",
                     help="SWA round: this many more epochs at the last phase's size, weights averaged at "
                          "each epoch end, BatchNorm recomputed; 0: off")
    run.add_argument("--swa-schedule", choices=("sgdr", "constant"),
                     help="SWA learning rate: annealed to 0 every epoch (sgdr) or held (constant)")
    run.add_argument("--hard-negatives", type=float, metavar="FRACTION",
                     help="mining round: this fraction of each fold's hardest training images added again "
                          "for one more epoch; 0: off")

    snaps = sub.add_parser("snapshots", help="list a run's snapshots (and SWA model) per fold")
    snaps.add_argument("competition")
    snaps.add_argument("--run", help="run name (default: the only run, or cpu/gpu)")

    sub.add_parser("list", help="the competitions this installation knows")
    dl = sub.add_parser("download", help="download a competition's data from Kaggle")
    dl.add_argument("competition")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.command == "list":
            from .competition import available
            print("\n".join(available()))
        elif args.command == "download":
            from .competition import load
            comp = load(args.competition)
            raise PipelineError(
                f"downloading from Kaggle is not built yet: get https://www.kaggle.com/c/{comp.slug}/data "
                f"with `kaggle competitions download -c {comp.slug}`, unzip it into data/{comp.name}/")
        elif args.command == "run":
            from .run import format_scores, run_all, start
            r = start(args.competition, data=args.data, run=args.run, recipe=args.recipe, device=args.device,
                      arch=args.arch, weights=args.weights, folds=args.folds, tta=args.tta,
                      batch_size=args.batch_size, checkpoint=args.checkpoint, seed=args.seed, oversample=args.oversample,
                      train_folds=args.train_folds, snapshots=args.snapshots, swa_epochs=args.swa_epochs,
                      swa_schedule=args.swa_schedule, hard_negatives=args.hard_negatives)
            print(format_scores(run_all(r)))
        elif args.command == "snapshots":
            from .run import list_snapshots
            print(list_snapshots(args.competition, args.run))
    except PipelineError as e:
        print(f"pipeline: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("pipeline: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
