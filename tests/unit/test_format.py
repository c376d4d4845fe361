"""Tables for people (``lootlab.report.format``) and notebook progress
(``lootlab.report.bars``): units in names, numbers to their precision, badges, one line
left behind by a finished bar."""

from __future__ import annotations

import io
import math
import re
import sys
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lootlab.report import format as F
from lootlab.report import bars as P

finite = st.floats(min_value=-1e12, max_value=1e12, allow_nan=False, allow_infinity=False)


@given(finite)
def test_number_never_writes_an_exponent_and_keeps_three_figures(x):
    text = F.number(x)
    assert "e" not in text.lower()
    back = float(text.replace(",", ""))
    if x != 0:                              # three significant figures, as the CLI prints
        assert abs(back - x) <= 0.5 * 10 ** (math.floor(math.log10(abs(x))) - 2) * (1 + 1e-9)
        digits = re.sub(r"^[-0.,]*", "", text).replace(".", "").replace(",", "")
        assert len(digits.rstrip("0")) <= 3 and not (text.count(".") and text.endswith("0"))


def test_number_examples():
    assert F.number(1.767e6) == "1,770,000" and F.number(0.1234) == "0.123"
    assert F.number(40.0) == "40" and F.number(1767321) == "1,767,321"   # an int is exact
    assert F.number(math.nan) == F.NA and F.number(None) == F.NA and F.number(0.0) == "0"
    assert F.round_sig(0.0012345) == 0.00123 and F.round_sig(math.nan) is None


@given(st.lists(st.floats(min_value=1e-3, max_value=1e7), min_size=1, max_size=20))
def test_time_unit_puts_the_middle_of_the_range_between_1_and_1000(values_ms):
    unit, factor = F.time_unit(values_ms, "ms")
    middle = math.sqrt(min(values_ms) * max(values_ms)) * factor
    assert unit in ("us", "ms", "s")
    assert 1 <= middle * (1 + 1e-9) and (middle < 1000 or unit == "s")


def test_time_unit_rejects_an_unknown_unit():
    with pytest.raises(ValueError, match="time unit must be one of us, ms, s, not 'min'"):
        F.time_unit([1.0], "min")


def test_column_names_get_words_and_units():
    frame = pd.DataFrame({"step": ["mmap", "grpc"], "p99_ms": [0.164, 0.5],
                          "p50_ms": [40.0, 2.0], "achieved_per_s": [99.756, 200.0],
                          "send_lag_p99_us": [2.5e6, 1.2e6], "VmHWM_MiB": [100.0, 120.0],
                          "pause_max_ms": [1.5, 2.5], "self_share": [0.1234, 0.0],
                          "n": [300, 1_767_321]})
    t = F.table(frame)
    # durations: one unit for the whole table, from the range of all of them
    assert list(t.frame.columns) == ["step", "p99 (ms)", "p50 (ms)", "achieved (req/s)",
                                     "send lag p99 (ms)", "VmHWM, peak RSS (MiB)",
                                     "pause max (ms)", "self share", "samples"]
    assert list(t.frame["p99 (ms)"]) == ["0.164", "0.5"]
    assert list(t.frame["achieved (req/s)"]) == ["99.8", "200"]
    assert list(t.frame["send lag p99 (ms)"]) == ["2,500", "1,200"]
    assert list(t.frame["self share"]) == ["12.3 %", "0 %"]
    assert list(t.frame["samples"]) == ["300", "1,767,321"]
    assert "e+" not in t.html and "_ms" not in t.html and ">0<" not in t.html.split("tbody")[0]


def test_no_index_column_but_a_named_index_is_a_column():
    rows = F.table(pd.DataFrame({"x": [1, 2]}, index=[5, 6]).rename_axis("variant"))
    assert list(rows.frame.columns) == ["variant", "x"]
    plain = F.table([{"a": 1}, {"a": 2}])
    assert list(plain.frame.columns) == ["a"] and plain.html.count("<tr>") == 3


def test_health_is_a_badge_with_its_reasons_in_details():
    frame = pd.DataFrame({"variant": ["a", "b"], "valid": [True, False],
                          "health": ["ok", "the generator sent late: p99 may include 62%"]})
    t = F.table(frame)
    assert list(t.frame.columns) == ["variant", "run"]          # health folded into the badge
    assert "ll-ok'>valid</span>" in t.html
    bad = t.html.split("<tr>")[-1]
    assert "<details" in bad and "ll-bad'>INVALID</span> 1 reason" in bad
    assert "<li>the generator sent late: p99 may include 62%</li>" in bad
    assert list(t.frame["run"]) == [
        "valid", "INVALID: the generator sent late: p99 may include 62%"]
    assert F.run_html("valid; server saturated").endswith(
        "<span class='ll-small'>server saturated</span>")
    assert "ll-bad" in F.run_html("INVALID (1 of 3)")


def test_cells_are_escaped_and_long_text_wraps():
    evil = "<script>alert(1)</script> " + "word " * 20
    t = F.table([{"note": evil, "x": math.nan}], title="<b>", note="a & b")
    assert "<script>" not in t.html and "&lt;script&gt;" in t.html
    assert "<caption>&lt;b&gt;</caption>" in t.html and "a &amp; b" in t.html
    assert "class='ll-text'" in t.html and f">{F.NA}<" in t.html
    assert t._repr_html_() == t.html and "note" in repr(t)


