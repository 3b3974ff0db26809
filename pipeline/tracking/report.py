"""`pipeline report`: every recorded run of a competition as a leaderboard ranked by CV score
among runs scored on as many folds (which folds, mean ± std over them, OOF, each fold, wall time,
leaderboard scores, standing against the competition's reference scores, how an unfinished run
ended, what changed against the best run), a paired comparison of two runs on their shared
folds, and (`--html`) a self-contained page with the same table and plots."""
from __future__ import annotations

import base64
import html
import io
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from pipeline import PipelineError
from pipeline.competition import load
from pipeline.core.files import is_held
from pipeline.core.workdir import RUN_LOCK, Workdir
from pipeline.tracking import registry

IGNORED = {"run", "data_dir", "train_images", "test_images", "amp", "versions"}  # not choices (versions: own line)
STATUS_WIDTH = 60  # characters of how a run ended: a failure's message, cut short (the registry keeps it whole)


def runs(workdir: Workdir, competition: str) -> pd.DataFrame:
    """One row per run, best first: finished runs scored on more folds before those scored on
    fewer (a one-fold trial's lucky fold is no match for a mean over five), runs scored on the
    same folds together, and among them by mean fold score; the unfinished after them."""
    rows = registry.read_runs(workdir, competition)
    subs = registry.read_submissions(workdir, competition)
    scored = subs.dropna(subset=["public_score"]).sort_values("date") if len(subs) else subs
    out = []
    for name, g in rows.groupby("run", sort=False):
        first = g.iloc[0]
        folds = {int(f): float(s) for f, s in zip(g["fold"], g["score"]) if pd.notna(f) and pd.notna(s)}
        lb = scored[scored["run"] == name].tail(1) if len(scored) else scored
        status, latest = _alive(first)
        out.append({
            "run": name, "status": status, "latest": latest, "metric": first["metric"],
            "higher_is_better": bool(first["higher_is_better"]), "folds": folds,
            "mean": np.mean(list(folds.values())) if folds else np.nan,
            "std": np.std(list(folds.values())) if folds else np.nan,
            "oof": first["oof"], "seconds": first["seconds"], "finished_at": first["finished_at"],
            "commit": (first["git_commit"] or "")[:8] + ("+dirty" if first["git_dirty"] else ""),
            "settings": json.loads(first["settings"]), "run_dir": first["run_dir"],
            "deleted": not Path(first["run_dir"]).is_dir(),
            "public": lb["public_score"].iloc[0] if len(lb) else np.nan,
            "private": lb["private_score"].iloc[0] if len(lb) else np.nan})
    table = pd.DataFrame(out)
    if table.empty:
        return table
    sign = np.where(table["higher_is_better"], -1.0, 1.0)
    order = pd.DataFrame({"unfinished": table["status"] != "finished", "fewer": -table["folds"].map(len),
                          "which": table["folds"].map(lambda f: tuple(sorted(f))),
                          "score": sign * table["mean"].fillna(0), "finished_at": table["finished_at"]})
    return table.loc[order.sort_values(list(order)).index].reset_index(drop=True)


def _alive(row) -> tuple[str, str | None]:
    """(status, the later attempt beside a finished result); "running" with no process holding
    the run folder's lock is a run killed without a word (kill -9, a lost machine)."""
    status, latest = row["status"], row["latest"] if isinstance(row["latest"], str) else None
    if "running" in (status, (latest or "").split(" ")[0]) and not is_held(Path(row["run_dir"]) / RUN_LOCK):
        if status == "running":
            return "killed (recorded running, no process holds it)", latest
        return status, "killed" + latest.removeprefix("running")
    return status, latest


def changes(settings: dict, best: dict) -> list[str]:
    """The settings that differ from the best run's, as 'name: best -> this'."""
    a, b = _flat(best), _flat(settings)
    return [f"{k}: {' -> '.join(_shown(a.get(k, '-'), b.get(k, '-')))}" for k in sorted(set(a) | set(b))
            if a.get(k) != b.get(k) and k.split(".")[0] not in IGNORED]


