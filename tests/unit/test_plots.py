"""The profiling figures draw exactly the numbers they are given, and the notebooks' setup
call configures what the old copied cell did.

Inputs are what the measuring code returns: ``bucket_shares`` of small ``FlameProfile``s,
``MemoryProfile.summary()`` rows, ``replicas.totals`` of a small raw frame, ``GcStats``.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
import warnings
from unittest.mock import patch

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.text import Text
from matplotlib.transforms import Bbox

from lootlab.loadgen import hist
from lootlab.loadgen.health import Health
from lootlab.loadgen.results import LoadResult
from lootlab.notebook import PANDAS_OPTIONS, setup
from lootlab.plots.axes import MIN_TEXT_PT, PAGE_WIDTH_IN
from lootlab.plots.colors import VARIANT_COLORS, variant_color, variant_colors
from lootlab.plots.headline import p99_bands
from lootlab.plots.latency import latency_vs_throughput, percentile_spectrum, spike_timeline
from lootlab.plots.profiling import bucket_bars, gc_pause_chart, memory_bars, pss_vs_replicas
from lootlab.plots.split import latency_split
from lootlab.plots.steps import headline_chart, rebuild_timeline, step_chart, writeup_chart
from lootlab.plots.units import pick_unit
from lootlab.profiling import BUCKETS, FlameProfile, GcEvent, GcStats, bucket_shares
from lootlab.profiling.memory import MemoryProfile
from lootlab.profiling.replicas import totals
from lootlab.experiments.sizes import SIZES
from lootlab.experiments.rows import measure
from lootlab.experiments.verdicts import band
from lootlab.experiments.story import STEPS, WRITEUP
from lootlab.variants import VARIANTS

LOOP = ("_run_module_as_main (<frozen runpy>:198)", "main (lootlab/workload.py:270)",
        "_measured_ops (lootlab/workload.py:149)")
NP = "ufunc_generic_fastcall (numpy/_core/_multiarray_umath.cpython-311-x86_64-linux-gnu.so)"
CYGRPC = "grpc_call_start_batch (grpc/_cython/cygrpc.cpython-311-x86_64-linux-gnu.so)"
SSL = "SSL_read (grpc/_cython/cygrpc.so)"
MiB = 2**20


def _tick_labels(ax, axis: str = "x") -> list[str]:
    ticks = ax.get_xticklabels() if axis == "x" else ax.get_yticklabels()
    return [t.get_text() for t in ticks]


def _legend_labels(ax) -> list[str]:
    """The axes' legend, or else the figure's (drawn under the panels)."""
    legend = ax.get_legend() or ax.get_figure().legends[0]
    return [t.get_text() for t in legend.get_texts()]


# -- bucket shares (notebook 03) ---------------------------------------------------------

@pytest.fixture
def shares() -> pd.DataFrame:
    return bucket_shares([
        FlameProfile("grpc-tls-pooled", {LOOP + (CYGRPC,): 5, LOOP + (CYGRPC, SSL): 3,
                                         LOOP: 2}),
        FlameProfile("mmap", {LOOP + (NP,): 7, LOOP: 1}),
    ])


def test_bucket_bars_stack_each_variants_shares_in_bucket_order(shares):
    fig = bucket_bars(shares)
    assert isinstance(fig, Figure)
    (ax,) = fig.axes
    # every bucket keeps its legend entry (zero-share ones too), in the categorizer's order
    assert _legend_labels(ax) == list(BUCKETS)
    assert len(ax.containers) == len(BUCKETS)
    left = np.zeros(len(shares))
    for bucket, bars in zip(BUCKETS, ax.containers):
        widths = np.array([p.get_width() for p in bars])
        lefts = np.array([p.get_x() for p in bars])
        np.testing.assert_allclose(widths, shares[bucket].to_numpy(float))
        np.testing.assert_allclose(lefts, left)
        left += widths
    np.testing.assert_allclose(left, 1.0)  # each row of shares sums to 1
    # one bar per variant, the first one on top
    assert _tick_labels(ax, "y") == list(shares["variant"])
    assert ax.yaxis_inverted()
    assert ax.get_xlabel() == "share of samples in the measured loop"
    assert ax.get_title() == ""
    assert bucket_bars(shares, title="CPU").axes[0].get_title() == "CPU"


def test_bucket_bars_grow_with_the_number_of_variants(shares):
    two = bucket_bars(shares).get_size_inches()
    one = bucket_bars(shares.iloc[:1]).get_size_inches()
    assert two[0] == one[0] <= 8 and two[1] > one[1]      # the page width: at most 8 in


# -- memory per variant (notebook 04) ----------------------------------------------------

def _memory_profile(variant: str, allocs: float, nbytes: float, anon: int, file: int,
                    peak: int) -> MemoryProfile:
    return MemoryProfile(variant, ops=500, allocations_per_op=allocs, bytes_per_op=nbytes,
                         peak_heap=peak, total_allocations=1000, mmap_allocations=1,
                         mmap_bytes=8 * MiB, proc={"RssAnon": anon, "RssFile": file})


@pytest.fixture
def mem_table() -> pd.DataFrame:
    return pd.DataFrame([
        _memory_profile("grpc-tls-pooled", 2.1, 3072.0, 60 * MiB, 20 * MiB, 40 * MiB).summary(),
        _memory_profile("mmap", 0.4, 512.0, 30 * MiB, 50 * MiB, 12 * MiB).summary(),
    ])


def _widths(bars) -> list[float]:
    return [p.get_width() for p in bars]


def _title(ax) -> str:
    return " ".join(ax.get_title().split())     # titles are wrapped to their panel


def test_memory_bars_draw_allocations_bytes_and_rss_per_variant(mem_table):
    fig = memory_bars(mem_table)
    allocs, kib, rss = fig.axes[:3]
    assert [_title(ax) for ax in (allocs, kib, rss)] == [
        "allocations per op (memray)",
        "KiB allocated per op (measured loop only; the mapping apart)",
        "RSS anon / file, peak heap (MiB)"]
    variants = list(mem_table["variant"])
    assert _widths(allocs.patches) == pytest.approx([2.1, 0.4])
    assert _widths(kib.patches) == pytest.approx([3.0, 0.5])  # bytes shown as KiB
    assert _tick_labels(allocs, "y") == variants               # one row per variant, shared
    assert allocs.yaxis_inverted()
    assert _legend_labels(rss) == ["RSS anon", "RSS file", "peak heap"]
    assert [_widths(c) for c in rss.containers] == [
        pytest.approx([60, 30]), pytest.approx([20, 50]), pytest.approx([40, 12])]
    # each bar in its variant's colour, in every panel
    want = [to_rgb(variant_color(v)) for v in variants]
    for ax in (allocs, kib):
        assert [to_rgb(p.get_facecolor()) for p in ax.patches] == want
    assert fig.get_size_inches()[0] <= PAGE_WIDTH_IN


@pytest.mark.parametrize("rows", [slice(None), slice(0, 1), [2, 5]])
def test_memory_bars_fit_the_page_with_readable_titles(rows):
    """At most the page's width, so an 800 px window shows it whole without scrolling,
    with no text under the page's minimum size and the panels' titles clear of each other
    (side by side at 8 in, three titles ran into one another)."""
    fig = memory_bars(_many_memory().iloc[rows])
    assert fig.get_size_inches()[0] <= PAGE_WIDTH_IN
    assert_text_reads(fig)
    sizes = [t.get_fontsize() for t, _ in _drawn_texts(fig)]
    assert sizes and min(sizes) >= MIN_TEXT_PT
    titles = [ax.title.get_window_extent() for ax in fig.axes if ax.get_title()]
    assert len(titles) == 3
    for a, b in itertools.combinations(titles, 2):
        assert not a.overlaps(b)


def test_memory_bars_leave_out_a_panel_whose_columns_are_missing(mem_table):
    fig = memory_bars(mem_table[["variant", "allocs_per_op", "RssAnon_MiB"]])
    allocs, rss = fig.axes[:2]
    assert _title(allocs) == "allocations per op (memray)"
    assert _widths(rss.patches) == pytest.approx([60, 30])
    assert fig.get_size_inches()[0] == 8


# -- memory across replicas (notebook 04) ------------------------------------------------

def _raw_replicas(variant: str, ks=(1, 2), server: bool = False) -> pd.DataFrame:
    """The per-process frame ``profiling.replicas`` returns: K replicas each sharing an
    8 MiB index file, so PSS charges each 8 / K of it while RSS counts all of it."""
    rows = []
    for k in ks:
        for _ in range(k):
            rows.append({"variant": variant, "k": k, "role": "replica", "Rss": 40 * MiB,
                         "Pss": 32 * MiB + 8 * MiB // k, "Pss_Anon": 30 * MiB,
                         "Pss_File": 2 * MiB + 8 * MiB // k, "index_rss": 8 * MiB,
                         "index_pss": 8 * MiB // k})
        if server:
            rows.append({"variant": variant, "k": k, "role": "server", "Rss": 90 * MiB,
                         "Pss": 80 * MiB, "Pss_Anon": 70 * MiB, "Pss_File": 10 * MiB,
                         "index_rss": 8 * MiB, "index_pss": 8 * MiB})
    return pd.DataFrame(rows)


def test_pss_vs_replicas_draws_the_totals_against_k():
    tot = totals(_raw_replicas("mmap", ks=(1, 2, 4)))
    (ax,) = pss_vs_replicas(tot).axes
    assert ax.get_title() == "mmap: memory summed over K replicas"
    assert _legend_labels(ax) == ["PSS, all replicas", "PSS file-backed (shared page cache)",
                                  "RSS summed (counts shared pages K times)"]
    pss, pss_file, rss = ax.get_lines()
    for line, col in [(pss, "pss_total_MiB"), (pss_file, "pss_file_total_MiB"),
                      (rss, "rss_total_MiB")]:
        np.testing.assert_array_equal(line.get_xdata(), [1, 2, 4])
        np.testing.assert_allclose(line.get_ydata(), tot[col])
    # the point of the figure: RSS grows with the shared file K times, PSS does not
    np.testing.assert_allclose(rss.get_ydata(), [40, 80, 160])
    np.testing.assert_allclose(pss.get_ydata(), [40, 72, 136])
    assert ax.get_xlabel() == "replicas (K)" and ax.get_ylabel() == "total MiB"


def test_pss_vs_replicas_names_variants_when_there_are_several_and_adds_the_server():
    tot = totals(pd.concat([_raw_replicas("mmap"),
                            _raw_replicas("grpc-tls-pooled", server=True)]))
    (ax,) = pss_vs_replicas(tot).axes
    labels = _legend_labels(ax)
    assert ax.get_title() == "memory summed over K replicas"
    assert "mmap: PSS, all replicas" in labels
    assert "grpc-tls-pooled: PSS, all replicas + their server" in labels
    assert not any("mmap" in label and "server" in label for label in labels)
    server_line = ax.get_lines()[labels.index("grpc-tls-pooled: PSS, all replicas + their server")]
    remote = tot[tot["variant"] == "grpc-tls-pooled"]
    np.testing.assert_allclose(server_line.get_ydata(),
                               remote["pss_total_MiB"] + remote["server_pss_MiB"])


# -- GC pauses (notebook 04) -------------------------------------------------------------

def _gc_stats(variant: str, pauses_ms: list[float]) -> GcStats:
    return GcStats(variant, 1000, [GcEvent(0, i, int(p * 1e6), 1, 0)
                                   for i, p in enumerate(pauses_ms)])


def _box_quartiles(ax, position: int) -> tuple[float, float, float]:
    """(q1, median, q3) of the horizontal box drawn at y = ``position``, read back from its
    box patch and median line."""
    (box,) = [p for p in ax.patches
              if abs(np.mean(p.get_path().vertices[:, 1]) - position) < 0.3]
    xs = box.get_path().vertices[:, 0]
    y0, y1 = box.get_path().vertices[:, 1].min(), box.get_path().vertices[:, 1].max()
    (median,) = [ln for ln in ax.get_lines() if len(ln.get_ydata()) == 2
                 and (min(ln.get_ydata()), max(ln.get_ydata())) == (y0, y1)]
    return xs.min(), median.get_xdata()[0], xs.max()


def test_gc_pause_chart_draws_one_box_of_pauses_per_variant():
    pooled = [0.5, 1.0, 2.0, 4.0, 8.0]
    stats = {"grpc-tls-pooled": _gc_stats("grpc-tls-pooled", pooled),
             "mmap": _gc_stats("mmap", [])}
    (ax,) = gc_pause_chart(stats).axes
    assert _tick_labels(ax, "y") == ["grpc-tls-pooled", "mmap"]     # first on top
    assert ax.yaxis_inverted()
    assert _box_quartiles(ax, 1) == pytest.approx(tuple(np.percentile(pooled, [25, 50, 75])))
    assert _box_quartiles(ax, 2) == (0.0, 0.0, 0.0)  # no collection: drawn at 0, not dropped
    assert ax.get_xlabel() == "GC pause (ms)"
    assert "8 ms -> 0.6 ms" in _title(ax)


def test_gc_pause_chart_takes_a_list_labelled_by_variant():
    (ax,) = gc_pause_chart([_gc_stats("a", [1.0]), _gc_stats("b", [2.0, 3.0])]).axes
    assert _tick_labels(ax, "y") == ["a", "b"]
    assert _box_quartiles(ax, 2)[1] == pytest.approx(2.5)


# -- the notebooks' setup call -----------------------------------------------------------

def test_an_unknown_size_is_refused_naming_the_allowed_ones():
    with pytest.raises(ValueError) as err:
        setup("fast")
    message = str(err.value)
    assert "'fast'" in message and all(repr(p) in message for p in SIZES)


def test_setup_outside_ipython_sets_tables_and_warnings_and_returns_nothing():
    with pd.option_context("display.width", 80, "display.max_columns", 5,
                           "display.precision", 6), warnings.catch_warnings():
        warnings.simplefilter("error")
        assert setup("quick") is None
        for key, value in PANDAS_OPTIONS.items():
            assert pd.get_option(key) == value
        warnings.warn("old API", DeprecationWarning)  # silenced, so no error
        warnings.warn("IProgress not found. Please update jupyter", UserWarning)
        with pytest.raises(UserWarning):
            warnings.warn("something else", UserWarning)
        with pytest.raises(ValueError):
            setup("fast")


def test_setup_under_ipython_shows_figures_inline_as_png_only():
    """In a fresh process (the shell and the backend are process-wide), a Jupyter kernel's
    shell whose user config asks for SVG: setup does what ``%matplotlib inline`` and
    ``%config InlineBackend.figure_formats = ["png"]`` did."""
    script = """
