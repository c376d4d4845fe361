"""Profilers for real: py-spy and memray run on workload subprocesses; /proc sharing checked."""
# ruff: noqa: F811  (pytest fixtures imported from _profiling)

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

import pandas as pd
import pytest
from _profiling import data_env, small_index  # noqa: F401
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from lootlab.cli import main as cli
from lootlab.profiling import (
    BUCKETS,
    FlameProfile,
    bucket_shares,
    categorize,
    copy_share,
    diff,
    diff_svg,
    flamegraph,
    load_flame,
    memory,
    parse_collapsed,
    stack_bucket,
)
from lootlab.profiling.flame import to_collapsed
from lootlab.profiling.replicas import replicas, totals

LOOP = ("_run_module_as_main (<frozen runpy>:198)", "main (lootlab/workload.py:270)",
        "_measured_ops (lootlab/workload.py:149)")
NP = "ufunc_generic_fastcall (numpy/_core/_multiarray_umath.cpython-311-x86_64-linux-gnu.so)"
CYGRPC = "grpc_call_start_batch (grpc/_cython/cygrpc.cpython-311-x86_64-linux-gnu.so)"


# -- categorizer on known stacks ---------------------------------------------------------

@pytest.mark.parametrize("tail, bucket", [
    (("_blocking (grpc/_channel.py:1000)", CYGRPC, "SSL_read (grpc/_cython/cygrpc.so)",
      "__memmove_avx_unaligned_erms (libc.so.6)"), "TLS/ssl"),
    (("_blocking (grpc/_channel.py:1000)", "_deserialize (grpc/_common.py:40)",
      "FromString (google/protobuf/message.py:10)"), "protobuf"),
    (("_blocking (grpc/_channel.py:1000)", CYGRPC), "gRPC core"),
    (("_blocking (grpc/_channel.py:1000)", CYGRPC, "epoll_wait (libc.so.6)"), "idle/wait"),
    (("near (lootlab/index.py:332)", NP, "memcpy (libc.so.6)"), "numpy + libc copies"),
    (("near (lootlab/index.py:332)", NP, "0x7f00deadbeef (libc.so.6)"), "numpy + libc copies"),
    (("near (lootlab/index.py:332)", NP), "numpy + libc copies"),
    (("query_cells (lootlab/index.py:140)",
      "select_cells (lootlab/_kernels.cpython-311-x86_64-linux-gnu.so)"),
     "lootlab C kernel (search + copy)"),
    (("near (lootlab/index.py:332)",), "Python overhead"),
    (("near (lootlab/index.py:332)", "_PyEval_EvalFrameDefault (libpython3.11.so.1.0)"),
     "Python overhead"),
    (("near (lootlab/index.py:332)", "gc_collect_main (libpython3.11.so.1.0)"), "GC"),
    (("near (lootlab/index.py:332)", "sleep (time)"), "idle/wait"),
    (("_blocking (grpc/_channel.py:1000)", CYGRPC, "sendmsg (libc.so.6)"), "socket I/O"),
    (("near (lootlab/index.py:332)", "zstd_compress (libzstd.so.1)"), "other"),
    (("near (lootlab/index.py:332)", "PyUnicode_InternFromString (libpython3.11.so.1.0)"),
     "Python overhead"),   # CPython's *FromString is not protobuf's FromString
    (("near (lootlab/index.py:332)", "write (libc.so.6)", "pipe_write [k]"), "kernel: other"),
])
def test_categorizer_buckets_known_stacks(tail, bucket):
    assert stack_bucket(LOOP + tail) == bucket


def test_categorize_counts_every_sample_once():
    stacks = {LOOP + ("a (x.py:1)",): 3, LOOP + (NP,): 5, LOOP + (CYGRPC,): 2}
    counts = categorize(stacks)
    assert set(counts) == set(BUCKETS) and sum(counts.values()) == 10
    assert counts["numpy + libc copies"] == 5 and counts["gRPC core"] == 2
    assert copy_share({LOOP + (NP, "memcpy (libc.so.6)"): 1, LOOP: 3}) == 0.25