def _shown(*values: str) -> list[str]:
    """Settings (as _flat gives them) with floats to 4 significant digits: a tuned rate reads
    0.04178, not 0.0417791684108358; in full when the rounding would make them look the same."""
    def rounded(v):
        if isinstance(v, float):
            return float(f"{v:.4g}")
        return [rounded(x) for x in v] if isinstance(v, list) else v
    shown = [v if v == "-" else json.dumps(rounded(json.loads(v))) for v in values]
    return list(values) if len(set(shown)) < len(set(values)) else shown


def versions_changed(settings: dict, best: dict) -> list[str]:
    """Library versions that differ from the best run's: the same recipe scores differently
    (and runs at another speed) under another torch."""
    a, b = best.get("versions", {}), settings.get("versions", {})
    return [f"{k} {a.get(k, '?')} -> {b.get(k, '?')}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def _flat(d, prefix: str = "") -> dict:
    if isinstance(d, dict):
        return {k: v for key, value in d.items() for k, v in _flat(value, f"{prefix}{key}.").items()}
    if isinstance(d, list) and any(isinstance(x, (dict, list)) for x in d):
        return {k: v for i, value in enumerate(d) for k, v in _flat(value, f"{prefix}{i}.").items()}
    return {prefix.rstrip("."): json.dumps(d)}


def paired(table: pd.DataFrame, a: str, b: str) -> dict:
    """Run `a` against run `b` on the folds both scored: differences a - b, how many folds `a`
    is better on, and a paired t-test of whether the mean difference exceeds the fold noise."""
    found = set(table["run"])
    for name in (a, b):
        if name not in found:
            raise PipelineError(f"--compare: no run {name!r} (runs: {', '.join(sorted(found))})")
    ra, rb = (table[table["run"] == n].iloc[0] for n in (a, b))
    shared = sorted(set(ra["folds"]) & set(rb["folds"]))
    diffs = np.array([ra["folds"][k] - rb["folds"][k] for k in shared])
    sign = 1 if ra["higher_is_better"] else -1
    out = {"a": a, "b": b, "folds": shared, "diffs": diffs.tolist(), "n": len(shared),
           "mean": float(diffs.mean()) if len(diffs) else np.nan,
           "better": int((sign * diffs > 0).sum()), "worse": int((sign * diffs < 0).sum()),
           "se": np.nan, "t": np.nan, "p": np.nan, "beyond_noise": False}
    if len(diffs) >= 2:
        se, mean = float(diffs.std(ddof=1) / np.sqrt(len(diffs))), out["mean"]
        if se > 0:
            t = mean / se
            p = float(2 * stats.t.sf(abs(t), len(diffs) - 1))
        else:  # the same difference on every fold: no noise at all
            t, p = (np.copysign(np.inf, mean), 0.0) if mean else (0.0, 1.0)
        out.update(se=se, t=float(t), p=p, beyond_noise=p < 0.05)
    return out


def format_paired(c: dict) -> str:
    if c["n"] == 0:
        return f"{c['a']} vs {c['b']}: no fold scored by both; train the same folds to compare them"
    head = (f"{c['a']} vs {c['b']} on fold{'s' if c['n'] > 1 else ''} {','.join(map(str, c['folds']))}: "
            f"{c['a']} - {c['b']} = {', '.join(f'{d:+.4f}' for d in c['diffs'])}; mean {c['mean']:+.4f}; "
            f"{c['a']} better on {c['better']} of {c['n']} folds, worse on {c['worse']}")
    if c["n"] < 2:
        return head + "; one shared fold: no estimate of fold noise"
    verdict = "larger than fold noise" if c["beyond_noise"] else "within fold noise"
    return head + f"; fold noise (sd/sqrt(n)) {c['se']:.4f}, paired t {c['t']:.2f}, p {c['p']:.3f}: {verdict}"


def standing(score: float, references: dict, higher_is_better: bool) -> str:
    """Where a score stands against reference scores: the best one it reaches."""
    if not references or pd.isna(score):
        return ""
    order = sorted(references.items(), key=lambda kv: kv[1], reverse=higher_is_better)
    for name, ref in order:
        if (score >= ref) if higher_is_better else (score <= ref):
            return f">= {name}"
    return f"< {order[-1][0]}"


def _time(seconds: float) -> str:
    return "-" if pd.isna(seconds) else f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


def _num(x) -> str:
    return "-" if pd.isna(x) else f"{x:.4f}"


def _which(folds) -> str:
    """Fold numbers as runs: 0-4, or 0,2-3."""
    runs: list[list[int]] = []
    for k in sorted(folds):
        if runs and k == runs[-1][-1] + 1:
            runs[-1].append(k)
        else:
            runs.append([k])
    return ",".join(f"{r[0]}-{r[-1]}" if len(r) > 1 else str(r[0]) for r in runs)


def _short(text: str, width: int = STATUS_WIDTH) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


def described(settings: dict) -> str:
    """A run beside a blend, or a blend beside a run: what it is, not a list of every setting."""
    recipe = settings.get("recipe", {})
    blend = recipe.get("blend")
    return (f"blend ({blend['method']}) of {', '.join(blend['members'])}" if blend else
            f"a run of {recipe.get('arch', '?')}")


def rows_for(table: pd.DataFrame, references: dict) -> tuple[list[str], list[list[str]]]:
    """The leaderboard as a header and rows of text cells (shared by the text and HTML reports)."""
    folds = sorted({k for f in table["folds"] for k in f})
    best = table.iloc[0]
    header = (["#", "run", "folds", "mean ± std", "OOF"] + [f"fold {k}" for k in folds]
              + ["wall", "LB public", "LB private", "standing", "status", "changed vs best"])
    rows = []
    for i, r in table.iterrows():
        name = r["run"] + (" (folder deleted)" if r["deleted"] else "")
        if r["status"] != "finished":  # no scores of any kind, only how it ended
            rows.append(["-", name, "-", "-", "-"] + ["-"] * len(folds)
                        + [_time(r["seconds"]), "-", "-", "", _short(r["status"]), ""])
            continue
        total = r["settings"].get("recipe", {}).get("folds", "?")
        # the finished result stands; the later attempt beside it
        status = _short(f"then {r['latest']}") if r["latest"] else ""
        blends = [x["settings"].get("recipe", {}).get("blend") for x in (r, best)]
        diff = ["(best)"] if not i else [described(r["settings"])] if any(blends) and blends[0] != blends[1] \
            else versions_changed(r["settings"], best["settings"]) + changes(r["settings"], best["settings"])
        if i and r["commit"] != best["commit"]:
            diff.append(f"code: {best['commit'] or '?'} -> {r['commit'] or '?'}")
        rows.append([str(i + 1), name, f"{_which(r['folds'])} of {total}", f"{r['mean']:.4f} ± {r['std']:.4f}",
                     _num(r["oof"])] + [_num(r["folds"].get(k, np.nan)) for k in folds]
                    + [_time(r["seconds"]), _num(r["public"]), _num(r["private"]),
                       standing(r["mean"], references, r["higher_is_better"]), status,
                       "; ".join(diff[:4]) + (f"; +{len(diff) - 4} more" if len(diff) > 4 else "") or "same settings"])
    return header, rows


def report(workdir: Workdir, competition: str | None = None, compare: tuple[str, str] | None = None) -> str:
    names = _competitions(workdir, competition)
    if not names:
        return (f"no runs recorded yet ({workdir.runs_table} is empty or missing); "
                f"`pipeline run COMPETITION` records one")
    out = []
    for name in names:
        table, refs = runs(workdir, name), _references(name)
        header, rows = rows_for(table, refs)
        widths = [max(len(h), *(len(r[j]) for r in rows)) for j, h in enumerate(header)]
        metric = table.iloc[0]
        out.append(f"{name}: {len(table)} runs, {metric['metric']} ({'higher' if metric['higher_is_better'] else 'lower'}"
                   f" is better)" + (f"; references {', '.join(f'{k} {v}' for k, v in refs.items())}" if refs else ""))
        out += ["  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in [header] + rows]
        finished = table[table["status"] == "finished"]["run"].tolist()
        pair = compare if compare and competition else (tuple(finished[:2]) if len(finished) >= 2 else None)
        if pair:
            out.append("paired: " + format_paired(paired(table, *pair)))
        out.append("")
    return "\n".join(out).rstrip()


def _competitions(workdir: Workdir, competition: str | None) -> list[str]:
    recorded = registry.read_runs(workdir)
    if competition is not None:
        load(competition)  # an unknown name is an error, not an empty report
        return [competition] if (recorded["competition"] == competition).any() else []
    return list(dict.fromkeys(recorded["competition"]))


def _references(name: str) -> dict:
    try:
        return load(name).references or {}
    except PipelineError:  # a competition recorded here whose folder is gone
        return {}


def write_html(path: Path, workdir: Workdir, competition: str | None = None) -> Path:
    """One page, no network fetches: inline CSS, plots as embedded PNGs, links to each run's
    diagnostics relative to the page."""
    from pipeline.core.plots import pyplot
    from pipeline.core.files import atomic_path
    names = _competitions(workdir, competition)
    path = Path(path).resolve()
    parts = ["<!doctype html><meta charset='utf-8'><title>pipeline report</title><style>"
             "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;font-size:13px}"
             "td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}td:nth-child(2),td:last-child"
             "{text-align:left}</style><h1>pipeline report</h1>"]
    if not names:
        parts.append(f"<p>No runs recorded yet ({html.escape(str(workdir.runs_table))}).</p>")
    for name in names:
        table, refs = runs(workdir, name), _references(name)
        header, rows = rows_for(table, refs)
        parts.append(f"<h2>{html.escape(name)}</h2><table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header)
                     + "<th>diagnostics</th></tr>")
        for cells, r in zip(rows, table.itertuples()):
            link = ("folder deleted" if r.deleted else
                    f"<a href='{html.escape(os.path.relpath(Path(r.run_dir) / 'diagnostics', path.parent))}/'>diagnostics</a>")
            parts.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + f"<td>{link}</td></tr>")
        parts.append("</table>")
        parts.append(_img(_fold_plot(pyplot(), table, refs)))
        if table["public"].notna().any():
            parts.append(_img(_lb_plot(pyplot(), table)))
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(parts) + "\n")
    return path


