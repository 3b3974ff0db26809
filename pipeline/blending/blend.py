"""`pipeline blend COMPETITION RUN RUN ... [--method select|mean|stack] [--run NAME]`.

The blend is chosen on the runs' OOF predictions and then applied to their test predictions
(each run's fold ensemble). Chosen and scored on the same rows, its OOF score flatters it; so
each scored fold is also predicted by a blend chosen on the other folds only (nested), and that
honest number is printed beside the in-sample one and the best run's, with the folds' spread:
a gain (or loss) smaller than the spread of the per-fold gains is said to be within fold noise.

It is written as a run of its own, data/runs/<competition>/<NAME>/: folds.csv (the members'),
oof_predictions.parquet (the nested predictions; with one scored fold, the in-sample ones),
test_predictions.parquet, blend.json (members, weights, the numbers), settings.json and
scores.json as a run's, its submission submissions/<competition>/<NAME>.csv through the same
submit stage as a run's (multi-label thresholds tuned again on the blend), and a registry row:
`pipeline report` ranks it among the runs and `pipeline submit --run NAME` sends it."""
from __future__ import annotations

import time
from typing import Callable

import numpy as np
import pandas as pd

from pipeline import PipelineError
from pipeline.blending import members as runs, methods
from pipeline.core.files import file_sha1, read_json, write_csv, write_json, write_parquet
from pipeline.core.workdir import Workdir, run_name
from pipeline.stages import submission as sub
from pipeline.stages.context import start
from pipeline.stages.engine import holding, versions
from pipeline.stages.predict import submit_stage, thresholds_stage
from pipeline.training.tasks import Classification, MultiLabel
from pipeline.tracking import registry


def blend(comp_name: str, names: list[str], *, method: str = "select", run: str = "blend", data: str | None = None,
          seed: int = 0, workdir: Workdir | None = None, log: Callable = print) -> dict:
    """Blend the runs `names`; returns the blend's scores (scores.json)."""
    t0 = time.time()
    workdir = workdir or Workdir.default()
    if method not in methods.METHODS:
        raise PipelineError(f"--method {method}: use one of {', '.join(methods.METHODS)}")
    run_name(run)
    if run in names:
        raise PipelineError(f"--run {run}: that is one of the runs blended; give the blend another name")
    r = start(comp_name, workdir=workdir, data=data, run=run, log=log)  # the competition, its test rows and sample
    comp, members = r.comp, runs.read(workdir, r.comp.name, names)
    first = members[0]
    folds = first.folds["fold"].to_numpy()[first.scored]
    y = comp.targets(first.folds["label"].iloc[first.scored])
    P = np.stack([m.oof for m in members])
    kind = "tags" if isinstance(comp.task, MultiLabel) else "classes" if isinstance(comp.task, Classification) \
        else "regression"
    scored = sorted(set(folds.tolist()))
    if method == "stack" and len(scored) < 2:
        raise PipelineError(f"--method stack fits a model on the other folds' rows, and the runs were scored on "
                            f"fold {scored[0]} only; blend runs trained on two folds or more (--train-folds all), "
                            f"or use --method select")

    def score(yy, p):
        return comp.metric(*comp.task.in_units(yy, sub.submitted_probabilities(p, comp.submission)))
    better = comp.metric.better

    log(f"blending {len(members)} runs of {comp.name} ({', '.join(names)}) by {method} on {len(y):,} OOF rows "
        f"(fold{'s' * (len(scored) > 1)} {', '.join(map(str, scored))})")
    chosen = methods.fit(method, P, y, kind, score, better, seed)
    in_sample = chosen.apply(P)
    nested = np.zeros_like(in_sample)
    for k in scored if len(scored) > 1 else []:  # each fold predicted by a blend chosen on the other folds
        at = folds == k
        nested[at] = methods.fit(method, P[:, ~at], y[~at], kind, score, better, seed).apply(P[:, at])
    honest = nested if len(scored) > 1 else in_sample

    name = comp.metric.name
    alone = {m.name: score(y, m.oof) for m in members}
    best = max(alone, key=lambda n: methods.Ranked(alone[n], better))
    per_fold = [{"fold": int(k), "images": int((folds == k).sum()), name: score(y[folds == k], honest[folds == k]),
                 "best_run": score(y[folds == k], P[names.index(best)][folds == k])} for k in scored]
    result = {"method": method, "members": names, **chosen.described(), "runs_oof": alone, "best_run": best,
              "oof_in_sample": score(y, in_sample),
              "oof_nested": score(y, nested) if len(scored) > 1 else None, "folds": per_fold}
    if len(scored) > 1:  # the nested gain over the best run, fold by fold
        gains = np.array([(f["best_run"] - f[name]) * (-1 if better(1, 0) else 1) for f in per_fold])
        result |= {"gain": float(gains.mean()), "gain_spread": float(gains.std()),
                   "noise": "within" if abs(gains.mean()) <= gains.std() else "a gain beyond" if gains.mean() > 0
                   else "a loss beyond"}
    for line in summary(result, name):
        log(line)

    with holding(r):
        _write(r, members, first, folds, honest, chosen, result, kind, time.time() - t0)
    return result


