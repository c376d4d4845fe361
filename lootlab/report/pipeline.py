"""``lootlab report``: measure into a run directory, then draw every page from it.

Measuring runs each notebook in a fresh kernel (one notebook's threads and memory never
touch the next one's numbers); each keeps what it measured in ``OUT/run`` and draws its
page from that.  ``--from RUN`` draws every page again from a stored run without measuring,
all notebooks in one kernel: a caption changed costs seconds, not a new measurement."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import noise
from ..errors import LootlabError
from ..experiments import rundir
from ..experiments.sizes import check_size
from ..loadgen.units import plural
from . import environment
from .execute import NotebookRun, execute_notebook, replay_notebook, shared_kernel
from .export import env_footer, export_html, nav_header
from .front_page import write_index

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
    run_dir: Path | None = None      # the run directory the pages were drawn from

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


#: Under the report's directory: the run directory every page is drawn from.
RUN_DIR = "run"


def _parameters(source: Path, size: str, run_dir: Path, replay: bool) -> dict[str, Any]:
    """papermill's parameters: the size, and ``run_dir`` / ``replay`` for a notebook that
    declares them (passing them to another would only make papermill warn)."""
    import papermill

    declared = papermill.inspect_notebook(str(source))
    params: dict[str, Any] = {"size": size}
    if "run_dir" in declared:
        params["run_dir"] = str(run_dir)
    if replay and "replay" in declared:
        params["replay"] = True
    return params


@dataclass(frozen=True)
class PreviousReport:
    """The report already in an output directory, which measuring there would replace
    (its run directory is wiped: minutes or hours of measurements)."""

    size: str          # "quick", "standard", "full", or "unknown" (an unreadable manifest)
    created: str       # "2026-12-07 17:37"
    out_dir: Path
    run_dir: Path

    def describe(self) -> str:
        return (f"the {self.size} report of {self.created} in {self.out_dir}/ "
                f"(its run: {self.run_dir})")


def previous_report(out: str | Path) -> PreviousReport | None:
    """The report whose run is in ``out/run``, if any: what measuring into ``out`` replaces."""
    run_dir = Path(out) / RUN_DIR
    manifest_path = run_dir / rundir.MANIFEST
    if not manifest_path.is_file():
        return None
    try:
        manifest = json.loads(manifest_path.read_text())
        size = str(manifest.get("params", {}).get("size") or "unknown")
        created = str(manifest.get("created", ""))[:16].replace("T", " ") or "an unknown date"
    except (OSError, ValueError, AttributeError):
        size, created = "unknown", "an unknown date"
    return PreviousReport(size, created, Path(out), run_dir)


def _say(progress: Callable[[str], None] | None, bars: bool) -> Callable[[str], None]:
    """Whole lines for a log or a caller's ``progress``; above the bars on a terminal."""
    if progress is not None:
        return progress
    if bars:
        from tqdm.auto import tqdm

        return lambda msg: tqdm.write(msg, file=sys.stderr)
    return lambda msg: print(msg, file=sys.stderr, flush=True)


def build_report(size: str = "quick", out: str | Path = "reports", *, show_code: bool = False,
                 notebooks: str | Path | None = None, only: Sequence[str] | None = None,
                 cell_timeout: float | None = None, from_run: str | Path | None = None,
                 progress: Callable[[str], None] | None = None) -> Report:
    """Measure into ``out/run`` and draw ``out/<name>.html`` + ``out/index.html`` from it;
    with ``from_run``, draw every page again from that stored run without measuring.

    Every notebook runs even when an earlier one fails; a failed notebook's partial HTML is
    written like the others, and ``Report.ok`` is False.
    """
    out_dir = Path(out).resolve()
    if from_run is not None:
        stored = rundir.open_run(from_run)       # one line when it is not a run of ours
        size = str(stored.manifest.get("params", {}).get("size", size))
        sources = [p for p in find_notebooks(notebooks, only) if p.stem in stored.parts]
        if not sources:
            raise ReportError(f"{from_run}: the run holds no part of these notebooks "
                              f"(it holds: {', '.join(stored.parts) or 'nothing'})")
        env = environment.Environment.from_dict(stored.manifest.get("env", {}))
    else:
        check_size(size)
        sources = find_notebooks(notebooks, only)
        env = environment.collect(size)
    out_dir.mkdir(parents=True, exist_ok=True)
    names = [p.stem for p in sources]
    bars = progress is None and sys.stderr.isatty()
    say = _say(progress, bars)
    if from_run is None:
        replaced = previous_report(out)
        if replaced is not None:     # never wiped without a word: it may have taken an hour
            say(f"replacing {replaced.describe()}; --out another directory to keep it")
        stored = rundir.create(out_dir / RUN_DIR, what=f"lootlab report --size {size}",
                               params={"size": size, "notebooks": names})
    started = time.perf_counter()
    # Every page states the machine as the index does (start and end of the whole run,
    # judged against one baseline) and, beside it, the machine around its own notebook: so
    # pages are drawn once every notebook has run.  A replay reads the very same rows.
    if from_run is None:
        runs = _measure(sources, size, stored, out_dir, say=say, bars=bars,
                        timeout=cell_timeout or (900 if size == "quick" else 3 * 3600))
        env.finish()
        stored.note(env=env.to_dict(), seconds=round(time.perf_counter() - started, 1),
                    page_env=env.rows())
        draw = _Drawing(out_dir, names, [tuple(r) for r in env.rows()], show_code)
        for run in runs:
            draw.page(run)
    else:
        page_env = stored.manifest.get("page_env") or env.rows()
        draw = _Drawing(out_dir, names, [tuple(r) for r in page_env], show_code)
        runs = _replay(sources, size, stored, draw, say, cell_timeout or 300)
    seconds = time.perf_counter() - started
    index = write_index(runs, env, out_dir, total_seconds=seconds)
    (out_dir / "report.json").write_text(json.dumps({
        "size": size, "seconds": round(seconds, 1), "run": str(stored.path),
        "replayed": from_run is not None, "environment": env.to_dict(),
        "notebooks": [{"name": r.name, "ok": r.ok, "seconds": round(r.seconds, 1),
                       "html": r.html.name if r.html else None,
                       "error": r.error.one_line() if r.error else None,
                       "summary": r.summary, "noise": r.extra.get("noise")}
                      for r in runs]}, indent=2, default=str))
    return Report(out_dir=out_dir, index=index, runs=runs, env=env, seconds=seconds,
                  run_dir=stored.path)