import matplotlib
from ipykernel.inprocess.ipkernel import InProcessKernel
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.text import Text
from matplotlib.transforms import Bbox

from lootlab.loadgen import hist
from lootlab.loadgen.health import Health
from lootlab.loadgen.results import LoadResult
from matplotlib_inline.config import InlineBackend
shell = InProcessKernel().shell
InlineBackend.instance().figure_formats = {"svg"}
import lootlab.notebook
lootlab.notebook.setup("quick")
formatters = shell.display_formatter.formatters
print(matplotlib.get_backend())
print(Figure in formatters["image/png"].type_printers,
      Figure in formatters["image/svg+xml"].type_printers)
"""
    env = {"MPLBACKEND": "Agg", "PATH": "/usr/bin:/bin", "PYDEVD_DISABLE_FILE_VALIDATION": "1"}
    out = subprocess.run([sys.executable, "-Xfrozen_modules=off", "-c", script],
                         check=False, capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    backend, formats = out.stdout.splitlines()[-2:]
    assert "inline" in backend
    assert formats == "True False"


# -- every figure reads at a glance: no text over text, none outside the figure ------------
#
# ``text_boxes`` draws a figure with the Agg canvas and records every text matplotlib
# actually drew (tick labels out of view, hidden and empty texts are never drawn), with its
# window extent; ``assert_text_reads`` fails on two boxes that overlap or one that leaves
# the figure.  Every public plotting function is checked with realistic inputs: many
# variants, long names, extreme values.

def text_boxes(fig: Figure) -> list[tuple[str, Bbox]]:
    """(text, window extent in pixels) of every non-empty text the figure draws."""
    return [(text.get_text(), box) for text, box in _drawn_texts(fig)]


def _drawn_texts(fig: Figure) -> list[tuple[Text, Bbox]]:
    """(text artist, window extent in pixels) of every non-empty text the figure draws."""
    FigureCanvasAgg(fig)
    drawn: list[tuple[Text, Bbox]] = []
    original = Text.draw

    def record(self, renderer):
        original(self, renderer)
        if self.get_visible() and self.get_text().strip():
            # the text's own box (an annotation's extent would include its arrow)
            drawn.append((self, Text.get_window_extent(self, renderer)))

    with patch.object(Text, "draw", record):
        fig.canvas.draw()
    return drawn


def text_problems(fig: Figure, slack: float = 1.0) -> list[str]:
    """Overlapping pairs of texts and texts running out of the figure, in words."""
    boxes = text_boxes(fig)
    width, height = fig.bbox.width, fig.bbox.height
    problems = [f"{text!r} runs outside the figure ({box.x0:.0f}..{box.x1:.0f} x "
                f"{box.y0:.0f}..{box.y1:.0f} of {width:.0f} x {height:.0f})"
                for text, box in boxes
                if box.x0 < -slack or box.y0 < -slack or box.x1 > width + slack
                or box.y1 > height + slack]
    for (ta, a), (tb, b) in itertools.combinations(boxes, 2):
        overlap_w = min(a.x1, b.x1) - max(a.x0, b.x0)
        overlap_h = min(a.y1, b.y1) - max(a.y0, b.y0)
        if overlap_w > slack and overlap_h > slack:
            problems.append(f"{ta!r} overlaps {tb!r} ({overlap_w:.0f} x {overlap_h:.0f} px)")
    return problems


def assert_text_reads(fig: Figure) -> None:
    problems = text_problems(fig)
    assert not problems, "\n".join(problems)


def test_the_text_check_sees_an_overlap_and_a_text_outside_the_figure():
    fig = Figure(figsize=(4, 3))
    ax = fig.subplots()
    ax.text(0.5, 0.5, "one label")
    assert text_problems(fig) == []
    ax.text(0.5, 0.5, "another label")
    ax.set_title("a title far too long to fit a four inch wide figure at all, by far")
    problems = text_problems(fig)
    assert any("overlaps" in p for p in problems)
    assert any("outside the figure" in p and "title" in p for p in problems)


# realistic inputs: the story's variants plus an unregistered one with a long name, and
# latencies from tens of microseconds to seconds
LONG = "grpc-tls-pooled-with-a-very-long-experimental-name"
MANY = [*VARIANTS, LONG]
SCALE_US = {"grpc-tls-fresh": 40_000, "grpc-tls-resumed": 9_000, "grpc-tls-pooled": 2_500,
            "grpc-tls-packed": 1_800, "grpc-plain": 1_500, "mmap": 60, LONG: 2_600}


def _load_result(variant: str, scale_us: float, n: int = 3000, seconds: int = 6,
                 seed: int = 0, tail_s: float = 0.0) -> LoadResult:
    """A LoadResult whose latency histogram holds ``n`` lognormal values around
    ``scale_us`` (one value of ``tail_s`` seconds on top when given), spread over
    ``seconds`` one-second intervals with a burst in the middle."""
    rng = np.random.default_rng(seed)
    ns = rng.lognormal(np.log(scale_us * 1e3), 0.6, n)
    if tail_s:
        ns[-1] = tail_s * 1e9
    per = np.array_split(ns, seconds)
    lat, _ = hist.histogram_of(ns)
    intervals = [hist.histogram_of(part)[0] for part in per]
    offered = [len(p) * (3 if s == seconds // 2 else 1) for s, p in enumerate(per)]
    counts = {"sent": n, "warmup_requests": 0, "measured": n, "ok": n, "failed": 0, "timeouts": 0,
                  "dropped": 0, "scheduled": n, "unsent": 0}
    empty = hist.new_histogram
    return LoadResult(variant=variant, schedule={"kind": "constant", "label": "constant"},
                      processes=1, concurrency=1, warmup=0.0, duration=float(seconds),
                      latency=lat, service=hist.merge([lat]), send_lag=empty(),
                      errors=empty(), generator_lag=empty(), intervals=intervals,
                      offered_per_s=offered, completed_per_s=[len(p) for p in per],
                      counts=counts, offered_rate=n / seconds, achieved_rate=n / seconds,
                      cpu_s=0.1, wall_s=float(seconds), busy=[0.1], health=Health(True))


@pytest.fixture(scope="module")
def results() -> list[LoadResult]:
    return [_load_result(v, SCALE_US[v], seed=i, tail_s=1.4 if v == "grpc-tls-fresh" else 0)
            for i, v in enumerate(MANY)]


@pytest.mark.parametrize("logy", [True, False])
def test_the_spectrum_of_many_variants_reads(results, logy):
    fig = percentile_spectrum(results, logy=logy, target_us=10_000,
                              title="Latency spectrum at 200 requests/s")
    assert_text_reads(fig)
    (ax,) = fig.axes
    # 60 us .. 1.4 s: a log axis in ms (its decades' middle), a linear one in s (its top)
    assert ax.get_ylabel() == ("latency (ms, log)" if logy else "latency (s)")
    maxima = [t.get_text() for t in ax.texts]
    assert len(maxima) == len(MANY)
    assert ("max 1,400 ms" if logy else "max 1.4 s") in maxima


def test_the_spectrum_of_close_maxima_keeps_their_labels_apart():
    close = [_load_result(v, 2_000, seed=i) for i, v in enumerate(MANY)]
    assert_text_reads(percentile_spectrum(close, logy=True))
    assert_text_reads(percentile_spectrum(close[:2]))


def test_latency_vs_throughput_of_many_variants_reads(results):
    rows = []
    for k, rate in enumerate([250, 1000, 4000, 16000]):
        for r in results:
            s = measure(r)
            rows.append({**s, "offered_per_s": float(rate), "achieved_per_s": rate * 0.97,
                         "p50_ms": s["p50_ms"] * (1 + k), "p99_ms": s["p99_ms"] * 4 ** k,
                         "valid": k < 3})
    fig = latency_vs_throughput(pd.DataFrame(rows), target_ms=10.0)
    assert_text_reads(fig)
    # 60 us .. 10 s on a log axis: the middle of its decades is in milliseconds
    assert fig.axes[0].get_ylabel() == "latency (ms, log)"


def test_the_spike_timeline_reads(results):
    assert_text_reads(spike_timeline(results[:3]))
    assert_text_reads(spike_timeline(results[-1:], title="mmap: spike 10x over 1,000/s"))


def _many_shares() -> pd.DataFrame:
    frames = {LOOP + (CYGRPC,): 5, LOOP + (CYGRPC, SSL): 3, LOOP + (NP,): 1, LOOP: 2}
    return bucket_shares([FlameProfile(v, {k: c * (i + 1) if j == i % 4 else c
                                           for j, (k, c) in enumerate(frames.items())})
                          for i, v in enumerate(MANY)])


def _many_memory() -> pd.DataFrame:
    return pd.DataFrame([_memory_profile(v, 0.4 + i * 3.1, 512.0 * 10 ** (i % 4), (30 + i) * MiB,
                                         (50 + 40 * i) * MiB, 12 * MiB * (i + 1)).summary()
                         for i, v in enumerate(MANY)])


def _many_replicas() -> pd.DataFrame:
    return totals(pd.concat([_raw_replicas("mmap", ks=(1, 2, 4, 8)),
                             _raw_replicas(LONG, ks=(1, 2, 4, 8), server=True)]))


def _many_gc() -> dict[str, GcStats]:
    rng = np.random.default_rng(3)
    return {v: _gc_stats(v, [] if v == "mmap" else list(rng.lognormal(0, 1.2, 40) * (i + 1)))
            for i, v in enumerate(MANY)}


def test_the_profiling_figures_of_many_variants_read():
    assert_text_reads(bucket_bars(_many_shares(), title="CPU by bucket"))
    assert_text_reads(memory_bars(_many_memory()))
    assert_text_reads(memory_bars(_many_memory().iloc[:1]))
    assert_text_reads(gc_pause_chart(_many_gc()))
    assert_text_reads(gc_pause_chart({"mmap": _gc_stats("mmap", [])}))


@pytest.mark.parametrize("ks", [(1, 2), (1, 2, 4, 8)])
def test_the_replica_axis_has_whole_numbers_only(ks):
    fig = pss_vs_replicas(totals(_raw_replicas("mmap", ks=ks)))
    assert_text_reads(fig)
    assert_text_reads(pss_vs_replicas(_many_replicas()))
    FigureCanvasAgg(fig).draw()
    ax = fig.axes[0]
    lo, hi = ax.get_xlim()
    shown = [t for t in ax.get_xticks() if lo <= t <= hi]
    assert shown and all(float(t).is_integer() for t in shown)   # never 1.2, 1.4 ...


def _render_profile() -> dict[str, Figure]:
    """The profiling figures with the inputs above (``/tmp/.../render.py`` looks at them)."""
    return {"buckets": bucket_bars(_many_shares()), "memory": memory_bars(_many_memory()),
            "memory_two": memory_bars(_many_memory().iloc[[2, 5]]),
            "replicas": pss_vs_replicas(totals(_raw_replicas("mmap", ks=(1, 2)))),
            "replicas_many": pss_vs_replicas(_many_replicas()), "gc": gc_pause_chart(_many_gc())}


# -- the story's figures and the index page's chart -------------------------------------

def _story_steps(names=tuple(STEPS), p99=(1180.0, 92.5, 9.1, 3.3, 0.21), n=3600,
                 valid=None, trials=3) -> pd.DataFrame:
    """A steps frame in ``story.run_steps``' shape (pooled trials, their spread, the
    pooled 95 % interval, the write-up's figures, a split of the mean)."""
    p99 = np.asarray(p99, float)
    valid = [True] * len(names) if valid is None else valid
    ns = [n] * len(names) if np.isscalar(n) else list(n)
    return pd.DataFrame({
        "variant": list(names), "trials": trials, "pooled": True, "n": ns,
        "p50_ms": p99 / 6, "p50_ms_lo": p99 / 7, "p50_ms_hi": p99 / 5,
        "p99_ms": p99, "p99_ms_lo": p99 * 0.8, "p99_ms_hi": p99 * 1.3,
        "p99_ci_low_ms": p99 * 0.9, "p99_ci_high_ms": p99 * 1.45,
        "valid": valid, "offered_per_s": 100.0,
        "writeup_p99_ms": [WRITEUP["p99_ms_by_step"].get(s, np.nan) for s in names],
        "split_send_wait_ms": p99 / 20, "split_transport_ms": p99 / 10,
        "split_client_deserialize_ms": p99 / 30})