frame = st.text(st.characters(blacklist_characters=";\n\r", blacklist_categories=("Cs", "Zl", "Zp")),
                min_size=1, max_size=12).map(lambda s: s.strip() or "f")


@settings(max_examples=50, deadline=None)
@given(st.dictionaries(st.tuples(frame, frame, frame), st.integers(1, 10_000), max_size=20))
def test_collapsed_round_trip_and_shares_sum_to_one(stacks):
    assert parse_collapsed(to_collapsed(stacks)) == stacks
    p = FlameProfile("v", stacks)
    if stacks:
        assert p.frames["self_share"].sum() == pytest.approx(1.0)
        assert bucket_shares([p], work_only=False)[list(BUCKETS)].sum(axis=1).iloc[0] == \
            pytest.approx(1.0)
    assert diff(p, p).empty                                    # identical: nothing differs


# -- py-spy, for real --------------------------------------------------------------------

@pytest.fixture(scope="module")
def spin_profile(tmp_path_factory):
    return flamegraph(duration=1.5, spin=True, rate=200)


def test_flamegraph_of_a_spinning_workload_shows_the_spin_function(spin_profile, tmp_path):
    p = spin_profile
    assert p.samples > 50
    top = p.frames.iloc[0]
    assert top["frame"].startswith("lootlab_spin_target ")
    assert top["self_share"] > 0.8
    assert bucket_shares([p]).loc[0, "Python overhead"] > 0.8
    # every view comes from the same samples, and the SVG is well-formed and interactive
    ET.fromstring(p.svg)
    assert "<script" in p.svg and "lootlab_spin_target" in p.svg
    sp = p.speedscope
    assert sum(sp["profiles"][0]["weights"]) == p.samples
    saved = p.save(tmp_path / "flame")
    back = load_flame(tmp_path / "flame")
    assert back.stacks == p.stacks and back.variant == p.variant
    assert json.loads(saved["speedscope"].read_text())["shared"]["frames"]


def test_diff_shows_what_one_profile_spends_that_the_other_does_not(spin_profile):
    assert diff(spin_profile, spin_profile).empty
    other = FlameProfile("other", {LOOP + (NP,): 40, LOOP + ("x (lootlab/index.py:1)",): 10})
    d = diff(spin_profile, other)
    assert d.iloc[0]["frame"].startswith("lootlab_spin_target ") and d.iloc[0]["delta_self"] > 0.8
    assert d.iloc[-1]["frame"] == NP and d.iloc[-1]["delta_self"] == pytest.approx(-0.8, abs=0.01)
    svg = diff_svg(spin_profile, other)
    ET.fromstring(svg)                                        # nothing shared: side by side
    assert 'data-lf-panels="2"' in svg and "share no frames" in svg


def test_flame_diff_saves_table_svg_and_both_profiles(spin_profile, tmp_path):
    from lootlab.profiling import FlameDiff
    other = FlameProfile("other", {LOOP + (NP,): 4})
    fd = FlameDiff(spin_profile, other, diff(spin_profile, other, min_delta=0.01))
    paths = fd.save(tmp_path / "d")
    table = pd.read_csv(paths["table"])
    assert (table[["delta_self", "delta_total"]].abs().max(axis=1) > 0.01).all()
    assert load_flame(tmp_path / "d" / "other").stacks == other.stacks
    ET.fromstring(paths["svg"].read_text())


