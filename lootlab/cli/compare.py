"""``lootlab compare RUN_A RUN_B``: every figure two runs share (latency, profile shares,
memory per op), both values with intervals, B/A and a verdict."""

from __future__ import annotations

from pathlib import Path

import click

from ._util import echo_table, writable_file

_RUN = click.Path(path_type=Path)   # checked by lootlab.experiments.comparison.load_run, one-line errors


@click.command("compare")
@click.argument("run_a", type=_RUN)
@click.argument("run_b", type=_RUN)
@click.option("--html", "html", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the comparison as a self-contained HTML page here.")
@click.option("--confidence", type=click.FloatRange(0.5, 0.999), default=0.95,
              show_default=True, help="Confidence of each interval.")
@click.option("--factor", type=click.FloatRange(min=1.0), default=1.1, show_default=True,
              help="Never call a change whose ratio B/A is within [1/factor, factor].")
def command(run_a: Path, run_b: Path, html: Path | None, confidence: float,
            factor: float) -> None:
    """Compare two run directories (`lootlab report` writes OUT/run, `lootlab bench --out`
    one of its own): every figure both hold, latency p50/p99/p99.9 and achieved rate,
    profile shares by bucket and memory per op, with intervals, the ratio B/A and
    "changed" or "within noise" (changed: the intervals are apart and the ratio beyond
    --factor)."""
    from ..experiments.comparison import caveats, compare_runs, display_frame, load_run

    a, b = load_run(run_a), load_run(run_b)
    if html is not None:
        writable_file(html)
    frame = compare_runs(a, b, confidence=confidence, factor=factor)
    click.echo(f"A: {run_a}  ({a.meta.get('what', '')}, {a.meta.get('created', '?')})")
    click.echo(f"B: {run_b}  ({b.meta.get('what', '')}, {b.meta.get('created', '?')})")
    click.echo(f"latency in us, achieved rate in requests/s, profile shares of the measured "
               f"loop's samples, memory per op; intervals {confidence:.0%}\n")
    echo_table(display_frame(frame), max_rows=400)
    counts = frame["verdict"].value_counts()
    click.echo("\n" + ", ".join(f"{v}: {n}" for v, n in counts.items()))
    for line in caveats(a, "A") + caveats(b, "B"):
        click.echo(f"note: {line}")
    if html is not None:
        from ..report.comparison_page import write_comparison

        write_comparison(html, frame, a, b, confidence=confidence, factor=factor)
        click.echo(f"wrote {html}")
