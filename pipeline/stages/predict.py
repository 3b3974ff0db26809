"""The stages after training: predict (OOF and test, each fold's ensemble and TTA views),
thresholds (multi-label), submit, diagnostics and scores; and `pipeline snapshots`."""
from __future__ import annotations

import time

import numpy as np
import pandas as pd

from pipeline.stages import diagnostics
from pipeline.stages import ensemble
from pipeline.stages import submission as sub
from pipeline.competition import load
from pipeline.core.files import read_json, write_json, write_parquet
from pipeline.core.workdir import Workdir
from pipeline.stages import thresholds
from pipeline.stages.context import Run
from pipeline.stages.train import own_folds, read_folds
from pipeline.tables import diagnostics as tables_diagnostics, trees
from pipeline.training.folds import training_rows


def predict_stage(r: Run, folds: np.ndarray) -> None:
    """Each fold predicts with its ensemble (ensemble.py); the OOF score of every ingredient alone
    goes to ensemble.json so a user sees what each one bought."""
    cols = columns(r)
    mine = {}
    for k in own_folds(r):  # (with several ranks: each its own folds, or every fold split by image)
        inputs = r.source.inputs(training_rows(folds, k, r.recipe.split))
        if r.recipe.boosted:
            mine[k] = boosted_fold(r.fold_dir(k), inputs, np.flatnonzero(folds == k))
            continue
        base, members = ensemble.members(r.fold_dir(k), r.recipe)
        mine[k] = ensemble.predict_fold(base, members, source=r.source, inputs=inputs, valid=np.flatnonzero(folds == k),
                                        recipe=r.recipe, task=r.comp.task, dev=r.dev, desc=f"fold {k}")
    if r.parallel == "folds":
        mine = {k: v for part in r.ranks.gather(mine) for k, v in part.items()}
    if not r.ranks.main:
        return
    oof, test, parts, seconds = [], [], {}, {}
    for k in r.recipe.fold_list():
        valid = np.flatnonzero(folds == k)
        ingredients, p, secs = mine[k]
        for name, q in ingredients.items():
            parts.setdefault(name, []).append(q)
        for name, t in secs.items():
            seconds[name] = seconds.get(name, 0.0) + t
        oof.append(frame(list(ingredients.values())[-1], cols).assign(
            id=r.train["id"].to_numpy()[valid], label=r.train["label"].to_numpy()[valid], fold=k))
        test.append(frame(p, cols).assign(id=r.test["id"].to_numpy(), fold=k))
    oof_df = pd.concat(oof, ignore_index=True)
    y = r.comp.targets(oof_df["label"])
    table = [{"ingredient": name, r.comp.metric.name: score(r, y, np.concatenate(ps))}
             for name, ps in parts.items()]
    write_json(r.run_dir / "ensemble.json", {"ingredients": table, "seconds": {k: round(v, 1) for k, v in seconds.items()}})
    write_parquet(r.run_dir / "oof_predictions.parquet", oof_df[["id", "label", "fold"] + cols])
    test_df = pd.concat(test, ignore_index=True)
    write_parquet(r.run_dir / "test_predictions.parquet", test_df[["id", "fold"] + cols])


def boosted_fold(fold_dir, inputs, valid: np.ndarray) -> tuple[dict, np.ndarray, dict]:
    """A fold's trees' (OOF predictions as the one ingredient, test predictions, seconds)."""
    t0 = time.time()
    booster = trees.load(fold_dir)
    oof, test = trees.predict(booster, inputs.x[valid]), trees.predict(booster, inputs.test)
    return {"trees": oof}, test, {"trees": time.time() - t0}  # (one name for every fold: ensemble.json scores it)


def columns(r: Run) -> list[str]:
    """The prediction columns of oof_ and test_predictions.parquet: the task's (a class's or tag's
    probability each, or a regression's one prediction)."""
    return r.comp.task.columns(r.comp.classes)


def frame(p: np.ndarray, cols: list[str]) -> pd.DataFrame:
    return pd.DataFrame(np.asarray(p).reshape(len(p), len(cols)), columns=cols)


def list_snapshots(comp_name: str, run: str | None = None, workdir: Workdir | None = None) -> str:
    """`pipeline snapshots`: each fold's snapshots and SWA and EMA models with their size and validation score."""
    folder = (workdir or Workdir.default()).existing_run(load(comp_name).name, run)
    return f"{folder}:\n" + ensemble.describe(folder)