def test_cli_profile_flame_writes_artifacts_and_says_what_it_is_doing(data_env, tmp_path):
    """A real subprocess with stderr not a terminal (a log): whole stage lines, no bar."""
    proc = subprocess.run([sys.executable, "-m", "lootlab.cli", "profile", "flame", "--spin",
                           "--duration", "1", "--out", str(tmp_path / "f")],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "lootlab_spin_target" in proc.stdout
    lines = proc.stderr.splitlines()
    assert any(re.fullmatch(r"lootlab profile flame: \[1/1\] py-spy: sampling the spin "
                            r"workload for 1 s \(plus its start-up\) \.\.\.", x) for x in lines)
    assert any(re.fullmatch(r"lootlab profile flame: \[1/1\] py-spy: .*: done in \d+\.\d s", x)
               for x in lines), proc.stderr
    assert "\r" not in proc.stderr                             # a log gets lines, not a bar
    for name in ("flame.svg", "speedscope.json", "collapsed.txt", "frames.csv"):
        assert (tmp_path / "f" / name).stat().st_size > 0


# -- memray, for real --------------------------------------------------------------------

def test_memray_counts_allocations_per_op(data_env, tmp_path):
    k = 40
    prof = memory(alloc_per_op=k, queries=1500, flamegraph=True)
    # the measured loop adds ~3 allocations per op of its own (an iterator, a float, an int)
    assert k <= prof.allocations_per_op <= k + 5
    assert prof.bytes_per_op >= 16 * k
    assert prof.peak_heap > 0 and prof.proc["RssAnon"] > 0 and prof.baseline["RssAnon"] > 0
    assert "mmap" in prof.note
    html = prof.flamegraph_html
    assert html and "<script src=" not in html and "<link rel=\"stylesheet\" href=\"http" not in html


def test_cli_profile_errors_are_one_line(data_env):
    res = CliRunner().invoke(cli, ["profile", "replicas", "--ks", "1,x"])
    assert res.exit_code == 2 and "--ks" in res.output


# -- /proc: PSS sharing across replicas --------------------------------------------------

def test_pss_shows_shared_index_pages(small_index, data_env):
    frame = replicas("mmap", ks=(1, 2), queries=300, index=small_index)
    assert list(frame["k"]) == [1, 2, 2]
    one = frame[frame["k"] == 1].iloc[0]
    two = frame[frame["k"] == 2]
    assert one["index_rss"] > 0
    # each of two readers is charged about half of the pages both have resident
    for _, r in two.iterrows():
        assert r["index_rss"] > 0 and r["index_pss"] < 0.75 * r["index_rss"]
    t = totals(frame).set_index("k")
    assert t.loc[2, "index_pss_total_MiB"] < 1.5 * t.loc[1, "index_pss_total_MiB"]
    assert t.loc[2, "rss_total_MiB"] > 1.8 * t.loc[1, "rss_total_MiB"]  # RSS counts it twice


def _texts(fig) -> set[str]:
    """Every tick label and text drawn on a figure's axes."""
    return {t.get_text() for ax in fig.axes
            for t in ax.get_xticklabels() + ax.get_yticklabels() + ax.texts}


def test_plots_draw_what_they_are_given():
    """Each profile chart draws its inputs: the variants' names, and the values as the bars'
    lengths or the lines' points (a chart of the wrong column, or of nothing, fails)."""
    from lootlab.plots.profiling import bucket_bars, gc_pause_chart, memory_bars, pss_vs_replicas
    from lootlab.profiling import GcEvent, GcStats
    shares = bucket_shares([FlameProfile("a", {LOOP + (NP,): 3, LOOP: 1}),
                            FlameProfile("b", {LOOP + (CYGRPC,): 2})])
    assert {"a", "b"} <= _texts(bucket_bars(shares))
    table = pd.DataFrame({"variant": ["a", "b"], "allocs_per_op": [1.0, 5.0],
                          "peak_heap_MiB": [30, 40], "RssAnon_MiB": [50, 60]})
    mem = memory_bars(table)
    assert {"a", "b"} <= _texts(mem)
    assert [p.get_width() for p in mem.axes[0].patches] == [1.0, 5.0]     # allocs per op
    assert {50.0, 60.0, 30.0, 40.0} <= {p.get_width() for p in mem.axes[1].patches}
    tot = pd.DataFrame({"variant": ["mmap"] * 2, "k": [1, 2], "pss_total_MiB": [80, 150],
                        "rss_total_MiB": [110, 220], "index_pss_total_MiB": [9, 9]})
    lines = {ln.get_label(): list(ln.get_ydata()) for ax in pss_vs_replicas(tot).axes
             for ln in ax.get_lines()}
    assert [80, 150] in lines.values() and [110, 220] in lines.values()
    ev = [GcEvent(0, 0, 1000, 1, 0), GcEvent(2, 5, 90_000, 10, 0)]
    gc = gc_pause_chart([GcStats("a", 100, ev), GcStats("b", 100, [])])
    assert {"a", "b"} <= _texts(gc)


def test_unknown_variant_is_named_before_any_profiler_runs():
    from lootlab.profiling._run import ProfilerError, workload_args
    with pytest.raises(ProfilerError, match="unknown variant 'mmpa'.*mmap"):
        workload_args("mmpa", queries=10)


# -- the differential view, on synthetic folded stacks -------------------------------------

OP = "_overlay_op.<locals>.op (lootlab/workload.py:126)"


def run_of(below: dict[tuple[str, ...], int], libc: str = "0x7fa82364524a") -> dict:
    """Stacks as py-spy records a workload: a start-up chain whose first frame is a libc
    address (it moves from run to run), the measured loop, the op, then ``below``."""
    head = (f"{libc} (libc.so.6)",) + LOOP + (OP,)
    return {head + s: c for s, c in below.items()} | {(f"{libc} (libc.so.6)", "imports"): 500}


def test_diff_aligns_at_the_measured_op_and_compares_shares():
    a = FlameProfile("A", run_of({("f", "g"): 60, ("h",): 40}, libc="0x7f0000000001"))
    b = FlameProfile("B", run_of({("f",): 30, ("k",): 70}, libc="0x7f0000000002"))
    t = diff(a, b).set_index("frame")
    assert t.attrs["aligned_at"] == OP
    assert t.loc["f", "delta_total"] == pytest.approx(0.6 - 0.3)     # shares, not counts
    assert t.loc["h", "delta_total"] == pytest.approx(0.4)
    assert t.loc["k", "delta_total"] == pytest.approx(-0.7)
    assert not any("libc" in f or f == "imports" for f in t.index)  # only below the op
    root = ET.fromstring(diff_svg(a, b, title="A vs B"))
    boxes = {g.get("data-n"): g for g in root.iter(f"{SVG}g") if g.get("class") == "lf"}
    assert boxes[OP].get("data-root") == "1"                       # the op is the top bar
    assert [float(v) for v in boxes["f"].get("data-s").split()] == pytest.approx([0.6, 0.3])
    fill = {n: g.find(f"{SVG}rect").get("fill") for n, g in boxes.items()}
    red, blue = (lambda c: c[0] > c[2]), (lambda c: c[2] > c[0])
    rgb = {n: tuple(int(v) for v in f[4:-1].split(",")) for n, f in fill.items()}
    assert red(rgb["f"]) and red(rgb["h"]) and blue(rgb["k"])
    words = " ".join(t.text or "" for t in root.iter(f"{SVG}text"))
    assert "more in A" in words and "more in B" in words and "share no frames" not in words


SVG = "{http://www.w3.org/2000/svg}"
names = st.sampled_from(["f", "g", "h", "k", "m"])


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.lists(names, min_size=1, max_size=4).map(tuple), st.integers(1, 50),
                       min_size=1, max_size=8),
       st.dictionaries(st.lists(names, min_size=1, max_size=4).map(tuple), st.integers(1, 50),
                       min_size=1, max_size=8))
