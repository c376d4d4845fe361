"""The story's words and its waterfall follow one rule, and its verdict reads as an answer.

The largest gain the words name is the largest drop that stands clear of trial-to-trial
noise, checked against a brute-force oracle of that rule; every drop the waterfall draws
larger than it is hollow and says why; the answer is one to three sentences the index leads
with; every sentence starts with a capital; and what INVALID means is said the same way by
the index's banner and by the sentences about INVALID runs.
"""

from __future__ import annotations

import html

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from lootlab.experiments.story import STEPS, WRITEUP
from lootlab.experiments.verdicts import INVALID_MEANS, MIN_TAIL
from lootlab.plots.steps import step_chart
from lootlab.report.front_page import answer_and_details, sentences
from lootlab.report.story_text import story_verdict, verdict

NAMES = list(STEPS)


def _steps(p99, spread, valid, n, saturated=None, upper=None) -> pd.DataFrame:
    """A steps frame in ``story.summarize_steps``' shape: each p99 with its trial range
    ``p99 * (1 -+ spread)`` and no interval beyond it."""
    p99 = np.asarray(p99, float)
    spread = np.asarray(spread, float)
    k = len(p99)
    return pd.DataFrame({
        "variant": NAMES[:k], "change": [STEPS[v] for v in NAMES[:k]], "trials": 3,
        "pooled": True, "n": n, "p50_ms": p99 / 3, "p50_ms_lo": p99 / 3, "p50_ms_hi": p99 / 3,
        "p99_ms": p99, "p99_ms_lo": p99 * (1 - spread), "p99_ms_hi": p99 * (1 + spread),
        "p99_ci_low_ms": np.nan, "p99_ci_high_ms": np.nan, "valid": valid,
        "invalid_trials": [0 if v else 3 for v in valid],
        "upper_bound": upper if upper is not None else [False] * k,
        "saturated": saturated if saturated is not None else [False] * k,
        "offered_per_s": 100.0, "achieved_per_s": 100.0, "requests": 3000, "errors": 0,
        "bottleneck": "none", "writeup_p99_ms": [WRITEUP["p99_ms_by_step"].get(v, np.nan)
                                                 for v in NAMES[:k]]})


def _oracle_named_gain(steps: pd.DataFrame) -> tuple[float, str] | None:
    """The rule written out by hand: a drop between neighbours is named when neither is
    saturated, both are valid with at least MIN_TAIL * 100 samples, and their trial ranges
    do not touch; the largest such drop, or None."""
    best = None
    for i in range(1, len(steps)):
        a, b = steps.iloc[i - 1], steps.iloc[i]
        ok = (not a["saturated"] and not b["saturated"] and a["valid"] and b["valid"]
              and a["n"] >= MIN_TAIL * 100 and b["n"] >= MIN_TAIL * 100
              and (a["p99_ms_hi"] < b["p99_ms_lo"] or b["p99_ms_hi"] < a["p99_ms_lo"]))
        drop = a["p99_ms"] - b["p99_ms"]
        if ok and drop > 0 and (best is None or drop > best[0]):
            best = (drop, b["variant"])
    return best


steps_strategy = st.integers(2, 5).flatmap(lambda k: st.tuples(
    st.lists(st.floats(0.1, 200.0), min_size=k, max_size=k),
    st.lists(st.sampled_from([0.01, 0.1, 0.4]), min_size=k, max_size=k),
    st.lists(st.booleans(), min_size=k, max_size=k),
    st.lists(st.sampled_from([300, 3600]), min_size=k, max_size=k),
    st.lists(st.sampled_from([False, False, False, True]), min_size=k, max_size=k)))


@given(steps_strategy)
@settings(max_examples=60, deadline=None)
def test_the_named_gain_is_the_largest_drop_clear_of_noise(spec):
    steps = _steps(*spec)
    answer, _ = story_verdict(steps)
    text = " ".join(answer)
    best = _oracle_named_gain(steps)
    if best is None:
        assert "stands clear of trial-to-trial noise was" not in text
    else:
        assert f"stands clear of trial-to-trial noise was {best[1]} (" in text
        g = best[0]
        said = f"{g:.2f} ms" if g < 10 else f"{g:.1f} ms" if g < 100 else f"{g:.0f} ms"
        assert f"p99 {said} lower than the step before" in text


def _waterfall_bars(steps: pd.DataFrame) -> dict[int, tuple[bool, float]]:
    """The waterfall's change bars by step: (hollow?, height), the first step's left out."""
    fig = step_chart(steps)
    wf = fig.axes[1]
    bars = {}
    for patch in wf.patches:
        i = round(patch.get_x() + patch.get_width() / 2)
        if i == 0:
            continue
        hollow = bool(patch.get_hatch()) and patch.get_facecolor()[:3] == (1.0, 1.0, 1.0)
        bars[i] = (hollow, patch.get_height())
    return bars