def summary(result: dict, name: str) -> list[str]:
    """The numbers a Kaggler decides on: the best run, the blend in sample and nested, and
    whether the nested gain is larger than the folds' spread."""
    best = result["best_run"]
    lines = [f" runs alone, OOF {name}: " + ", ".join(f"{n} {s:.4f}" for n, s in result["runs_oof"].items()),
             f" blend: {', '.join(f'{k} {v}' for k, v in result.items() if k in ('weights', 'coefficients', 'model'))}",
             f" OOF {name}: the blend {result['oof_in_sample']:.4f} chosen and scored on the same rows (optimistic)"]
    if result["oof_nested"] is None:
        lines.append(f"  one fold scored: no nested number (a blend chosen on other folds); runs trained with "
                     f"--train-folds all give one. The best run, {best}: {result['runs_oof'][best]:.4f}")
        return lines
    lines.append(f"  nested (each fold's blend chosen on the other folds): {result['oof_nested']:.4f}, against "
                 f"{result['runs_oof'][best]:.4f} for the best run, {best}; per fold "
                 + ", ".join(f"{f['fold']}: {f[name]:.4f} vs {f['best_run']:.4f}" for f in result["folds"]))
    lines.append(f"  the gain per fold {result['gain']:+.4f} (spread {result['gain_spread']:.4f}): "
                 f"{result['noise']} fold noise")
    return lines


def _write(r, members, first, folds, honest, chosen, result: dict, kind: str, seconds: float) -> None:
    """The blend's run folder, submission and registry row."""
    comp, cols = r.comp, first.columns
    r.run_dir.mkdir(parents=True, exist_ok=True)
    total = (read_json(first.folder / "settings.json", {}) or {}).get("recipe", {}).get("folds")  # (the report's "of K")
    settings = {"competition": comp.name, "run": r.name, "versions": versions(),
                "recipe": {"blend": {"method": result["method"], "members": result["members"],
                                     **{k: result[k] for k in ("weights", "coefficients") if k in result}},
                           "folds": total}}
    write_json(r.run_dir / "settings.json", settings)
    write_csv(r.run_dir / "folds.csv", first.folds)
    scored = first.folds.iloc[first.scored]
    oof = pd.DataFrame(honest, columns=cols).assign(id=scored["id"].to_numpy(), label=scored["label"].to_numpy(),
                                                     fold=folds)
    write_parquet(r.run_dir / "oof_predictions.parquet", oof[["id", "label", "fold"] + cols])
    test = pd.DataFrame(chosen.apply(np.stack([m.test for m in members])), columns=cols)
    write_parquet(r.run_dir / "test_predictions.parquet", test.assign(id=first.test_ids, fold=-1)[["id", "fold"] + cols])
    write_json(r.run_dir / "blend.json", result)
    if kind == "tags":
        thresholds_stage(r)  # (tuned again on the blend's own OOF predictions)
    submit_stage(r)
    name = comp.metric.name
    scores = {"competition": comp.name, "run": r.name, "metric": name, "higher_is_better": comp.metric.higher_is_better,
              "folds": result["folds"], "oof": result["oof_nested"] if result["oof_nested"] is not None
              else result["oof_in_sample"], "blend": result, "submission": str(r.submission_path),
              "seconds": {"blend": round(seconds, 1)},
              "made_from": {"settings.json": file_sha1(r.run_dir / "settings.json"),
                            "submission": file_sha1(r.submission_path)}}
    write_json(r.run_dir / "scores.json", scores)
    registry.record_run(r.workdir, settings, run_dir=r.run_dir, metric=comp.metric, stage_seconds=scores["seconds"],
                        folds=result["folds"], oof=scores["oof"])
    r.log(f" submission: {r.submission_path}")