def test_diff_shares_match_a_brute_force_count(below_a, below_b):
    from lootlab.profiling.align import align, union_tree
    a, b = run_of(below_a), run_of(below_b)
    t = diff(a, b).set_index("frame")

    def share(below, frame):             # samples whose stack has the frame, once each
        return sum(c for s, c in below.items() if frame in s) / sum(below.values())
    for frame in {f for s in [*below_a, *below_b] for f in s}:
        want = share(below_a, frame) - share(below_b, frame)
        got = t.loc[frame, "delta_total"] if frame in t.index else 0.0
        assert got == pytest.approx(want, abs=1e-9)

    def prefix(below, path):
        return sum(c for s, c in below.items() if s[:len(path)] == path) / sum(below.values())
    stack = [union_tree(align(a, b))]
    while stack:
        node = stack.pop()
        assert node["s"] == pytest.approx((prefix(below_a, node["p"]), prefix(below_b, node["p"])))
        stack += node["c"].values()


def test_disjoint_stacks_are_shown_side_by_side_with_a_sentence():
    a = FlameProfile("grpc-tls-pooled", run_of({("GrpcClient.near (lootlab/clients.py:278)",
                                                 "_query"): 97, ("array_subscript",): 1}))
    b = FlameProfile("mmap", run_of({("LootIndex.near (lootlab/index.py:231)",
                                      "query_cells"): 99}))
    svg = diff_svg(a, b, title="grpc-tls-pooled vs mmap")
    root = ET.fromstring(svg)
    assert root.get("data-lf-panels") == "2" and root.get("data-lf-names") == "grpc-tls-pooled|mmap"
    words = " ".join(t.text or "" for t in root.iter(f"{SVG}text"))
    assert "grpc-tls-pooled and mmap share no frames" in words
    headings = [t.text for t in root.iter(f"{SVG}text") if t.get("class") == "lf-heading"]
    assert [h.split(":")[0] for h in headings] == ["grpc-tls-pooled", "mmap"]
    panels = {g.get("data-p") for g in root.iter(f"{SVG}g") if g.get("class") == "lf"}
    assert panels == {"0", "1"}
    assert "more in" not in words                    # no diverging legend without a diff


