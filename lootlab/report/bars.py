"""Progress for long notebook cells: a bar while the cell runs, one line once it is done.

Under an IPython kernel (JupyterLab, or papermill for ``lootlab report``) the bar lives in
a display handle: tqdm's widget when ipywidgets is installed, else tqdm's text line,
redrawn at most twice a second.  When the work ends the handle's content is replaced by
one final line ("story steps: 5 of 5 steps in 18 s"), so the saved notebook shows that
line, never a widget without state or a stderr stream of ``\\r`` updates (which an export
shows as an empty red band).  The line says how long measuring took, which a page drawn
again from the stored run cannot say: it carries ``PROGRESS_METADATA`` and the HTML export
leaves it out, so a measured page and its replay read the same.  Outside a kernel it is tqdm on stderr,
which hides itself when stderr is not a terminal.
"""

from __future__ import annotations

import contextlib
import importlib.util
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Self, TextIO

#: Marks a progress output: the exported page drops it (``report.export``).
PROGRESS_METADATA = {"lootlab": {"progress": True}}


def is_progress(output: Any) -> bool:
    """True for an output a progress bar made (``PROGRESS_METADATA``)."""
    meta = output.get("metadata") or {}
    return bool((meta.get("lootlab") or {}).get("progress"))


def in_kernel() -> bool:
    """True under an IPython kernel (a notebook), where output goes to display handles."""
    if "IPython" not in sys.modules:
        return False
    from IPython import get_ipython

    shell = get_ipython()
    return shell is not None and hasattr(shell, "kernel")


def _took(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"
    return f"{int(seconds // 60)} min {seconds % 60:.0f} s"


class _HandleSink:
    """A file for tqdm that shows its latest line in a display handle instead of a stream;
    ``state`` gives the metadata each line carries (where the work is, for a log)."""

    def __init__(self, handle: Any, state: Callable[[], dict] = lambda: PROGRESS_METADATA) -> None:
        self.handle, self.state = handle, state

    def write(self, text: str) -> int:
        line = text.rsplit("\r", 1)[-1].strip()
        if line:
            self.handle.update({"text/plain": line}, raw=True, metadata=self.state())
        return len(text)

    def flush(self) -> None:
        pass


class Progress:
    """A bar over ``total`` units of work named ``desc``; ``start(name)`` marks the next
    one begun (the previous done), ``update`` counts done ones, ``close`` (or leaving the
    ``with`` block) leaves the final line."""

    def __init__(self, total: int, desc: str, *, unit: str = "step") -> None:
        if total < 0:
            raise ValueError(f"total must be 0 or more, not {total!r}")
        self.total, self.desc, self.unit = int(total), desc, unit
        self.done, self.started, self.closed = 0, time.monotonic(), False
        self._begun = False
        self._wall = self._updated = time.time()
        self._handle: Any = None
        self._bar = self._make_bar()

    def _make_bar(self) -> Any:
        opts = {"total": self.total, "desc": self.desc, "unit": self.unit, "leave": False}
        if not in_kernel():
            from tqdm.auto import tqdm
            return tqdm(disable=None, **opts)
        from IPython.display import display

        if importlib.util.find_spec("ipywidgets") is not None:
            from tqdm.notebook import tqdm as widget_bar
            bar = widget_bar(display=False, **opts)
            self._handle = display(bar.container, display_id=True,
                                   metadata=PROGRESS_METADATA)
            return bar
        from tqdm.std import tqdm  # no ipywidgets: tqdm's text line, in the handle

        self._handle = display({"text/plain": f"{self.desc}: starting"}, raw=True,
                               display_id=True, metadata=self.state())
        # a display handle is no terminal stream: it shows the line even where TQDM_DISABLE
        # hides tqdm's stream bars (a report's kernels), so the report's log, reading the
        # notebook papermill saves, can say how far the cell's work is
        return tqdm(file=_HandleSink(self._handle, self.state), mininterval=0.5, ncols=90,
                    disable=False, **opts)

    def state(self) -> dict:
        """``PROGRESS_METADATA`` with where the work is: units done of ``total`` and the
        wall-clock times (epoch seconds) it started and last counted one done."""
        return {"lootlab": {**PROGRESS_METADATA["lootlab"], "desc": self.desc,
                            "unit": self.unit, "done": self.done, "total": self.total,
                            "started": self._wall, "updated": self._updated}}

    def start(self, name: str) -> None:
        """``name`` begins: the unit before it (if any) is done.  Fits ``on_step=``."""
        if self._begun:
            self.update()
        self._begun = True
        self._bar.set_postfix_str(str(name), refresh=True)

    def update(self, n: int = 1) -> None:
        self.done += n
        self._updated = time.time()
        self._bar.update(n)

    def collect(self) -> list[Any]:
        """A list whose ``append`` counts one unit done: for ``results=`` of a sweep."""
        return _Counting(self)

    def final_line(self) -> str:
        took = _took(time.monotonic() - self.started)
        if self.done >= self.total:
            return f"{self.desc}: {self.total:,} of {self.total:,} {self.unit}s in {took}"
        return f"{self.desc}: stopped after {self.done:,} of {self.total:,} {self.unit}s ({took})"

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._bar.close()
        line = self.final_line()
        if self._handle is not None:
            self._handle.update({"text/plain": line}, raw=True, metadata=self.state())

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        if kind is None and self._begun and self.done < self.total:
            self.update(self.total - self.done)      # the last started unit is done too
        self.close()


class _Counting(list):
    def __init__(self, progress: Progress) -> None:
        super().__init__()
        self._progress = progress

    def append(self, item: Any) -> None:
        super().append(item)
        self._progress.update()


def progress(total: int, desc: str, *, unit: str = "step") -> Progress:
    """A ``Progress`` bar: ``with progress(5, "story steps") as bar: run(on_step=bar.start)``."""
    return Progress(total, desc, unit=unit)


def track(items: Iterable[Any], desc: str, *, unit: str = "step",
          name: Callable[[Any], str] = str) -> Iterator[Any]:
    """Each of ``items`` in turn, with a bar that names the one being worked on."""
    items = list(items)
    with progress(len(items), desc, unit=unit) as bar:
        for item in items:
            bar.start(name(item))
            yield item


class _NoBars:
    """A stderr that drops tqdm's ``\\r`` redraws and passes every other write through."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        if "\r" in text:
            return len(text)
        return self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


@contextlib.contextmanager
def quiet_bars() -> Iterator[None]:
    """Hide the text bars a library call draws on stderr (``profiling.replicas`` has one)
    while the cell shows its own ``Progress``; warnings and errors still reach stderr."""
    with contextlib.redirect_stderr(_NoBars(sys.stderr)):
        yield
