"""Run directories and the comparison of two runs (what ``lootlab compare`` calls).

A run directory holds one experiment::

    RUN/run.json        what ran, when, the environment, and the list of results
    RUN/<name>/         one LoadResult each, as ``LoadResult.save()`` writes it
                        (summary.json + latency.hlog)

Results with the same ``name`` in one run are repeated trials of one measurement.

``compare_runs`` pairs the results of two runs by name and, per figure (latency p50, p99,
p99.9 and achieved rate), gives both values with their 95 % intervals, the ratio B/A and a
verdict: "within noise" when the two intervals overlap, "changed" when they do not.  A
single run's latency interval comes from the histogram's order statistics
(``LoadResult.percentile_ci_us``: binomial ranks, distribution-free, but it assumes
independent samples, which latency is not: treat it as a lower bound on the uncertainty).
Where a run holds repeated trials, its value is the median of the trials and its interval
runs from the lowest trial's lower bound to the highest trial's upper bound, so a difference
is called only when it exceeds what the trials disagreed by.  A percentile whose tail holds
fewer than ``MIN_TAIL`` samples is "too few samples", never a number.  Like asv's
``compare``, a difference under ``FACTOR`` (10 %) is not called even when the intervals are
apart: two runs of the same code on one busy machine drift by more than their intervals.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from .errors import LootlabError
from .loadgen.results import LoadResult
from .loadgen.runenv import environment

RUN_FORMAT = "lootlab-run/1"
PERCENTILES = (50.0, 99.0, 99.9)
MIN_TAIL = 10           # samples above a percentile needed to show it
COLUMNS = ("figure", "variant", "a", "a_lo", "a_hi", "b", "b_lo", "b_hi", "ratio", "verdict",
           "n_a", "n_b", "trials_a", "trials_b")
RERUN = "rerun on a quieter machine, or lower the rate"
FACTOR = 1.1           # smaller differences are never called (asv compare's default)
WITHIN, CHANGED, TOO_FEW = "within noise", "changed", "too few samples"


@dataclass
class Run:
    """A loaded run directory: its ``run.json`` and its results, grouped by name."""

    path: Path
    meta: dict[str, Any]
    results: dict[str, list[LoadResult]] = field(default_factory=dict)


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "result"


def save_run(directory: str | Path, results: dict[str, LoadResult | list[LoadResult]], *,
             what: str, params: dict[str, Any] | None = None) -> Path:
    """Write ``results`` (name -> one result, or a list of trials) as a run directory.

    ``what`` says in one line what ran (the command); ``params`` its parameters."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    entries = []
    for name, value in results.items():
        trials = value if isinstance(value, list) else [value]
        for trial, res in enumerate(trials):
            sub = _slug(name) if len(trials) == 1 else f"{_slug(name)}-t{trial}"
            res.save(directory / sub)
            entries.append({"name": name, "variant": res.variant, "trial": trial,
                            "path": sub, "label": res.schedule.get("label"),
                            "requests": res.requests, "valid": bool(res.health.valid),
                            "figures": _headline(res)})
    doc = {"format": RUN_FORMAT, "what": what, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
           "params": params or {}, "env": environment(), "results": entries}
    tmp = directory / ".run.json.tmp"
    tmp.write_text(json.dumps(doc, indent=1, default=str))
    os.replace(tmp, directory / "run.json")
    return directory


def combine_runs(directory: str | Path, *, what: str, params: dict[str, Any] | None = None,
                 parts: Iterable[str] | None = None) -> Path | None:
    """Write ``directory/run.json`` listing the results of every run directory one level
    below it (``directory/<part>/run.json``, as ``lootlab report`` writes one per notebook),
    each result named ``<part>: <name>``, so the whole report compares as one run.
    ``parts``: only these subdirectories (a report of some notebooks leaves the others'
    older results out).  None, and no ``run.json``, when no part holds a run."""
    directory = Path(directory)
    entries: list[dict[str, Any]] = []
    env: dict[str, Any] = {}
    wanted = None if parts is None else set(parts)
    (directory / "run.json").unlink(missing_ok=True)
    for meta_path in sorted(directory.glob("*/run.json")):
        part = meta_path.parent.name
        if wanted is not None and part not in wanted:
            continue
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        env = env or meta.get("env", {})
        for e in meta.get("results", []):
            entries.append(dict(e, name=f"{part}: {e['name']}", path=f"{part}/{e['path']}"))
    if not entries:
        return None
    doc = {"format": RUN_FORMAT, "what": what, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
           "params": params or {}, "env": env or environment(), "results": entries}
    tmp = directory / ".run.json.tmp"
    tmp.write_text(json.dumps(doc, indent=1, default=str))
    os.replace(tmp, directory / "run.json")
    return directory