def test_unnamed_native_frames_match_across_runs():
    """ASLR moves a library's bare addresses; by library they are the same frames."""
    lib = "grpc/_cython/cygrpc.cpython-311-x86_64-linux-gnu.so"
    a = run_of({("call", f"0x7f1 ({lib})", f"0x7f2 ({lib})", "sendmsg (libc.so.6)"): 10})
    b = run_of({("call", f"0x7e9 ({lib})", "sendmsg (libc.so.6)"): 20})
    assert diff(a, b).empty


def test_stages_print_whole_lines_to_a_log_and_a_bar_on_a_terminal():
    import io

    from lootlab.profiling.stages import Stages

    log = io.StringIO()
    s = Stages("lootlab profile x", 2, file=log)
    with s.stage("first"):
        pass
    with pytest.raises(RuntimeError), s.stage("second", seconds=3):
        raise RuntimeError("boom")
    lines = log.getvalue().splitlines()
    assert lines[0] == "lootlab profile x: [1/2] first ..."
    assert re.fullmatch(r"lootlab profile x: \[1/2\] first: done in \d+\.\d s", lines[1])
    assert re.fullmatch(r"lootlab profile x: \[2/2\] second: failed after \d+\.\d s", lines[3])
    assert "\r" not in log.getvalue()

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True
    tty = Tty()
    with Stages("p", 1, file=tty).stage("slow", seconds=2):
        deadline = time.monotonic() + 30
        while "\r" not in tty.getvalue() and time.monotonic() < deadline:
            time.sleep(0.05)                      # wait for the bar's first tick, not a fixed time
    assert "\r" in tty.getvalue() and "done in" in tty.getvalue()


def test_a_profiler_reaches_a_remote_variant_through_the_delaying_proxy():
    """``network=`` on the profilers: every pooled query pays the asked round trip (40 ms),
    which a loopback call (a few ms) never does."""
    from lootlab import Network
    from lootlab.profiling import counters
    slow = counters("grpc-tls-pooled", queries=20, source="rusage",
                    network=Network(rtt_ms=40.0))
    assert slow.ops == 20 and slow.seconds / slow.ops >= 0.9 * 0.040