def _img(fig) -> str:
    from pipeline.core.plots import pyplot
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    pyplot().close(fig)
    return f"<p><img alt='plot' src='data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}'></p>"


def _fold_plot(plt, table: pd.DataFrame, refs: dict):
    """Each finished run's fold scores: a box and the points, reference scores as lines."""
    done = table[table["status"] == "finished"]
    fig, ax = plt.subplots(figsize=(max(4, 0.9 * len(done) + 2), 3.5))
    for i, folds in enumerate(done["folds"]):
        values = list(folds.values())
        ax.boxplot(values, positions=[i], widths=0.5, showfliers=False)
        # one colour per fold, the same in every run: paired differences show as parallel moves
        ax.scatter(np.full(len(values), i) + np.linspace(-0.1, 0.1, len(values)), values, s=14, zorder=3,
                   c=[f"C{k % 10}" for k in folds])
    for name, value in refs.items():
        ax.axhline(value, ls=":", lw=1, color="gray")
        ax.annotate(name, (len(done) - 0.5, value), fontsize=8, color="gray", va="bottom")
    ax.set_xticks(range(len(done)), done["run"], rotation=30, ha="right")
    ax.set_ylabel(f"{table.iloc[0]['metric']} per fold")
    ax.set_title("fold scores per run")
    return fig


def _lb_plot(plt, table: pd.DataFrame):
    known = table[table["public"].notna() & table["mean"].notna()]
    fig, ax = plt.subplots(figsize=(4.5, 3.5))
    ax.scatter(known["mean"], known["public"])
    for r in known.itertuples():
        ax.annotate(r.run, (r.mean, r.public), fontsize=8)
    ax.set_xlabel("CV (mean over folds)")
    ax.set_ylabel("public leaderboard")
    ax.set_title("CV against the public leaderboard")
    return fig