def test_headline_chart_draws_each_steps_p99_band_in_its_colour():
    steps = _story_steps(valid=[True, False, True, True, True], n=[3600, 3600, 3600, 300, 3600])
    fig = headline_chart(steps)
    assert_text_reads(fig)
    (ax,) = fig.axes
    w, h = fig.get_size_inches()
    assert w == 7 and 2.4 <= h <= 3.5
    assert _tick_labels(ax, "y") == list(STEPS) and ax.yaxis_inverted()   # first on top
    bars = ax.patches[:len(steps)]
    assert [b.get_width() for b in bars] == pytest.approx(list(steps["p99_ms"]))  # in ms
    assert ax.get_xlabel().startswith("p99 (ms, log scale")
    # the whiskers span the verdict's band (experiments.verdicts.band) for every step
    (segments,) = [c for c in ax.collections if hasattr(c, "get_segments")]
    spans = [tuple(sorted(seg[:, 0])) for seg in segments.get_segments()]
    assert spans == [pytest.approx(band(row)) for _, row in steps.iterrows()]
    # every bar in its variant's colour: solid, hollow where the p99 rests on few samples
    for bar, name, kind in zip(bars, steps["variant"], ["solid", "pale", "solid", "hollow",
                                                         "solid"]):
        color = to_rgb(variant_color(name))
        assert to_rgb(bar.get_edgecolor()) == color
        face = bar.get_facecolor()
        assert to_rgb(face) == ((1, 1, 1) if kind == "hollow" else color)
        assert face[3] == pytest.approx(0.3 if kind == "pale" else 1.0)
    assert [bool(b.get_hatch()) for b in bars] == [False, True, False, False, False]
    texts = [t.get_text() for t in ax.texts]
    assert sum("INVALID" in t for t in texts) == 1 and "INVALID" in texts[1]
    notes = _legend_labels(ax)
    assert any(n.startswith("hollow: fewer than 10 samples") for n in notes)
    assert any(n.startswith("hatched: INVALID") for n in notes)