def _headline(res: LoadResult) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for p in PERCENTILES:
        v = res.latency_us(p)
        out[_figure(p)] = None if math.isnan(v) else round(v, 3)
    out["achieved_rate"] = None if math.isnan(res.achieved_rate) else res.achieved_rate
    return out


def _figure(p: float) -> str:
    return f"p{p:g}_us"


def load_run(directory: str | Path) -> Run:
    """A run directory (``run.json``), or a bare saved LoadResult as a one-result run."""
    path = Path(directory)
    if not path.exists():
        raise LootlabError(f"{path}: no such run directory")
    if not path.is_dir():
        raise LootlabError(f"{path}: not a directory (give a run directory holding run.json)")
    meta_path = path / "run.json"
    if not meta_path.exists():
        if (path / "summary.json").exists():     # one LoadResult saved on its own
            res = LoadResult.load(path)
            return Run(path, {"format": RUN_FORMAT, "what": "a saved load result",
                              "env": res.env, "results": []}, {res.variant: [res]})
        raise LootlabError(f"{path}: not a lootlab run directory (no run.json; "
                           f"`lootlab bench --out DIR` writes one)")
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as exc:
        raise LootlabError(f"{meta_path}: not valid JSON ({exc.msg})") from None
    if not isinstance(meta, dict) or meta.get("format") != RUN_FORMAT:
        got = meta.get("format") if isinstance(meta, dict) else None
        raise LootlabError(f"{meta_path}: not a lootlab run (format {got!r}, "
                           f"expected {RUN_FORMAT!r})")
    run = Run(path, meta)
    for entry in meta.get("results", []):
        run.results.setdefault(entry["name"], []).append(LoadResult.load(path / entry["path"]))
    if not run.results:
        raise LootlabError(f"{meta_path}: the run lists no results")
    return run


def _rate_ci(res: LoadResult, confidence: float) -> tuple[float, float]:
    """Achieved rate with a Poisson-count interval (normal approximation)."""
    from scipy.stats import norm

    rate = res.achieved_rate
    n = res.counts.get("ok", 0) + res.counts.get("failed", 0) + res.counts.get("timeouts", 0)
    if not n or not rate or math.isnan(rate):
        return math.nan, math.nan
    half = norm.ppf(0.5 + confidence / 2) * math.sqrt(n) * rate / n
    return rate - half, rate + half


@dataclass
class _Side:
    value: float
    lo: float
    hi: float
    n: int
    trials: int
    too_few: bool


def _side(trials: list[LoadResult], figure: str, p: float | None,
          confidence: float) -> _Side:
    values, los, his, ns = [], [], [], []
    for res in trials:
        if p is None:
            values.append(res.achieved_rate)
            lo, hi = _rate_ci(res, confidence)
            ns.append(res.requests)
        else:
            n = int(res.latency.get_total_count())
            ns.append(n)
            if n * (1 - p / 100) < MIN_TAIL:
                return _Side(math.nan, math.nan, math.nan, min(ns), len(trials), True)
            values.append(res.latency_us(p))
            lo, hi = res.percentile_ci_us(p, "latency", confidence)
        los.append(lo)
        his.append(hi)
    if len(trials) == 1:
        return _Side(values[0], los[0], his[0], ns[0], 1, False)
    # repeated trials: latency pooled into one histogram (what the report shows, see
    # loadgen.pooling), the rate the median trial's; the interval spans every trial's own
    # interval, so it holds both the sampling error and the drift between trials
    value = float(np.median(values)) if p is None else _pooled_us(trials, p)
    return _Side(value, float(np.nanmin(los)), float(np.nanmax(his)),
                 int(min(ns)), len(trials), False)


def _pooled_us(trials: list[LoadResult], p: float) -> float:
    from .loadgen import hist

    return float(hist.percentiles(hist.merge([r.latency for r in trials]), [p])[0]) / 1e3