def score(r: Run, y: np.ndarray, probs: np.ndarray, thresholds=None) -> float:
    """The competition's metric on predictions as they would be submitted (clipped; tags above
    the thresholds, the metric's default ones when none are given)."""
    return r.comp.metric(*r.comp.task.in_units(y, sub.submitted_probabilities(probs, r.comp.submission)), thresholds)


def read_thresholds(r: Run) -> np.ndarray | None:
    saved = read_json(r.run_dir / "thresholds.json", None)
    return None if saved is None else np.array([saved["thresholds"][c] for c in r.comp.classes])


def thresholds_stage(r: Run) -> None:
    """Multi-label: a threshold per class, tuned on the OOF predictions (thresholds.py). Tuned and
    scored on the same predictions is optimistic; with two or more folds, each fold is also scored
    with thresholds tuned on the others, which is not."""
    classes, metric = r.comp.classes, r.comp.metric
    oof = pd.read_parquet(r.run_dir / "oof_predictions.parquet")
    y, probs, fold = r.comp.targets(oof["label"]), oof[classes].to_numpy(), oof["fold"].to_numpy()
    tuned = thresholds.tune(y, probs, metric)
    result = {"thresholds": dict(zip(classes, tuned.tolist())), "default": metric.threshold,
              f"oof_{metric.name}_default": metric(y, probs), f"oof_{metric.name}_tuned": metric(y, probs, tuned)}
    if len(np.unique(fold)) > 1:  # each fold scored with thresholds tuned on the other folds
        held = [metric(y[fold == k], probs[fold == k], thresholds.tune(y[fold != k], probs[fold != k], metric))
                for k in np.unique(fold)]
        result[f"{metric.name}_tuned_on_other_folds"] = float(np.mean(held))
    write_json(r.run_dir / "thresholds.json", result)
    honest = result.get(f"{metric.name}_tuned_on_other_folds")
    r.log(f" OOF {metric.name}: {result[f'oof_{metric.name}_default']:.4f} at {metric.threshold} for every class, "
          f"{result[f'oof_{metric.name}_tuned']:.4f} with per-class thresholds tuned on it"
          + (f", {honest:.4f} per fold with thresholds tuned on the other folds" if honest is not None else
             "; tuned and scored on the same images, so optimistic: two or more folds (--train-folds) "
             "give an honest score"))


def submit_stage(r: Run) -> None:
    spec, classes = r.comp.submission, r.comp.classes
    sample = sub.read_sample(sub.sample_file(r.data_dir, spec), spec, list(r.test["id"]), classes,
                             r.data_dir / r.comp.layout.test if r.comp.table else None)
    preds = pd.read_parquet(r.run_dir / "test_predictions.parquet")
    mean = preds.groupby("id", sort=False)[columns(r)].mean()  # fold ensemble: average probabilities
    out = sub.build(list(mean.index), mean.to_numpy(), classes, sample, spec, task=r.comp.task,
                    thresholds=read_thresholds(r))
    if hasattr(r.source, "known"):  # a table's rows whose answer its definition knows (a closed store sells nothing)
        known = pd.Series(r.source.known(), index=r.test["id"]).reindex(out[spec.id_column]).to_numpy()
        given = ~np.isnan(known)
        out.loc[given, spec.label_column] = known[given]
        r.log(f" {int(given.sum())} of {len(out)} test rows answered by the definition's rules "
              f"({', '.join(f'{q} -> {a}' for q, a in r.comp.layout.known.items())})")
    sub.validate(out, sample, classes, spec, r.comp.task)
    sub.write(out, r.submission_path)


def diagnostics_stage(r: Run) -> None:
    """Curves per fold, confusion matrix and per-class table, top-loss images (diagnostics.py);
    for a table, residuals by column and a learned embedding (tables/diagnostics.py)."""
    out, classes = r.run_dir / "diagnostics", r.comp.classes
    for k in r.recipe.fold_list():
        if r.recipe.boosted:
            tables_diagnostics.trees_plots(r.fold_dir(k), k, out)
        else:
            diagnostics.training_curves(r.fold_dir(k), r.comp.metric.name, out / f"curves_fold{k}.png")
    oof = pd.read_parquet(r.run_dir / "oof_predictions.parquet")
    if r.comp.table:
        table_diagnostics(r, oof, out)
        return
    y, probs, tuned = r.comp.targets(oof["label"]), oof[columns(r)].to_numpy(), read_thresholds(r)
    size = r.recipe.phases[-1].size
    positions = pd.Index(r.train["id"]).get_indexer(oof["id"])
    diagnostics.top_losses(r.train_images[size], positions, y, probs, oof["id"].to_numpy(), classes,
                           out / "top_losses.png", r.comp.task, tuned)
    if r.comp.multilabel:
        table = diagnostics.per_tag(y, probs, tuned, classes, out)
        worst = ", ".join(f"{t.tag} (F1 {t.f1:.2f}, {t.support} images)" for t in table.head(3).itertuples())
        r.log(f" hardest tags: {worst}; plots and tables in {out}")
        return
    pairs = diagnostics.confusion(y, probs, classes, out)
    top = ", ".join(f"{p.true} as {p.predicted} ({p.count})" for p in pairs.head(3).itertuples())
    r.log(f" most confused: {top or 'nothing'}; plots and tables in {out}")