def test_headline_chart_without_problems_has_no_notes_and_names_its_rate():
    fig = headline_chart(_story_steps(n=5000))
    assert _legend_labels(fig.axes[0]) == ["whiskers: lowest..highest trial and 95 % interval"]
    assert "100 requests/s" in fig.axes[0].get_title(loc="left")
    assert [bool(b.get_hatch()) for b in fig.axes[0].patches[:5]] == [False] * 5


@given(p99=st.lists(st.floats(0.005, 5e4), min_size=1, max_size=len(MANY)),
       data=st.data())
@settings(max_examples=5, deadline=None)
def test_headline_chart_reads_for_any_number_of_steps_and_values(p99, data):
    names = MANY[:len(p99)]
    valid = data.draw(st.lists(st.booleans(), min_size=len(p99), max_size=len(p99)))
    ns = data.draw(st.lists(st.sampled_from([200, 1000, 3600]), min_size=len(p99),
                            max_size=len(p99)))
    assert_text_reads(headline_chart(_story_steps(names, p99, n=ns, valid=valid)))


def test_headline_chart_refuses_an_empty_frame_naming_it():
    with pytest.raises(ValueError, match="at least one step"):
        headline_chart(_story_steps().iloc[:0])
    with pytest.raises(ValueError, match="'p99_ms'"):
        headline_chart(pd.DataFrame({"variant": ["mmap"]}))