@given(steps_strategy)
@settings(max_examples=15, deadline=None)
def test_the_waterfall_draws_hollow_exactly_the_changes_the_words_do_not_name(spec):
    steps = _steps(*spec)
    bars = _waterfall_bars(steps)
    best = _oracle_named_gain(steps)
    for i, (hollow, height) in bars.items():
        a, b = steps.iloc[i - 1], steps.iloc[i]
        named = not (a["saturated"] or b["saturated"]) and a["valid"] and b["valid"] \
            and min(a["n"], b["n"]) >= MIN_TAIL * 100 \
            and (a["p99_ms_hi"] < b["p99_ms_lo"] or b["p99_ms_hi"] < a["p99_ms_lo"])
        assert hollow == (not named), (i, hollow, named)
        # no solid drop is larger than the gain the words name
        if not hollow and b["p99_ms"] < a["p99_ms"]:
            assert best is not None and height <= best[0] + 1e-9
    # a saturated step's change has no bar at all (its p99 is a queue's)
    for i in range(1, len(steps)):
        if steps["saturated"].iloc[i] or steps["saturated"].iloc[i - 1]:
            assert i not in bars


def test_a_larger_drop_drawn_but_not_named_is_said_with_why():
    # resumed -> pooled drops 30 ms but pooled's run is INVALID; packed -> mmap drops 8 ms clear
    steps = _steps([50.0, 45.0, 15.0, 10.0, 2.0], [0.01] * 5,
                   [True, True, False, True, True], 3600)
    text = " ".join(story_verdict(steps)[0])
    assert "stands clear of trial-to-trial noise was mmap" in text
    assert "the larger drop drawn at grpc-tls-pooled, 30.0 ms, is not named: it comes from " \
           "an INVALID run" in text
    fig = step_chart(steps)
    labels = [t.get_text() for t in fig.axes[1].texts]
    assert "-30\nnot named:\nINVALID run" in labels


@given(steps_strategy)
@settings(max_examples=40, deadline=None)
def test_every_sentence_starts_with_a_capital_and_the_answer_leads_the_index(spec):
    steps = _steps(*spec)
    answer, details = story_verdict(steps)
    assert 1 <= len(sentences(" ".join(answer))) <= 3
    for text in [*answer, *details]:
        for sentence in sentences(text):
            assert sentence[0].isupper(), sentence
            assert sentence.rstrip(")").endswith((".", ":")) or sentence.endswith("."), sentence
    lead, more = answer_and_details(verdict(steps))
    assert lead == " ".join(answer) and more == details


def test_a_verdict_published_before_the_answer_paragraph_still_leads_with_three_sentences():
    lead, more = answer_and_details("One. Two. Three. Four. Five.")
    assert lead == "One. Two. Three." and more == ["Four.", "Five."]


def test_invalid_means_the_same_in_the_banner_and_in_the_sentences():
    """The banner defines INVALID once (``verdicts.INVALID_MEANS``); a step INVALID only
    because the generator's own lateness may make up its p99 is one of those reasons, and
    the sentence about it never says the generator "kept its schedule" as if INVALID
    meant only a schedule not kept."""
    from pathlib import Path

    from lootlab.report.environment import Environment
    from lootlab.report.execute import NotebookRun
    from lootlab.report.front_page import render_index

    assert "sent late itself" in INVALID_MEANS and "schedule" in INVALID_MEANS
    steps = _steps([40.0, 30.0, 12.0, 8.0, 0.5], [0.01] * 5,
                   [True, True, True, True, False], 3600, upper=[False] * 4 + [True])
    text = verdict(steps)
    assert "kept its schedule" not in text
    assert "its own lateness may make up most of the p99" in text
    summary = {"title": "Steps", "columns": ["step", "run"], "verdict": text,
               "rows": [{"step": "mmap", "run": "INVALID (3 of 3)"}]}
    run = NotebookRun(name="01-story", source=Path("01-story.ipynb"),
                      executed=Path("01-story.out.ipynb"), seconds=1.0, summary=summary)
    env = Environment(cpu="cpu", cores=2, usable_cores=2, memory_gib=1.0, python="3.11",
                      platform="linux", packages={}, git_commit="abc", size="quick",
                      date="2026-01-01", page_cache="warm")
    page = html.unescape(render_index([run], env, out_dir=Path("."), total_seconds=1.0))
    assert f"INVALID ({INVALID_MEANS})" in page
    assert "could not keep its schedule)" not in page


def test_tails_are_one_short_detail_naming_each_kind_of_kernel_event_once():
    steps = _steps([40.0, 30.0, 12.0, 8.0, 0.5], [0.01] * 5, [True] * 5, 3600)
    steps["tail_causes"] = ""
    cpu = ("CPU starvation: runnable threads waited for a core 23% of the run (other work): "
           "stalls follow")
    resent = "9 segments retransmitted (0.75% of 1,200 requests) (fast retransmit)"
    steps.loc[0, "tail_causes"] = f"{cpu}; {resent}; {cpu}"
    steps.loc[0, "p50_ms"] = 5.0                   # p99 40 ms: a tail (8x its p50)
    _, details = story_verdict(steps)
    tails = [d for d in details if d.startswith("Tails beside")]
    assert tails == [("Tails beside what the kernel saw during the runs: grpc-tls-fresh (p99 "
                      "40.0 ms against a p50 of 5.00 ms): CPU starvation, 9 segments "
                      "retransmitted.")]