def test_bad_input_is_named():
    with pytest.raises(TypeError, match="DataFrame or a list of row dicts, not str"):
        F.table("rows")
    with pytest.raises(KeyError, match="no column.*'p99'"):
        F.table(pd.DataFrame({"p50": [1]}), columns=["p99"])


def test_collapsed_table_and_explicit_units_and_shares():
    frame = pd.DataFrame({"variant": ["a"], "client serialize": [45.2], "tls": [0.25]})
    t = F.table(frame, units={"client serialize": "us"}, shares=["tls"], collapsed="raw data")
    assert t.html.count("<details class='ll-more'><summary>raw data</summary>") == 1
    assert list(t.frame.columns) == ["variant", "client serialize (us)", "tls"]
    assert list(t.frame.iloc[0]) == ["a", "45.2", "25 %"]


# --- progress ----------------------------------------------------------------------------

class _Handle:
    def __init__(self, log):
        self.log = log

    def update(self, obj, **_):
        self.log.append(obj["text/plain"])


@pytest.fixture
def kernel_display(monkeypatch):
    """Progress as it runs under a kernel without ipywidgets: updates go to a handle."""
    import importlib.util

    import IPython.display

    log: list[str] = []
    real_find = importlib.util.find_spec
    monkeypatch.setattr(P, "in_kernel", lambda: True)
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "ipywidgets" else real_find(name, *a))
    monkeypatch.setattr(IPython.display, "display",
                        lambda obj, **kw: (log.append(obj["text/plain"]), _Handle(log))[1])
    return log


def test_a_finished_bar_leaves_one_line_and_nothing_on_stderr(kernel_display, capsys):
    with P.progress(3, "story steps") as bar:
        for name in ("a", "b", "c"):
            bar.start(name)
    assert kernel_display[-1].startswith("story steps: 3 of 3 steps in ")
    assert any("b" in line for line in kernel_display[1:-1])   # the bar named the step
    out = capsys.readouterr()
    assert out.err == "" and out.out == ""


def test_a_bar_stopped_by_an_error_says_so(kernel_display):
    with pytest.raises(RuntimeError), P.progress(4, "variants", unit="variant") as bar:
        bar.start("a")
        raise RuntimeError("boom")
    assert kernel_display[-1].startswith("variants: stopped after 0 of 4 variants")


def test_track_and_collect_count_the_work():
    assert list(P.track([1, 2, 3], "items")) == [1, 2, 3]
    bar = P.progress(2, "runs", unit="run")
    got = bar.collect()
    got.append("r1")
    got.append("r2")
    bar.close()
    assert got == ["r1", "r2"] and bar.done == 2
    assert bar.final_line().startswith("runs: 2 of 2 runs in ")
    with pytest.raises(ValueError, match="total must be 0 or more, not -1"):
        P.progress(-1, "x")


def test_quiet_bars_drop_redraws_but_keep_messages(monkeypatch):
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    with P.quiet_bars():
        sys.stderr.write("\r 40%|####      | 2/5")
        sys.stderr.write("a warning\n")
    assert err.getvalue() == "a warning\n"


# --- the notebooks' helpers and cells ------------------------------------------------------

class _Result:
    """What ``health_table`` reads from a ``LoadResult``."""

    def __init__(self, variant, health):
        self.variant, self.health = variant, health
        self.offered_rate, self.achieved_rate, self.generator_cpu = 200.0, 199.7, 0.41
        self.counts = {"failed": 0}

    def send_lag_us(self, p):
        return 38_928.4

    def percentile_us(self, p, what):
        return 1_500.0


def test_health_table_gives_each_run_a_badge_with_reasons_warnings_and_evidence():
    from lootlab.loadgen.health import Health
    from lootlab.notebook import health_table

    bad = Health(False, ("the generator sent late",), ("send lag p99 39 ms",), "machine",
                 ("it was descheduled",))
    t = health_table({"mmap": [_Result("mmap", Health(True)), _Result("mmap", bad)]})
    assert list(t.frame.columns) == ["variant", "trial", "offered (req/s)", "achieved (req/s)",
                                     "send lag p99 (ms)", "generator's own send error p99 (ms)",
                                     "generator CPU (cores)", "errors", "run"]
    assert list(t.frame["trial"]) == ["1", "2"] and t.frame["send lag p99 (ms)"][0] == "38.9"
    assert "1 reason, 2 notes" in t.html and "<li>it was descheduled</li>" in t.html
    # a sweep over conditions: each run's RTT and CPU limit beside its health
    limited = _Result("mmap", Health(True))
    limited.conditions = {"rtt_ms": 5.0, "cpu_limit": 0.5}
    t = health_table([limited], conditions=True)
    assert list(t.frame.columns)[:3] == ["variant", "RTT (ms)", "CPU limit"]
    assert list(t.frame.iloc[0])[1:3] == ["5", "0.5"]


NOTEBOOKS = sorted((Path(__file__).parents[2] / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_cells_show_no_raw_dicts_pids_or_bare_frames(path):
    """What a reader must not get: a printed SIZES dict, a server's pid or port, a bare
    DataFrame where the formatter should stand, a generator's describe() wall."""
    import nbformat

    nb = nbformat.read(str(path), as_version=4)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        lines = [ln.strip() for ln in cell.source.splitlines() if ln.strip()]
        assert lines[-1] not in ("SIZES", "shares", "mem_table", "gc_table", "rep_totals")
        for bad in (".pid", ".target}", "describe()", "display(sustainable)", "pd.DataFrame(["):
            assert all(bad not in ln or ln.startswith("#") or "summary()" in ln
                       for ln in lines), (bad, cell.source[:80])