def test_p99_band_is_the_verdicts_band():
    steps = _story_steps()
    steps.loc[2, "p99_ci_low_ms"] = np.nan
    lo, hi = p99_bands(steps)
    assert list(zip(lo, hi)) == [pytest.approx(band(row)) for _, row in steps.iterrows()]


@pytest.mark.parametrize("valid", [None, [True, False, True, True, True]])
def test_the_story_figures_read(valid):
    steps = _story_steps(valid=valid)
    fig = step_chart(steps)
    assert_text_reads(fig)
    ax = fig.axes[0]
    assert ax.get_ylabel() == "latency from intended send time (ms, log)"
    assert all("x10" not in t.get_text() and "^" not in t.get_text()
               for t in ax.get_yticklabels())            # plain numbers on the log axis
    assert_text_reads(step_chart(_story_steps(MANY, np.geomspace(3000, 0.05, len(MANY)))))
    assert_text_reads(latency_split(steps))
    assert_text_reads(writeup_chart(WRITEUP))


def test_one_variant_has_one_colour_in_every_figure(results):
    """mmap's colour in the spectrum, the sweep, the buckets, the memory panels, the GC
    boxes, the story steps and the headline chart is one and the same."""
    want = to_rgb(variant_color("mmap"))
    spectrum = percentile_spectrum(results).axes[0]
    assert [to_rgb(ln.get_color()) for ln in spectrum.lines if ln.get_label() == "mmap"] == [want]
    sweep = latency_vs_throughput(results).axes[0]
    assert {to_rgb(ln.get_color()) for ln in sweep.lines if ln.get_label().startswith("mmap ")} \
        == {want}
    buckets = bucket_bars(_many_shares()).axes[0]
    assert [to_rgb(t.get_color()) for t in buckets.get_yticklabels()
            if t.get_text() == "mmap"] == [want]
    memory = memory_bars(_many_memory()).axes[0]
    assert to_rgb(memory.patches[MANY.index("mmap")].get_facecolor()) == want
    steps = _story_steps()
    chart = step_chart(steps).axes[0]
    assert to_rgb(chart.patches[len(steps) + list(steps["variant"]).index("mmap")]
                  .get_facecolor()) == want
    head = headline_chart(steps).axes[0]
    assert to_rgb(head.patches[list(steps["variant"]).index("mmap")].get_facecolor()) == want


