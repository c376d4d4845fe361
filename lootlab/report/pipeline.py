"""``lootlab report``: execute every notebook in a fresh kernel, export HTML, write the index."""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import noise
from ..errors import LootlabError
from . import environment
from .execute import NotebookRun, execute_notebook
from .export import env_footer, export_html, nav_header
from .index import write_index

PROFILES = ("quick", "standard", "full")

#: Seconds between the lines a log gets while one notebook cell keeps running.
LONG_CELL_EVERY = 30.0


class ReportError(LootlabError):
    """A report could not be made, or a notebook in it failed (its HTML is kept)."""


@dataclass
class Report:
    out_dir: Path
    index: Path
    runs: list[NotebookRun]
    env: environment.Environment
    seconds: float

    @property
    def ok(self) -> bool:
        return all(run.ok for run in self.runs)


def notebooks_dir() -> Path:
    """``notebooks/`` of the checkout lootlab runs from."""
    return Path(__file__).resolve().parents[2] / "notebooks"


def find_notebooks(directory: str | Path | None = None,
                   only: Sequence[str] | None = None) -> list[Path]:
    directory = Path(directory) if directory else notebooks_dir()
    found = sorted(p for p in directory.glob("*.ipynb") if not p.name.startswith("."))
    if not found:
        raise ReportError(f"no notebooks (*.ipynb) in {directory}; run from a lootlab checkout "
                          "or pass --notebooks DIR")
    if only:
        wanted = [s.removesuffix(".ipynb") for s in only]
        picked = [p for p in found if any(p.stem == w or p.stem.startswith(w) for w in wanted)]
        missing = [w for w in wanted if not any(p.stem == w or p.stem.startswith(w) for p in found)]
        if missing:
            raise ReportError(f"no notebook named {', '.join(missing)} in {directory} "
                              f"(have: {', '.join(p.stem for p in found)})")
        found = picked
    return found


#: Under the report's directory: one run directory per notebook that keeps its results
#: (``lootlab.notebook.keep``), and a ``run.json`` listing them all, for ``lootlab compare``.
RUN_DIR = "run"


def _parameters(source: Path, profile: str, out_dir: Path) -> dict[str, Any]:
    """papermill's parameters: the profile, and ``run_dir`` for a notebook that declares it
    (only those keep results; passing it to the others would only make papermill warn)."""
    import papermill

    params: dict[str, Any] = {"profile": profile}
    if "run_dir" in papermill.inspect_notebook(str(source)):
        run_dir = out_dir / RUN_DIR / source.stem
        if run_dir.exists():
            shutil.rmtree(run_dir)      # results of an earlier report into the same folder
        params["run_dir"] = str(run_dir)
    return params


def build_report(profile: str = "quick", out: str | Path = "reports", *, show_code: bool = False,
                 notebooks: str | Path | None = None, only: Sequence[str] | None = None,
                 cell_timeout: float | None = None,
                 progress: Callable[[str], None] | None = None) -> Report:
    """Execute the notebooks with ``profile`` and export ``out/<name>.html`` + ``out/index.html``.

    Every notebook runs even when an earlier one fails (each gets a fresh kernel); a failed
    notebook's partial HTML is written like the others, and ``Report.ok`` is False.
    """
    if profile not in PROFILES:
        raise ReportError(f"unknown profile {profile!r}: use one of {', '.join(PROFILES)}")
    # A terminal gets bars (notebooks, and the running notebook's cells) that redraw in place;
    # a log, or a caller's ``progress``, gets whole lines only, one more every
    # LONG_CELL_EVERY seconds while a cell runs.
    bars = progress is None and sys.stderr.isatty()
    from tqdm.auto import tqdm

    if progress is not None:
        say = progress
    elif bars:
        def say(msg: str) -> None:
            tqdm.write(msg, file=sys.stderr)
    else:
        def say(msg: str) -> None:
            print(msg, file=sys.stderr, flush=True)
    out_dir = Path(out).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    sources = find_notebooks(notebooks, only)
    env = environment.collect(profile)
    names = [p.stem for p in sources]
    footer = env_footer(env.rows())
    timeout = cell_timeout or (900 if profile == "quick" else 3 * 3600)
    started = time.perf_counter()
    runs: list[NotebookRun] = []
    with tqdm(total=len(sources), desc="notebooks", unit="nb", file=sys.stderr,
              disable=not bars) as bar:
        for i, source in enumerate(sources, 1):
            bar.set_postfix_str(source.stem)
            where = f"[{i}/{len(sources)}] {source.name}"
            say(f"{where}: running ({profile})")
            check = noise.start()
            run = execute_notebook(
                source, out_dir / "executed" / source.name,
                parameters=_parameters(source, profile, out_dir), cell_timeout=timeout,
                cell_bar=bars, every=LONG_CELL_EVERY,
                on_long_cell=None if bars else lambda cell, where=where: say(
                    f"{where}: {cell.describe()}"))
            check = noise.finish(check)
            run.extra["noise"] = check.to_dict()
            if check.noisy:
                say(f"{where}: the machine was busy ({check.short()})")
            if run.executed.exists():
                run.html = export_html(run.executed, out_dir / f"{source.stem}.html",
                                       show_code=show_code, header=nav_header(names, source.stem),
                                       footer=footer, title=run.title)
            status = "ok" if run.ok else f"FAILED: {run.error.one_line()}"
            say(f"{where}: {status} ({run.seconds:.0f} s)")
            runs.append(run)
            bar.update(1)
    seconds = time.perf_counter() - started
    env.finish()
    from ..compare import combine_runs

    combine_runs(out_dir / RUN_DIR, what=f"lootlab report --profile {profile}",
                 params={"profile": profile, "notebooks": names}, parts=names)
    index = write_index(runs, env, out_dir, total_seconds=seconds)
    (out_dir / "report.json").write_text(json.dumps({
        "profile": profile, "seconds": round(seconds, 1), "environment": env.to_dict(),
        "notebooks": [{"name": r.name, "ok": r.ok, "seconds": round(r.seconds, 1),
                       "html": r.html.name if r.html else None,
                       "error": r.error.one_line() if r.error else None,
                       "summary": r.summary, "noise": r.extra.get("noise")}
                      for r in runs]}, indent=2, default=str))
    return Report(out_dir=out_dir, index=index, runs=runs, env=env, seconds=seconds)


def run_report(profile: str = "quick", out: str | Path = "reports", **options) -> Report:
    """``build_report`` that raises ``ReportError`` naming the first failed notebook and cell."""
    report = build_report(profile, out, **options)
    failed = [r for r in report.runs if not r.ok]
    if failed:
        first = failed[0]
        where = first.html or first.executed
        raise ReportError(f"{len(failed)} notebook(s) failed; {first.name}: "
                          f"{first.error.one_line()} (partial report: {where})")
    return report