@dataclass
class _Drawing:
    """Where pages go and what every page carries (the bar of links, the footer)."""

    out_dir: Path
    names: list[str]
    env_rows: list[tuple[str, str]]
    show_code: bool

    def page(self, run: NotebookRun) -> None:
        if run.executed.exists():
            run.html = export_html(run.executed, self.out_dir / f"{run.name}.html",
                                   show_code=self.show_code,
                                   header=nav_header(self.names, run.name),
                                   footer=env_footer(self.env_rows + _around(run)),
                                   title=run.title)


def _around(run: NotebookRun) -> list[tuple[str, str]]:
    """The machine around this notebook (the pipeline's check before and after it), the
    row that says whether this page's numbers came from a busy machine."""
    check = run.extra.get("noise")
    if not check:
        return []
    return [("machine around this notebook", str(noise.NoiseCheck.from_dict(check)))]


def _measure(sources: list[Path], size: str, stored: rundir.Run, out_dir: Path, *,
             say: Callable[[str], None], bars: bool, timeout: float) -> list[NotebookRun]:
    """Each notebook in a fresh kernel, measuring into the run, with the machine's noise
    checked around it (kept in the manifest, so a replay states it too)."""
    from tqdm.auto import tqdm

    runs: list[NotebookRun] = []
    noise_by: dict[str, Any] = {}
    with tqdm(total=len(sources), desc="notebooks", unit="nb", file=sys.stderr,
              disable=not bars) as bar:
        for i, source in enumerate(sources, 1):
            bar.set_postfix_str(source.stem)
            where = f"[{i}/{len(sources)}] {source.name}"
            say(f"{where}: running ({size})")
            check = noise.start()
            run = execute_notebook(
                source, out_dir / "executed" / source.name,
                parameters=_parameters(source, size, stored.path, replay=False),
                cell_timeout=timeout, cell_bar=bars, every=LONG_CELL_EVERY,
                on_long_cell=None if bars else lambda cell, where=where: say(
                    f"{where}: {cell.describe()}"))
            check = noise.finish(check)
            run.extra["noise"] = noise_by[source.stem] = check.to_dict()
            stored.note(noise=noise_by)
            if check.noisy:
                say(f"{where}: the machine was busy ({check.short()})")
            say(f"{where}: {_status(run)} ({run.seconds:.0f} s)")
            runs.append(run)
            bar.update(1)
    return runs


#: Kernels a replay draws in at once: one per core, at most this many (drawing is CPU-bound
#: in each kernel; the report process only waits and exports).
REPLAY_KERNELS = 2


def _replay(sources: list[Path], size: str, stored: rundir.Run, draw: _Drawing,
            say: Callable[[str], None], timeout: float) -> list[NotebookRun]:
    """Every notebook drawn again from the stored run: a few shared kernels (one per core)
    each take the next notebook waiting, so the imports are paid once per kernel and two
    cores draw at once.  Pages come back in the notebooks' order."""
    import os
    import queue
    import threading

    noise_by = stored.manifest.get("noise", {})
    waiting: queue.Queue[tuple[int, Path]] = queue.Queue()
    for i, source in enumerate(sources):
        waiting.put((i, source))
    runs: dict[int, NotebookRun] = {}
    failures: list[BaseException] = []

    def worker() -> None:
        try:
            with shared_kernel(draw.out_dir) as kernel:
                while True:
                    try:
                        i, source = waiting.get_nowait()
                    except queue.Empty:
                        return
                    run = replay_notebook(
                        source, draw.out_dir / "executed" / source.name,
                        parameters=_parameters(source, size, stored.path, replay=True),
                        kernel=kernel, cell_timeout=timeout)
                    if source.stem in noise_by:
                        run.extra["noise"] = noise_by[source.stem]
                    draw.page(run)
                    runs[i] = run
                    say(f"[{len(runs)}/{len(sources)}] {source.name}: drawn from "
                        f"{stored.path}: {_status(run)} ({run.seconds:.1f} s)")
        except BaseException as exc:  # noqa: BLE001 (re-raised below, in the caller)
            failures.append(exc)

    kernels = max(1, min(REPLAY_KERNELS, os.cpu_count() or 1, len(sources)))
    threads = [threading.Thread(target=worker, name=f"lootlab-replay-{k}", daemon=True)
               for k in range(kernels)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]
    return [runs[i] for i in sorted(runs)]


def _status(run: NotebookRun) -> str:
    return "ok" if run.ok else f"FAILED: {run.error.one_line()}"


def run_report(size: str = "quick", out: str | Path = "reports", **options) -> Report:
    """``build_report`` that raises ``ReportError`` naming the first failed notebook and cell."""
    report = build_report(size, out, **options)
    failed = [r for r in report.runs if not r.ok]
    if failed:
        first = failed[0]
        where = first.html or first.executed
        raise ReportError(f"{plural(len(failed), 'notebook')} failed; {first.name}: "
                          f"{first.error.one_line()} (partial report: {where})")
    return report