def test_registered_variants_have_distinct_fixed_colours_and_others_a_stable_one():
    assert set(VARIANTS) <= set(VARIANT_COLORS)
    assert len(set(VARIANT_COLORS.values())) == len(VARIANT_COLORS)
    assert variant_color(LONG) == variant_color(LONG) not in VARIANT_COLORS.values()
    names = [f"variant-{i}" for i in range(5)] + ["mmap"]
    one, other = variant_colors(names), variant_colors(list(reversed(names)))
    assert one == other and len(set(one.values())) == len(names)   # no two alike


@given(st.lists(st.floats(1e-3, 1e8), min_size=1, max_size=20), st.booleans())
def test_the_time_unit_keeps_the_axis_reference_between_1_and_1000(values_us, log):
    """Oracle: the reference value (top of a linear axis, middle of a log one's decades)
    reads as at least 1 in the chosen unit, and below 1,000 unless it is seconds."""
    unit = pick_unit(values_us, log=log)
    v = np.asarray(values_us)
    ref = np.sqrt(v.min() * v.max()) if log else v.max()
    shown = unit.scale(ref)
    assert shown >= 1 - 1e-9 or unit.name == "us"
    assert shown < 1000 or unit.name == "s"
    assert pick_unit(np.asarray(values_us) / 1e3, source="ms", log=log) == unit


