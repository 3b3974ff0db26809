"""`pipeline run`: the stages, in order, each a plain function that reads and writes files in the
run folder (data/runs/<competition>/<run>/).

    data -> images (decoded; near duplicates) -> folds (each group of them in one) -> train (per fold)
         -> predict (OOF + test; checkpoint or snapshots, SWA, TTA views)
         -> thresholds (multi-label: per class, tuned on OOF) -> submit -> diagnostics -> scores

Every stage records a key: a fingerprint of the settings and upstream results it depends on.
A re-run skips a stage whose key is unchanged and whose outputs exist, so a changed setting
re-runs exactly the stages it affects; a killed run resumes from its last finished epoch.

Under torchrun (distributed.py) every rank runs the stages; `--parallel data` trains each fold on
all ranks together, `--parallel folds` gives each rank whole folds. Rank 0 writes every file of
the run and does the stages after predict alone; the others wait for it at each stage's end.
"""
from __future__ import annotations

import shutil
import time

from pipeline import Pruned
from pipeline.stages import submission as sub
from pipeline.core.files import atomic_path, file_sha1, files_fingerprint, fingerprint, write_json
from pipeline.core.keys import settings_for
from pipeline.core.workdir import in_kernel, kaggle_root
from pipeline.stages import thresholds
from pipeline.stages.context import Run, start
from pipeline.stages.engine import holding, record, record_refused, settings, stage
from pipeline.stages.predict import diagnostics_stage, predict_stage, scores_stage, submit_stage, thresholds_stage
from pipeline.stages.train import fold_trained, folds_stage, train_key, train_stage
from pipeline.tables import trees


def start_run(competition: str, **given) -> Run:
    """`start` (context.py) for a run: one refused there, before its stages (its settings, its
    data), still leaves its row in the registry, as `pipeline report` lists it."""
    try:
        return start(competition, **given)
    except Exception as e:
        record_refused(competition, e, **given)
        raise


def run_all(r: Run) -> dict | None:
    """The stages in order, holding the run folder; the run's ending (scores, or failed /
    interrupted) goes to the registry. Ranks other than 0 return None: the scores and the records
    are rank 0's."""
    with holding(r):
        if not r.ranks.main:
            return run_stages(r)
        r.run_dir.mkdir(parents=True, exist_ok=True)
        write_json(r.run_dir / "settings.json", settings(r))
        record(r, "running")  # what a kill -9 leaves: `pipeline report` shows it killed once the lock is free
        try:
            result = run_stages(r)
        except KeyboardInterrupt as e:
            record(r, f"interrupted{' (SIGTERM)' if str(e) == 'SIGTERM' else ''}")
            raise
        except Pruned as e:
            record(r, f"pruned: {e}")
            raise
        except Exception as e:
            record(r, f"failed: {str(e).splitlines()[0] if str(e) else type(e).__name__}")
            raise
        record(r, "finished", result)
        return result


def run_stages(r: Run) -> dict:
    rc = r.recipe
    trained = rc.fold_list()
    what = "rows" if r.comp.table else "images"
    made = "trees" if rc.boosted else f"{rc.weights} weights"
    r.log(f"{r.comp.name}: recipe {r.recipe_name}, {rc.arch} ({made}), {len(r.train)} train / "
          f"{len(r.test)} test {what} from {r.data_dir}, device {r.dev.device}; run folder {r.run_dir}")
    if len(trained) < rc.folds:
        r.log(f"training folds {','.join(map(str, trained))} of {rc.folds} (recipe {r.recipe_name!r}); "
              f"--train-folds all trains every fold")
    folds = folds_stage(r)
    fold_keys = [train_key(r, k) for k in trained]
    stage(r, "train", fingerprint(fold_keys),
          [r.fold_dir(k) / (trees.MODEL if rc.boosted else f"{rc.checkpoint}.pt") for k in trained],
          lambda: train_stage(r, folds),
          intact=lambda: all(fold_trained(r, k) for k in trained))
    stage(r, "predict", fingerprint(fold_keys, settings_for(rc, "predict"), r.keys["data"]),
          [r.run_dir / f for f in ("oof_predictions.parquet", "test_predictions.parquet", "ensemble.json")],
          lambda: predict_stage(r, folds))
    if r.comp.multilabel:
        stage(r, "thresholds", fingerprint(r.keys["predict"], settings_for(r.comp, "thresholds"),
                                           thresholds.GRID.tolist()),
              [r.run_dir / "thresholds.json"], lambda: thresholds_stage(r), alone=True)
    decided = r.keys.get("thresholds", r.keys["predict"])
    sample_file = sub.find_sample(r.data_dir, r.comp.submission)
    stage(r, "submit", fingerprint(decided, settings_for(r.comp, "submit"),
                                   files_fingerprint([sample_file]) if sample_file else None),
          [r.submission_path], lambda: submit_stage(r), alone=True)
    made = (("residuals.csv", "residuals.png") if r.comp.table else
            ("per_class.csv" if r.comp.multilabel else "confusion.csv", "top_losses.png"))
    stage(r, "diagnostics", fingerprint(decided, fold_keys), [r.run_dir / "diagnostics" / f for f in made],
          lambda: diagnostics_stage(r), alone=True)
    if not r.ranks.main:
        return None
    t0 = time.time()
    result = scores_stage(r)
    result["seconds"]["scores"] = round(time.time() - t0, 1)
    # what `pipeline submit` checks: the file is this attempt's, made with the settings now on disk
    result["made_from"] = {"settings.json": file_sha1(r.run_dir / "settings.json"),
                           "submission": file_sha1(r.submission_path)}
    write_json(r.run_dir / "scores.json", result)
    if in_kernel():  # where Kaggle looks for a kernel's submission
        with atomic_path(kaggle_root() / "working" / "submission.csv") as tmp:
            shutil.copyfile(r.submission_path, tmp)
    return result


def format_scores(result: dict) -> str:
    m = result["metric"]
    lines = [f"{result['competition']} / run {result['run']}: folds "
             f"{','.join(map(str, result['trained_folds']))} of {result['total_folds']}",
             f"{'fold':>6} {result.get('examples', 'images'):>7} {m:>10}"]
    lines += [f"{f['fold']:>6} {f['images']:>7} {f[m]:>10.4f}" for f in result["folds"]]
    spread = (f"(fold mean {result['mean']:.4f} ± {result['std']:.4f})" if len(result["folds"]) > 1
              else "(one fold: --train-folds all for the spread over folds)")
    lines.append(f"{'OOF':>6} {result['oof_images']:>7} {result['oof']:>10.4f}   {spread}")
    ingredients = result["ensemble"].get("ingredients", [])
    if len(ingredients) > 1:
        lines.append("OOF by ingredient:")
        lines += [f"  {i[m]:.4f}  {i['ingredient']}" for i in ingredients]
    lines.append("stage seconds: " + "  ".join(f"{k} {v:.0f}" for k, v in result["seconds"].items())
                 + f"  total {sum(result['seconds'].values()):.0f}")
    lines.append(f"submission: {result['submission']}")
    return "\n".join(lines)
