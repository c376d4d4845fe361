"""The comparison of two run directories, figure by figure (what ``lootlab compare`` calls).

A run directory (``lootlab.experiments.rundir``) holds parts, one per notebook of a report
or one ``bench`` part for ``lootlab bench --out``; results with the same name in one part
are repeated trials of one measurement.  ``compare_runs`` pairs what two runs share by
name:

* **latency** (p50, p99, p99.9) and achieved rate of every stored LoadResult: both values
  with their 95 % intervals, the ratio B/A and a verdict.  A single run's latency interval
  comes from the histogram's order statistics (``LoadResult.percentile_ci_us``: binomial
  ranks, distribution-free, but it assumes independent samples, which latency is not:
  treat it as a lower bound on the uncertainty).  Where a run holds repeated trials, its
  value is the trials pooled and its interval runs from the lowest trial's lower bound to
  the highest trial's upper bound, so a difference is called only when it exceeds what the
  trials disagreed by.  A percentile with too few samples above it is "too few samples";
* **profile** shares by bucket and **memory** per operation (``compare_shares``).

The verdict rule is one (``verdicts.noise_verdict``): "changed" when the intervals are
apart and the ratio is beyond ``FACTOR`` (10 %, as asv's ``compare``: two runs of the same
code on one busy machine drift by more than their intervals), else "within noise".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import LootlabError
from ..loadgen.results import LoadResult
from ..loadgen.runenv import environment
from ..loadgen.units import plural
from . import rundir
from .compare_shares import compare_profiles_and_memory
from .verdicts import FACTOR, TOO_FEW, enough_samples, noise_verdict

PERCENTILES = (50.0, 99.0, 99.9)
COLUMNS = ("kind", "figure", "variant", "a", "a_lo", "a_hi", "b", "b_lo", "b_hi", "ratio",
           "verdict", "n_a", "n_b", "trials_a", "trials_b")
RERUN = "rerun on a quieter machine, or lower the rate"
#: The part ``lootlab bench --out`` stores its results in.
BENCH_PART = "bench"


@dataclass
class Run:
    """A loaded run directory: its manifest (``meta``) and its LoadResults by name."""

    path: Path
    meta: dict[str, Any]
    results: dict[str, list[LoadResult]] = field(default_factory=dict)
    stored: rundir.Run | None = field(default=None, repr=False)


def save_run(directory: str | Path, results: dict[str, LoadResult | list[LoadResult]], *,
             what: str, params: dict[str, Any] | None = None) -> Path:
    """Write ``results`` (name -> one result, or a list of trials) as a run directory of
    one part, ``bench``.  ``what`` says in one line what ran (the command); ``params`` its
    parameters."""
    stored = rundir.create(directory, what=what, params=params, env=environment())
    part = stored.part(BENCH_PART, params=params)
    for name, value in results.items():
        part.put_results(name, value)
    return Path(directory)


def load_run(directory: str | Path) -> Run:
    """A run directory, or a bare saved LoadResult as a one-result run; one-line errors for
    anything else (a run of another schema version among them)."""
    path = Path(directory)
    if path.is_dir() and (path / "summary.json").exists():    # one LoadResult on its own
        res = LoadResult.load(path)
        return Run(path, {"what": "a saved load result", "env": res.env},
                   {res.variant: [res]})
    stored = rundir.open_run(path)
    parts = []
    for name in stored.parts:
        try:
            parts.append(rundir.load_part(path / rundir.slug(name)))
        except rundir.RunDirError:
            continue                      # a notebook that failed before it stored anything
    results: dict[str, list[LoadResult]] = {}
    for part in parts:
        for name in part.names("results"):
            key = name if len(parts) == 1 else f"{part.name}: {name}"
            results[key] = part.results(name)
    if not results and not any(p.names("stacks") or p.names("rows") for p in parts):
        raise LootlabError(f"{path}: the run holds nothing to compare")
    return Run(path, stored.manifest, results, stored)


def _figure(p: float) -> str:
    return f"p{p:g}_us"


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
            if not enough_samples(n, p):
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
    from ..loadgen import hist

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
    return noise_verdict(a.lo, a.hi, b.lo, b.hi, ratio, factor)


def compare_runs(run_a: Run | str | Path, run_b: Run | str | Path, *,
                 confidence: float = 0.95, factor: float = FACTOR) -> pd.DataFrame:
    """One row per (kind, name, figure): both values with intervals, ratio B/A, verdict.

    Latency values are microseconds, ``achieved_rate`` requests/s, a profile ``share:`` a
    fraction of the loop's samples, memory figures their own units (per op, MiB).
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
            rows.append({"kind": "latency", "figure": figure, "variant": name, "a": va,
                         "a_lo": sa.lo if sa else math.nan, "a_hi": sa.hi if sa else math.nan,
                         "b": vb, "b_lo": sb.lo if sb else math.nan,
                         "b_hi": sb.hi if sb else math.nan, "ratio": ratio,
                         "verdict": _verdict(sa, sb, ratio, factor), "n_a": sa.n if sa else 0,
                         "n_b": sb.n if sb else 0, "trials_a": sa.trials if sa else 0,
                         "trials_b": sb.trials if sb else 0})
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    if a.stored is not None and b.stored is not None:
        others = compare_profiles_and_memory(a.stored, b.stored, factor=factor,
                                             verdict=_figure_verdict)
        if not others.empty:
            frame = pd.concat([frame, others[list(COLUMNS)]], ignore_index=True)
    return frame