def test_rebuild_timeline_reads_with_whole_generations():
    fig = rebuild_timeline([_FakeRebuild("local"), _FakeRebuild("s3", valid=False)])
    assert_text_reads(fig)
    FigureCanvasAgg(fig).draw()
    gen_ax = fig.axes[-1]
    lo, hi = gen_ax.get_ylim()
    assert all(float(t).is_integer() for t in gen_ax.get_yticks() if lo <= t <= hi)
    assert all("x10" not in t.get_text() for t in fig.axes[0].get_yticklabels())


class _FakeRebuild:
    """What ``rebuild_timeline`` reads of a ``RebuildRun``: windows, swaps, generations."""

    def __init__(self, source: str, valid: bool = True, duration: float = 15.0):
        self.source, self.rate, self.duration, self.valid = source, 500.0, duration, valid
        self.swaps = pd.DataFrame({"t_s": np.arange(1.5, duration, 2.0),
                                   "generation": np.arange(2, 2 + len(np.arange(1.5, duration, 2.0)))})
        self.seen = pd.DataFrame({"t_s": [-0.5, *(self.swaps["t_s"] + 0.05)],
                                  "generation": [1, *self.swaps["generation"]]})

    def windows(self, width: float = 1.0) -> pd.DataFrame:
        t = np.arange(0, self.duration, width)
        p50 = 0.4 + 0.05 * np.sin(t)
        return pd.DataFrame({"t_s": t, "t_end_s": t + width, "p50_ms": p50,
                             "p99_ms": p50 * (3 + np.cos(t)), "max_ms": p50 * 9,
                             "count": 500})

    def summary(self) -> dict:
        return {"requests": 7_500, "swaps": len(self.swaps),
                "generations_seen": len(self.swaps) + 1, "errors": 0, "valid": self.valid}


def _render_story() -> dict[str, Figure]:
    steps = _story_steps(valid=[True, False, True, True, True], n=[3600, 3600, 3600, 300, 3600])
    return {"headline": headline_chart(steps), "headline_ok": headline_chart(_story_steps(n=5000)),
            "steps": step_chart(steps), "split": latency_split(steps),
            "writeup": writeup_chart(WRITEUP),
            "rebuild": rebuild_timeline([_FakeRebuild("local"), _FakeRebuild("s3", False)])}