def _verdict(a: _Side | None, b: _Side | None, ratio: float, factor: float) -> str:
    if a is None:
        return "only in B"
    if b is None:
        return "only in A"
    if a.too_few or b.too_few:
        return TOO_FEW
    if any(math.isnan(x) for x in (a.lo, a.hi, b.lo, b.hi)):
        return "no data"
    overlap = a.lo <= b.hi and b.lo <= a.hi
    small = 1 / factor <= ratio <= factor
    return WITHIN if overlap or small else CHANGED


def compare_runs(run_a: Run | str | Path, run_b: Run | str | Path, *,
                 confidence: float = 0.95, factor: float = FACTOR) -> pd.DataFrame:
    """One row per (result name, figure): both values with intervals, ratio B/A, verdict.

    Values are microseconds for latency figures and requests/s for ``achieved_rate``.
    "changed" needs both intervals apart and B/A outside [1/factor, factor]."""
    a = run_a if isinstance(run_a, Run) else load_run(run_a)
    b = run_b if isinstance(run_b, Run) else load_run(run_b)
    names = list(a.results) + [n for n in b.results if n not in a.results]
    figures: list[tuple[str, float | None]] = [(_figure(p), p) for p in PERCENTILES]
    figures.append(("achieved_rate", None))
    rows = []
    for name in names:
        for figure, p in figures:
            sa = _side(a.results[name], figure, p, confidence) if name in a.results else None
            sb = _side(b.results[name], figure, p, confidence) if name in b.results else None
            va = sa.value if sa else math.nan
            vb = sb.value if sb else math.nan
            ratio = vb / va if va and not math.isnan(va) and not math.isnan(vb) else math.nan
            rows.append({"figure": figure, "variant": name, "a": va,
                         "a_lo": sa.lo if sa else math.nan, "a_hi": sa.hi if sa else math.nan,
                         "b": vb, "b_lo": sb.lo if sb else math.nan,
                         "b_hi": sb.hi if sb else math.nan, "ratio": ratio,
                         "verdict": _verdict(sa, sb, ratio, factor), "n_a": sa.n if sa else 0,
                         "n_b": sb.n if sb else 0, "trials_a": sa.trials if sa else 0,
                         "trials_b": sb.trials if sb else 0})
    return pd.DataFrame(rows, columns=list(COLUMNS))


def format_value(value: float, lo: float, hi: float, figure: str) -> str:
    """``1,234.5 [1,200.0, 1,300.1]``; a missing value reads as ``-``."""
    if math.isnan(value):
        return "-"
    digits = 0 if figure == "achieved_rate" else 1
    return f"{value:,.{digits}f} [{lo:,.{digits}f}, {hi:,.{digits}f}]"


def caveats(run: Run, label: str) -> list[str]:
    """One sentence per result of ``run`` whose figures may not describe the system: an
    INVALID health verdict or a machine found noisy (``env["noisy"]``, lootlab.noise)."""
    out = []
    for name, trials in run.results.items():
        bad = [r for r in trials if not r.health.valid]
        noisy = [r for r in trials if r.env.get("noisy")]
        if bad:
            reasons = "; ".join(bad[0].health.reasons) or "see its health verdict"
            out.append(f"{label}: {name} is INVALID in {len(bad)} of {len(trials)} trial(s) "
                       f"({reasons}): its figures may describe the generator, not the "
                       f"system; {RERUN}")
        elif noisy:
            out.append(f"{label}: {name} ran on a noisy machine in {len(noisy)} of "
                       f"{len(trials)} trial(s); {RERUN}")
    return out


def display_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The comparison as text columns, what the CLI prints and the HTML page shows."""
    rows = []
    for r in frame.itertuples(index=False):
        too_few = r.verdict == TOO_FEW
        rows.append({"variant": r.variant, "figure": r.figure,
                     "A [lo, hi]": "too few samples" if too_few and math.isnan(r.a)
                     else format_value(r.a, r.a_lo, r.a_hi, r.figure),
                     "B [lo, hi]": "too few samples" if too_few and math.isnan(r.b)
                     else format_value(r.b, r.b_lo, r.b_hi, r.figure),
                     "B/A": "-" if math.isnan(r.ratio) else f"{r.ratio:.2f}x",
                     "verdict": r.verdict})
    return pd.DataFrame(rows)


__all__ = ["RUN_FORMAT", "Run", "caveats", "combine_runs", "compare_runs", "display_frame",
           "load_run", "save_run"]
