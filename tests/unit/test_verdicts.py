"""Every verdict rule, once (``lootlab.experiments.verdicts``): each rule against a brute-force
oracle, and no other module keeps a copy of a rule or its constant."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lootlab.experiments import verdicts

PACKAGE = Path(verdicts.__file__).parents[1]
finite = st.floats(0.001, 1e4)
maybe = st.one_of(st.just(math.nan), finite)


@settings(max_examples=200, deadline=None)
@given(p99=finite, lo=maybe, hi=maybe, ci_lo=maybe, ci_hi=maybe)
def test_the_band_spans_the_figure_its_trials_and_its_interval(p99, lo, hi, ci_lo, ci_hi):
    row = {"p99_ms": p99, "p99_ms_lo": lo, "p99_ms_hi": hi, "p99_ci_low_ms": ci_lo,
           "p99_ci_high_ms": ci_hi}
    known = [v for v in (p99, lo, hi, ci_lo, ci_hi) if not math.isnan(v)]
    low_side = [v for v in (p99, lo, ci_lo) if not math.isnan(v)]
    high_side = [v for v in (p99, hi, ci_hi) if not math.isnan(v)]
    assert verdicts.band(row) == (min(low_side), max(high_side))
    assert min(known) <= verdicts.band(row)[0] <= p99 <= verdicts.band(row)[1] <= max(known)


@settings(max_examples=200, deadline=None)
@given(a=st.tuples(finite, finite), b=st.tuples(finite, finite),
       factor=st.floats(1.0, 2.0))
def test_changed_means_intervals_apart_and_a_ratio_beyond_the_factor(a, b, factor):
    (alo, ahi), (blo, bhi) = sorted(a), sorted(b)
    ratio = ((blo + bhi) / 2) / ((alo + ahi) / 2)
    overlap = any(alo <= x <= ahi for x in (blo, bhi)) or any(blo <= x <= bhi
                                                               for x in (alo, ahi))
    small = 1 / factor <= ratio <= factor
    want = verdicts.WITHIN if overlap or small else verdicts.CHANGED
    assert verdicts.noise_verdict(alo, ahi, blo, bhi, ratio, factor) == want
    assert verdicts.separated({"p99_ms": (alo + ahi) / 2, "p99_ci_low_ms": alo,
                               "p99_ci_high_ms": ahi},
                              {"p99_ms": (blo + bhi) / 2, "p99_ci_low_ms": blo,
                               "p99_ci_high_ms": bhi}) == (not overlap)


@settings(max_examples=300, deadline=None)
@given(n=st.integers(0, 100_000), p=st.sampled_from([50.0, 90.0, 99.0, 99.9, 99.99]))
def test_too_few_samples_is_fewer_than_ten_above_the_percentile(n, p):
    oracle = n * (100 - p) / 100 < 10 - 1e-9         # the tail above p: n (1 - p/100)
    assert verdicts.too_few_samples({"n": n}, p) == oracle
    key = "p" + f"{p:g}".replace(".", "")
    # a row that says it has enough samples is taken at its word, and a row without n is
    # taken as it is
    assert verdicts.too_few_samples({"n": n, f"{key}_enough": True}, p) is False
    assert verdicts.too_few_samples({}, p) is False


def test_fit_over_cannot_tell_and_saturated():
    row = {"p99_ms": 40.0, "p99_ci_low_ms": 35.0, "p99_ci_high_ms": 45.0, "valid": True,
           "n": 5000, "offered_per_s": 100.0, "achieved_per_s": 100.0}
    assert verdicts.fit(row, 45.0)[0] == "fits"
    assert verdicts.fit(row, 34.9) == ("over", "p99 at least 35 ms")
    assert verdicts.fit(row, 40.0)[1] == "p99 band 35-45 ms straddles the budget"
    assert verdicts.fit({**row, "n": 500}, 100.0) == ("cannot tell",
                                                      "too few samples (n=500)")
    assert verdicts.fit({**row, "saturated": True, "capacity_per_s": 83.4}, 100.0) == (
        "saturated", "saturated at 83/s: offered 100/s")
    assert verdicts.meets_target(row, 40.0) and not verdicts.meets_target(row, 39.9)
    assert not verdicts.meets_target({**row, "achieved_per_s": 98.0}, 100.0)   # 0.99 kept


OLD_CONSTANTS = {"MIN_TAIL", "MIN_ABOVE", "FACTOR", "WITHIN", "CHANGED", "TOO_FEW",
                 "KEEP_UP", "TARGET_KEEP_UP"}
RULES = {"band", "p99_band", "separated", "few_samples", "too_few_samples", "fit",
         "step_change", "saturated", "saturation_rate", "saturated_at", "saturated_text",
         "rate_text", "kept_up", "meets_target", "noise_verdict", "intervals_apart",
         "_enough", "_kept_up"}


def _definitions(path: Path) -> tuple[set[str], set[str]]:
    """(module-level constants assigned, functions defined anywhere) in one source file."""
    tree = ast.parse(path.read_text())
    names = {t.id for node in tree.body if isinstance(node, (ast.Assign, ast.AnnAssign))
             for t in (node.targets if isinstance(node, ast.Assign) else [node.target])
             if isinstance(t, ast.Name)}
    names |= {t.id for node in tree.body if isinstance(node, ast.Assign)
              for tup in node.targets if isinstance(tup, ast.Tuple)
              for t in tup.elts if isinstance(t, ast.Name)}
    funcs = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
    return names, funcs


def test_each_rule_and_its_constant_is_defined_once():
    """The load generator judges runs as they end (``loadgen.health``, ``serverload``: is a
    server's CPU saturated); every rule that reads rows afterwards is ``verdicts``'."""
    homes: dict[str, list[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        names, funcs = _definitions(path)
        where = str(path.relative_to(PACKAGE.parent))
        judges_runs = path.parent.name == "loadgen"
        for name in (names & OLD_CONSTANTS) | (set() if judges_runs else funcs & RULES):
            homes.setdefault(name, []).append(where)
    # the sample rule's threshold lives with the estimator that refuses to compute below
    # it (the layer under the experiments); every verdict reads it from there
    assert homes.pop("MIN_TAIL") == ["lootlab/loadgen/uncertainty.py"]
    assert verdicts.MIN_TAIL == 10
    for name, files in homes.items():
        assert files == ["lootlab/experiments/verdicts.py"], (name, files)


@pytest.mark.parametrize("module", ["lootlab.experiments.comparison", "lootlab.plots.headline",
                                    "lootlab.experiments.decision", "lootlab.report.story_text"])
def test_the_old_copies_are_gone(module):
    import importlib

    mod = importlib.import_module(module)
    for name in ("MIN_TAIL", "MIN_ABOVE", "p99_band", "few_samples", "band", "_enough",
                 "_kept_up", "WITHIN", "CHANGED"):
        got = getattr(mod, name, None)
        assert got is None or got is getattr(verdicts, name, object()), (module, name)