def _figure_verdict(a: float, a_lo: float, a_hi: float, b: float, b_lo: float, b_hi: float,
                    ratio: float, factor: float) -> str:
    """The latency figures' rule for a profile share or a memory figure."""
    if any(math.isnan(x) for x in (a_lo, a_hi, b_lo, b_hi)):
        return "no data"
    return noise_verdict(a_lo, a_hi, b_lo, b_hi, ratio, factor)


def format_value(value: float, lo: float, hi: float, figure: str) -> str:
    """``1,234.5 [1,200.0, 1,300.1]``, a share as ``12.3% [11.0%, 13.6%]``, a figure with
    no interval (memory) alone; a missing value reads as ``-``."""
    if math.isnan(value):
        return "-"
    if figure.startswith("share:"):
        return f"{value:.1%} [{lo:.1%}, {hi:.1%}]"
    digits = 0 if figure == "achieved_rate" else 1 if abs(value) >= 10 else 3
    if lo == hi == value:
        return f"{value:,.{digits}f}"
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
            out.append(f"{label}: {name} is INVALID in {len(bad)} of "
                       f"{plural(len(trials), 'trial')} "
                       f"({reasons}): its figures may describe the generator, not the "
                       f"system; {RERUN}")
        elif noisy:
            out.append(f"{label}: {name} ran on a noisy machine in {len(noisy)} of "
                       f"{plural(len(trials), 'trial')}; {RERUN}")
    return out


def display_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The comparison as text columns, what the CLI prints and the HTML page shows."""
    rows = []
    for r in frame.itertuples(index=False):
        too_few = r.verdict == TOO_FEW
        rows.append({"kind": r.kind, "variant": r.variant, "figure": r.figure,
                     "A [lo, hi]": "too few samples" if too_few and math.isnan(r.a)
                     else format_value(r.a, r.a_lo, r.a_hi, r.figure),
                     "B [lo, hi]": "too few samples" if too_few and math.isnan(r.b)
                     else format_value(r.b, r.b_lo, r.b_hi, r.figure),
                     "B/A": "-" if math.isnan(r.ratio) else f"{r.ratio:.2f}x",
                     "verdict": r.verdict})
    return pd.DataFrame(rows)


__all__ = ["BENCH_PART", "Run", "caveats", "compare_runs", "display_frame", "load_run",
           "save_run"]
