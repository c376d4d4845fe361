"""``lootlab report --size quick|standard|full``: measure into OUT/run, then draw every
notebook's page from it; ``lootlab report --from RUN`` draws the pages again from a stored run
without measuring.  The size was once called ``--profile``, a word now kept for profiler runs (``lootlab profile``);
``--profile`` still works and says so."""

from __future__ import annotations

from pathlib import Path

import click

from ._spelling import renamed_option
from ._util import writable_dir

# the report layer's sizes, spelled out: importing lootlab.report (nbformat) takes seconds,
# too long for `lootlab --help` (tests/integration/test_cli_startup.py checks the two agree)
SIZES = ("quick", "standard", "full")


@click.command("report")
@click.option("--size", type=click.Choice(SIZES), default="standard", show_default=True,
              help="standard: the main job, >= 3,000 samples per p99, about 18 min in all; "
                   "quick: a smoke run for tests (too few samples for conclusions); "
                   "full: the real experiment (over an hour).")
@click.option("--profile", "legacy_profile", type=click.Choice(SIZES), default=None,
              hidden=True, help="Old name of --size.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("reports"),
              show_default=True,
              help="Directory for index.html and one HTML per notebook (created if missing).")
@click.option("--replace", is_flag=True,
              help="Measure even when OUT holds a report of a larger size (standard or full "
                   "replaced by quick); a report of the same or a smaller size is replaced "
                   "anyway, with a line saying so.")
@click.option("--show-code", is_flag=True, help="Keep the code cells in the HTML.")
@click.option("--notebooks", "notebooks", type=click.Path(file_okay=False, exists=True,
              path_type=Path), default=None, help="Notebook directory (default: notebooks/).")
@click.option("--only", multiple=True, help="Run only these notebooks (name or prefix, repeatable).")
@click.option("--from", "from_run", type=click.Path(path_type=Path), default=None,
              help="Draw the pages again from this stored run directory (e.g. reports/run) "
                   "without measuring: seconds, not minutes.  Its size is the run's own.")
def command(size: str, legacy_profile: str | None, out: Path, replace: bool, show_code: bool,
            notebooks: Path | None, only: tuple[str, ...], from_run: Path | None) -> None:
    """Measure into OUT/run (a fresh kernel per notebook), then export self-contained HTML
    pages drawn from it; with --from RUN, draw the pages from a stored run instead."""
    size = renamed_option("--size", "--profile", size, legacy_profile)
    from ..report import run_report  # nbformat, papermill: only when reporting

    writable_dir(out)    # before minutes of notebooks, not after them
    if from_run is None and not replace:
        _refuse_to_shrink(out, size)
    report = run_report(size, out, show_code=show_code, notebooks=notebooks, only=only or None,
                        from_run=from_run)
    how = f"drawn from {report.run_dir}" if from_run else f"measured into {report.run_dir}"
    from ..loadgen.units import plural
    click.echo(f"{report.index} ({plural(len(report.runs), 'notebook')} {how}, "
               f"{report.seconds:.0f} s)")


def _refuse_to_shrink(out: Path, size: str) -> None:
    """A quick smoke run must not silently wipe a standard or full report's measurements
    (15 minutes to hours); a report of the same size or smaller is replaced with one line."""
    from ..report import ReportError
    from ..report.pipeline import previous_report

    previous = previous_report(out)
    if previous is not None and previous.size in SIZES and \
            SIZES.index(previous.size) > SIZES.index(size):
        raise ReportError(f"refusing to replace {previous.describe()} with a {size} report: "
                          "pass --replace to replace it, or --out another directory to keep it")
