"""``lootlab profile flame|perf|counters|memory|replicas|gc|diff``: where a variant's CPU,
memory, GC and kernel time go.  Every subcommand names its variant(s) with ``--variant/-v``
(``diff`` exactly two, ``counters`` one or more)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..paths import results_dir
from ._spelling import legacy_variants, one_variant, several_variants, variant_option
from ._util import echo_table, writable_dir

_VARIANT = variant_option()


_SECONDS = click.FloatRange(min=0, min_open=True)   # a measurement needs time to happen
_COUNT = click.IntRange(min=1)


def _stages(kind: str, total: int):
    """Stage lines on stderr (a bar too on a terminal): a profile is quiet for tens of seconds."""
    from ..profiling.stages import Stages
    return Stages(f"lootlab profile {kind}", total)


def _out(out: Path | None, kind: str, variant: str) -> Path:
    """The artifact directory, created and proven writable (called before the run, so a
    read-only or missing-permission --out fails at once, and again after it)."""
    return writable_dir(out or results_dir() / "profile" / kind / variant)


@click.group("profile")
def command() -> None:
    """Profile a variant's overlay workload in a fresh process (py-spy, memray, /proc, GC).

    Artifacts go under data/results/profile/ unless --out is given (created if missing,
    checked writable before the run)."""


@command.command("flame")
@_VARIANT
@click.option("--duration", type=_SECONDS, default=5.0, show_default=True, help="seconds sampled")
@click.option("--rate", type=_COUNT, default=None, help="py-spy samples per second [100]")
@click.option("--native/--no-native", default=True, show_default=True,
              help="sample C frames (memcpy, OpenSSL, gRPC core)")
@click.option("--idle/--no-idle", default=False, show_default=True,
              help="keep samples of waiting threads (network waits)")
@click.option("--gil/--no-gil", default=False, show_default=True,
              help="only samples holding the GIL")
@click.option("--pyspy-svg", is_flag=True, help="also keep py-spy's own SVG (a second run)")
@click.option("--spin", is_flag=True, hidden=True, help="CPU-bound test workload")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None)
def flame(variant: str, duration: float, rate: int | None, native: bool, idle: bool, gil: bool,
          pyspy_svg: bool, spin: bool, out: Path | None) -> None:
    """CPU flame graph: SVG, speedscope JSON, collapsed stacks and frame table."""
    from ..profiling import bucket_shares, flamegraph
    _out(out, "flame", variant)
    prof = flamegraph(variant, duration=duration, native=native, idle=idle, gil=gil, rate=rate,
                      pyspy_svg=pyspy_svg, spin=spin,
                      progress=_stages("flame", 2 if pyspy_svg else 1))
    d = _out(out, "flame", prof.variant)
    paths = prof.save(d)
    shares = bucket_shares([prof]).drop(columns=["samples"]).set_index("variant").T
    shares = shares[shares.iloc[:, 0] > 0].sort_values(shares.columns[0], ascending=False)
    work = sum(prof.work_stacks.values())
    click.echo(f"{prof.samples:,} samples, {work:,} in the measured loop; bucket shares:")
    echo_table(shares.reset_index(names="bucket").round(3))
    click.echo("top frames (self share):")
    echo_table(prof.frames[["frame", "self_share", "total_share", "bucket"]].head(8).round(3))
    click.echo(f"wrote {paths['svg']} (open in a browser; speedscope.json for speedscope.app)")


@command.command("memory")
@_VARIANT
@click.option("--queries", "-n", type=_COUNT, default=2000, show_default=True)
@click.option("--native", is_flag=True, help="memray native traces (slower)")
@click.option("--show-source", is_flag=True, help="let the memray HTML include source lines")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None)
def memory(variant: str, queries: int, native: bool, show_source: bool, out: Path | None) -> None:
    """Allocations and bytes per op (memray), /proc memory over an import-only baseline."""
    import pandas as pd  # heavy: only when a table is printed

    from ..profiling import memory as run_memory
    _out(out, "memory", variant)
    prof = run_memory(variant, queries=queries, native=native, show_source=show_source,
                      progress=_stages("memory", 4))
    d = _out(out, "memory", variant)
    (d / "memory.json").write_text(json.dumps(prof.to_dict(), indent=1))
    if prof.flamegraph_html:
        (d / "memray-flamegraph.html").write_text(prof.flamegraph_html)
    row = pd.DataFrame([prof.summary()]).T.reset_index()
    row.columns = ["measure", "value"]
    echo_table(row, max_rows=100)
    click.echo(f"note: {prof.note}")
    click.echo(f"wrote {d / 'memory.json'} and memray-flamegraph.html")


@command.command("replicas")
@_VARIANT
@click.option("--ks", default="1,2,4,8", show_default=True, help="replica counts")
@click.option("--queries", "-n", type=_COUNT, default=2000, show_default=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None)
def replicas(variant: str, ks: str, queries: int, out: Path | None) -> None:
    """PSS per replica and in total with K readers alive at once (shared pages count once)."""
    from ..profiling.replicas import replicas as run_replicas
    from ..profiling.replicas import totals
    try:
        kk = [int(k) for k in ks.split(",") if k.strip()]
    except ValueError:
        raise click.BadParameter(f"--ks must be integers separated by commas, not {ks!r}")
    if not kk or min(kk) < 1:
        raise click.BadParameter(f"--ks must be replica counts >= 1, not {ks!r}")
    _out(out, "replicas", variant)
    frame = run_replicas(variant, kk, queries=queries, progress=True)
    d = _out(out, "replicas", variant)
    frame.to_csv(d / "replicas.csv", index=False)
    echo_table(totals(frame).round(2))
    click.echo(f"wrote {d / 'replicas.csv'}")


@command.command("gc")
@_VARIANT
@click.option("--queries", "-n", type=_COUNT, default=5000, show_default=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None)
def gc(variant: str, queries: int, out: Path | None) -> None:
    """GC collections per 1k ops by generation, total/p99/max pause (gc.callbacks)."""
    import pandas as pd

    from ..profiling import gc_pauses
    _out(out, "gc", variant)
    stats = gc_pauses(variant, queries=queries, progress=_stages("gc", 1))
    d = _out(out, "gc", variant)
    (d / "gc.json").write_text(json.dumps({"summary": stats.summary(),
                                           "pauses_ms": stats.pauses_ms.tolist()}, indent=1))
    echo_table(pd.DataFrame([stats.summary()]).round(4))
    click.echo(f"wrote {d / 'gc.json'}")


@command.command("diff")
@variant_option(several=True)
@legacy_variants(several=True)
@click.option("--duration", type=_SECONDS, default=5.0, show_default=True, help="seconds each")
@click.option("--rate", type=_COUNT, default=None, help="py-spy samples per second [100]")
@click.option("--idle/--no-idle", default=False, show_default=True)
@click.option("--min-delta", type=float, default=0.005, show_default=True,
              help="hide frames whose share differs by less")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None)
def diff(variants: tuple[str, ...], legacy_variants: tuple[str, ...], duration: float,
         rate: int | None, idle: bool, min_delta: float, out: Path | None) -> None:
    """What the first --variant spends that the second does not (normalised shares, a - b):
    `profile diff -v A -v B`."""
    from ..profiling import compare
    from ..profiling.diff import disjoint_sentence, is_disjoint
    variant_a, variant_b = several_variants(variants, legacy_variants, exactly=2)
    _out(out, "diff", f"{variant_a}-vs-{variant_b}")
    result = compare(variant_a, variant_b, duration=duration, rate=rate, idle=idle,
                     min_delta=min_delta, progress=_stages("diff", 2))
    d = _out(out, "diff", f"{variant_a}-vs-{variant_b}")
    paths = result.save(d)
    t = result.table
    al = result.alignment
    click.echo(f"shares of the samples under {al.frame}")
    if is_disjoint(al):
        click.echo(disjoint_sentence(al, variant_a, variant_b))
    click.echo(f"more in {variant_a}:")
    echo_table(t.head(8)[["frame", "bucket", "self_a", "self_b", "delta_self"]].round(3))
    click.echo(f"more in {variant_b}:")
    echo_table(t.tail(5).iloc[::-1][["frame", "bucket", "self_a", "self_b", "delta_self"]]
               .round(3))
    click.echo(f"wrote {paths['svg']} and {paths['table']}")


@command.command("perf")
@_VARIANT
@legacy_variants()
@click.option("--duration", type=_SECONDS, default=5.0, show_default=True, help="seconds sampled")
@click.option("--frequency", "-F", type=_COUNT, default=499, show_default=True,
              help="perf samples per second")
@click.option("--call-graph", type=click.Choice(["dwarf", "fp"]), default="dwarf",
              show_default=True, help="how perf unwinds user stacks (fp: frame pointers)")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None)
def perf(variant: str, legacy_variants: str | None, duration: float, frequency: int,
         call_graph: str, out: Path | None) -> None:
    """Kernel-inclusive flame graph with perf record (native and kernel frames)."""
    variant = one_variant(variant, legacy_variants)
    from ..profiling import bucket_shares, perf_flamegraph
    from ..profiling.categorize import kernel_total
    from ..profiling.flame import frames_table
    _out(out, "perf", variant)
    prof = perf_flamegraph(variant, duration=duration, frequency=frequency,
                           call_graph=call_graph, progress=_stages("perf", 1))
    d = _out(out, "perf", prof.variant)
    paths = prof.save(d)
    shares = bucket_shares([prof]).drop(columns=["samples"]).set_index("variant").T
    shares = shares[shares.iloc[:, 0] > 0].sort_values(shares.columns[0], ascending=False)
    click.echo(f"{prof.samples:,} samples in the measured loop, "
               f"{kernel_total(shares.iloc[:, 0]):.1%} in the kernel; bucket shares:")
    echo_table(shares.reset_index(names="bucket").round(3))
    click.echo("top frames (self share):")
    echo_table(frames_table(prof.stacks)[["frame", "self_share", "total_share", "bucket"]]
               .head(10).round(3))
    click.echo(f"wrote {paths['svg']}")


@command.command("counters")
@variant_option(several=True)
@legacy_variants(several=True)
@click.option("--duration", type=_SECONDS, default=3.0, show_default=True,
              help="seconds each variant runs")
@click.option("--source", type=click.Choice(["auto", "perf", "rusage"]), default="auto",
              show_default=True, help="perf stat, or getrusage only")
def counters(variants: tuple[str, ...], legacy_variants: tuple[str, ...], duration: float,
             source: str) -> None:
    """Context switches, page faults, migrations, syscalls per op (perf stat), one column
    per --variant."""
    variants = several_variants(variants, legacy_variants)
    from ..profiling import counters_of
    from ..report.format import number  # three significant figures, as pages show
    table = counters_of(variants, duration=duration, source=source,
                        progress=_stages("counters", len(variants)))
    per_op = table.set_index("variant").T.map(number).reset_index(names="per op")
    echo_table(per_op, max_rows=100)
