from __future__ import annotations

from pathlib import Path

import click

from ._util import writable_dir

# lootlab.report.PROFILES, spelled out: importing lootlab.report (nbformat) takes seconds,
# too long for `lootlab --help` (tests/test_cli_startup.py checks the two agree)
PROFILES = ("quick", "standard", "full")


@click.command("report")
@click.option("--profile", type=click.Choice(PROFILES), default="standard", show_default=True,
              help="standard: the main job, >= 3,000 samples per p99, about 15 min in all; "
                   "quick: a smoke run for tests (too few samples for conclusions); "
                   "full: the real experiment (about 45 min).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("reports"),
              show_default=True,
              help="Directory for index.html and one HTML per notebook (created if missing).")
@click.option("--show-code", is_flag=True, help="Keep the code cells in the HTML.")
@click.option("--notebooks", "notebooks", type=click.Path(file_okay=False, exists=True,
              path_type=Path), default=None, help="Notebook directory (default: notebooks/).")
@click.option("--only", multiple=True, help="Run only these notebooks (name or prefix, repeatable).")
def command(profile: str, out: Path, show_code: bool, notebooks: Path | None,
            only: tuple[str, ...]) -> None:
    """Execute every notebook (fresh kernel each) and export self-contained HTML reports."""
    from ..report import run_report   # nbformat, papermill: only when reporting

    writable_dir(out)    # before minutes of notebooks, not after them
    report = run_report(profile, out, show_code=show_code, notebooks=notebooks, only=only or None)
    click.echo(f"{report.index} ({len(report.runs)} notebooks, {report.seconds:.0f} s)")
