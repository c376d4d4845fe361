"""One unit rule and one number format for every page, the index and the CLI.

A reader who sees 30,100 us on one page, 30.1 ms on the next and "95.0" on the index where
the notebook page says "95" has to convert in their head; so the report's tables
(``report.cells`` / ``report.format``), the index page, the summaries and the CLI
(``cli._util.readable_times``) all go through ``loadgen.units``: the same values give the
same unit and the same text whichever path shows them.  And within a table a duration has
one unit, never p50 in us beside p99 in ms.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lootlab.cli._util import readable_times
from lootlab.loadgen import units as U
from lootlab.report import cells
from lootlab.report import format as F
from lootlab.report.front_page import _cell
from lootlab.report.rebuild import rebuild_rows
from lootlab.report.summary import _fmt

ROOT = Path(__file__).parents[2]
durations_us = st.floats(min_value=0.05, max_value=5e7, allow_nan=False)
columns_us = st.lists(st.lists(durations_us, min_size=1, max_size=6), min_size=1, max_size=4)
reals = st.floats(min_value=-1e9, max_value=1e9, allow_nan=False, allow_infinity=False)


def header_units(headers) -> set[str]:
    return {m.group(1) for h in headers for m in [re.search(r"\((us|ms|s)\)$", str(h))] if m}


# --- one unit ---------------------------------------------------------------------------

@settings(deadline=None, max_examples=60)
@given(columns_us, st.sampled_from(["us", "ms", "s"]))
def test_the_report_and_the_cli_choose_the_same_unit_for_the_same_values(cols, source):
    scale = {"us": 1.0, "ms": 1e3, "s": 1e6}[source]
    given_in_source = [[v / scale for v in col] for col in cols]
    report_unit, factor = cells.time_unit(given_in_source, source)
    cli_unit = U.pick_unit(*given_in_source, source=source, log=True)
    assert report_unit == cli_unit.name
    assert factor == pytest.approx(cli_unit.scale(1.0, source))
    # and the CLI's table of the same columns says that unit in its column names
    n = max(len(c) for c in cols)
    frame = pd.DataFrame({f"c{i}_us": c + [math.nan] * (n - len(c)) for i, c in enumerate(cols)})
    renamed = readable_times(frame).columns
    assert {str(c).rsplit("_", 1)[1] for c in renamed} == {report_unit}


@settings(deadline=None, max_examples=60)
@given(columns_us)
def test_a_table_of_durations_has_one_unit_and_reads_as_the_cli_prints_it(cols):
    n = max(len(c) for c in cols)
    padded = [c + [math.nan] * (n - len(c)) for c in cols]
    names = ["p50_us", "p99_us", "max_us", "send_lag_p99_us"][:len(cols)]
    frame = pd.DataFrame(dict(zip(names, padded)))
    shown = F.table(frame).frame
    assert len(header_units(shown.columns)) == 1, list(shown.columns)
    cli = readable_times(frame)
    for name, head, cli_name in zip(names, shown.columns, cli.columns):
        assert head.endswith(f"({cli_name.rsplit('_', 1)[1]})")
        for page, terminal in zip(shown[head], cli[cli_name]):
            assert page == terminal or (page == F.NA and terminal == "–")


def test_durations_in_different_source_units_share_the_table_unit():
    frame = pd.DataFrame({"p50_us": [180.0, 2_400.0], "p99_ms": [1.5, 31.0],
                          "pause_max_ms": [0.05, 30.1], "t_s": [0.0, 59.0]})
    shown = F.table(frame).frame
    durations = [h for h in shown.columns if not h.startswith("t ")]
    assert len(header_units(durations)) == 1, durations
    unit = header_units(durations).pop()
    back = {"us": 1.0, "ms": 1e3, "s": 1e6}[unit]
    got = float(shown[durations[0]][1].replace(",", "")) * back
    assert got == pytest.approx(2_400.0, rel=5e-3)
    # a column that places a row in time is no duration: it keeps its own unit
    assert "t (s)" in shown.columns


class _Rebuild:
    def __init__(self, p50, p99, top):
        self.row = {"source": "s3", "offered_per_s": 500.0, "achieved_per_s": 499.0,
                    "requests": 1000, "errors": 0, "timeouts": 0, "p50_ms": p50,
                    "p99_ms": p99, "max_ms": top, "swaps": 3, "generations_seen": 4}

    def summary(self):
        return self.row


@settings(deadline=None, max_examples=40)
@given(st.lists(st.tuples(*[st.floats(min_value=1e-3, max_value=5e3)] * 3), min_size=1,
                max_size=4))
def test_the_rebuild_table_never_puts_p50_in_us_beside_max_in_ms(runs):
    rows = rebuild_rows([_Rebuild(*sorted(r)) for r in runs])
    times = [k for k in rows[0] if re.match(r"(p50|p99|max) \(", k)]
    assert len(times) == 3 and len(header_units(times)) == 1, times


# --- one number format --------------------------------------------------------------------

@settings(deadline=None)
@given(reals)
def test_every_path_writes_a_number_as_the_cli_does(x):
    want = U.plain_number(x)
    assert cells.number(x) == want                      # a notebook page's table
    assert _cell(x) == (want, True)                      # the index page
    assert _fmt(x) == want                               # a summary's plain table
    assert F.table([{"value": x}]).frame.iloc[0, 0] == want


def test_the_formats_that_disagreed_now_agree():
    for x in (95.0, 0.03, 0.0300, 40.0, 1_767_000.4):
        assert cells.number(x) == _cell(x)[0] == U.plain_number(x)
    assert cells.number(95.0) == "95" and cells.number(0.03) == "0.03"
    assert cells.number(1_767_321) == "1,767,321"       # a count is never rounded


# --- plurals by count ---------------------------------------------------------------------

PLURALS = {"core": "cores", "sender": "senders", "process": "processes", "trial": "trials",
           "box": "boxes", "match": "matches"}


@given(st.one_of(st.integers(0, 10**6), st.floats(0, 1e6, allow_nan=False)),
       st.sampled_from(sorted(PLURALS)))
def test_plural_follows_the_count(n, word):
    count, said = U.plural(n, word).split(" ", 1)
    assert float(count.replace(",", "")) == pytest.approx(n, rel=1e-5, abs=1e-9) or n > 1e5
    assert said == (word if n == 1 else PLURALS[word])


def test_cpu_limit_1_reads_1_core():
    from lootlab.report.conditions import cpu_words

    assert cpu_words({"cpu_limit": 1}) == "CPU limit 1 core"
    assert cpu_words({"cpu_limit": 0.5}) == "CPU limit 0.5 cores"
    assert U.plural(2, "process") == "2 processes" and U.plural(1, "process") == "1 process"


def test_the_notebooks_plural_is_the_one_rule():
    import lootlab.notebook

    assert lootlab.notebook.plural is U.plural


COUNTED = ["lootlab/loadgen/health.py", "lootlab/loadgen/workers.py",
           "lootlab/loadgen/limits.py", "lootlab/loadgen/tcpstats.py",
           "lootlab/conditions/cgroup.py", "lootlab/cli/query.py", "lootlab/report/summary.py",
           "lootlab/report/pipeline.py", "lootlab/experiments/bench.py", "lootlab/notebook.py"]


@pytest.mark.parametrize("path", COUNTED)
def test_no_counted_word_says_s_in_brackets(path):
    """"3 sender(s)": a count printed beside a word that hedges its plural."""
    source = (ROOT / path).read_text()
    hedged = re.findall(r"\}\"?\s*\n?\s*f?\"?\s*[A-Za-z-]+\((?:s|es)\)", source)
    assert hedged == [], hedged


@pytest.mark.parametrize("path", ["lootlab/notebook.py", "lootlab/loadgen/tcpstats.py"])
def test_no_module_keeps_its_own_plural(path):
    assert not re.search(r"^def _?plural\(", (ROOT / path).read_text(), re.MULTILINE)


@settings(deadline=None, max_examples=30)
@given(st.integers(0, 5), st.integers(0, 5))
def test_health_counts_errors_and_timeouts_by_count(failed, timeouts):
    from lootlab.loadgen.health import judge

    counts = {"measured": 10, "ok": 10 - failed, "failed": failed, "timeouts": timeouts,
              "dropped": 0}
    health = judge(open_loop=True, counts=counts, scheduled=10, busy=[0.05], max_busy=0.97,
                   offered_rate=200.0, achieved_rate=200.0, cpu_cores=0.05,
                   send_lag_p99_us=0.0, generator_lag_p99_us=0.0, latency_p99_us=0.0,
                   warmup=0.0, first_error="", blocked=[0.04], process_cpu=[0.05], cores=2,
                   processes=1 + failed, local_server="127.0.0.1:1")
    said = next((w for w in health.warnings if "kept in the errors histogram" in w), "")
    if failed or timeouts:
        assert said.startswith(f"{U.plural(failed, 'error')}, {U.plural(timeouts, 'timeout')}")
    assert "(s)" not in " ".join(health.warnings + health.reasons)