def table_diagnostics(r: Run, oof: pd.DataFrame, out) -> None:
    """Residuals by each categorical column with few values, over the OOF rows; the embedding of
    the column with the most values (the stores) and of the one with the fewest, five or more (the
    days of the week), from the last trained fold's model."""
    rows = pd.Index(r.train["id"]).get_indexer(oof["id"])
    y, p = r.comp.task.in_units(r.comp.targets(oof["label"]), oof[columns(r)].to_numpy())
    table = tables_diagnostics.residuals(r.source.train.iloc[rows], r.source.categorical, y, p, r.comp.metric, out)
    worst = table.sort_values(r.comp.metric.name, ascending=not r.comp.metric.higher_is_better).tail(3)
    r.log(f" hardest: {', '.join(f'{w.column}={w.value} ({r.comp.metric.name} {w[r.comp.metric.name]:.4f})' for _, w in worst.iterrows())}; "
          f"plots and tables in {out}")
    if r.recipe.boosted:  # (trees learn no embeddings: trees_fold*.png shows what they split on)
        return
    k = r.recipe.fold_list()[-1]
    inputs = r.source.inputs(training_rows(read_folds(r), k, r.recipe.split))
    model, _ = r.source.load(r.fold_dir(k) / "last.pt", inputs, r.dev)
    cats = inputs.encoding.categories
    sizes = {c: len(v) for c, v in cats.items() if len(v) >= 5}
    for c in dict.fromkeys([max(sizes, key=sizes.get), min(sizes, key=sizes.get)]) if sizes else []:
        tables_diagnostics.embedding_map(model.cpu(), inputs.encoding.categorical, cats, c, out / f"embedding_{c}.png")


def scores_stage(r: Run) -> dict:
    """Per-fold and OOF scores and stage times (the resolved settings are in settings.json)."""
    metric, tuned = r.comp.metric, read_thresholds(r)
    oof = pd.read_parquet(r.run_dir / "oof_predictions.parquet")
    def scored(df): return score(r, r.comp.targets(df["label"]), df[columns(r)].to_numpy(), tuned)
    folds = [{"fold": int(k), "images": len(df), metric.name: scored(df)} for k, df in oof.groupby("fold")]
    result = {
        "competition": r.comp.name, "run": r.name, "metric": metric.name,
        "higher_is_better": metric.higher_is_better, "examples": "rows" if r.comp.table else "images",
        "folds": folds, "oof": scored(oof), "oof_images": len(oof),
        "mean": float(np.mean([f[metric.name] for f in folds])),
        "std": float(np.std([f[metric.name] for f in folds])),
        "trained_folds": r.recipe.fold_list(), "total_folds": r.recipe.folds,
        "seconds": {k: round(v, 1) for k, v in r.times.items()},
        "submission": str(r.submission_path),
        "ensemble": read_json(r.run_dir / "ensemble.json", {}),
    }
    if tuned is not None:
        result["thresholds"] = read_json(r.run_dir / "thresholds.json", {})
    unreadable = unreadable_test(r)
    if unreadable:
        result["unreadable_test"] = unreadable
    return result


def unreadable_test(r: Run, shown: int = 10) -> dict | None:
    """The test images that could not be read, whose rows every fold, view and snapshot predicted
    from the training labels (vision/source.py): how many, the first `shown` ids, the listing file."""
    if r.comp.table:
        return None
    bad = r.test_images.unreadable(r.recipe.phases[-1].size)
    if not bad:
        return None
    ids = r.test["id"].to_numpy()[[at for at, _, _ in bad[:shown]]]
    return {"count": len(bad), "ids": [str(i) for i in ids], "listing": str(r.test_images.listing("unreadable"))}
