"""The processes of the freshness experiment: the rebuild worker and the readers.

Each runs in its own spawned process, as it would on a replica, and reports what it saw
as events on one queue (wall-clock ``time.time()`` stamps: every process reads the same
clock on one machine):

* ``rebuilder_main``: a ``Rebuilder`` polling the source every ``interval`` seconds.  Its
  source is wrapped in ``TimedSource``, which stamps when each fetch started and ended
  (and can hold a new table a known ``delay`` before handing it over: the injected delay
  the tests prove staleness against).  After each build it opens the index it has just
  published and notes which changes are in it for the first time, so the generation that
  first carried a change is known exactly, not guessed from times.
* ``reader_main``: one reader (a ``LootIndex`` with its own refresh, or a client of the
  remote service) polling the position of every change written so far with ``get``, and
  reporting the first time each one is served.

Every child ends with a ``("bye", label)`` event, so the parent can drain the queue before
joining (a child that has put items on a queue does not exit until they are read).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:       # only annotations: a local reader's child never imports pandas
    from ..sources import Fetched, Source


class TimedSource:
    """A source that stamps each fetch and can hold a new table ``delay`` seconds.

    The delay is slept *after* the inner source returned a new table, so a change read by
    that fetch can reach no reader earlier than ``delay`` seconds after it was made.
    """

    def __init__(self, inner: Source, delay: float = 0.0):
        self.inner = inner
        self.delay = float(delay)
        self.description = inner.description
        self.started_at = self.read_at = self.done_at = 0.0

    def fetch(self, known_version: str | None = None) -> Fetched | None:
        self.started_at = time.time()
        self.read_at = self.done_at = 0.0
        fetched = self.inner.fetch(known_version)
        self.read_at = time.time()
        if fetched is not None and self.delay > 0:
            time.sleep(self.delay)
        self.done_at = time.time()
        return fetched


def open_spec(spec: dict[str, Any]) -> Source:
    """The source a spec names: ``{"kind": "local", "path"}`` or ``{"kind": "s3",
    "endpoint", "bucket", "key"}`` (picklable, so the spawned worker builds its own)."""
    from ..sources import LocalSource, S3Source

    if spec["kind"] == "local":
        return LocalSource(spec["path"])
    from ..s3local import FAKE_CREDENTIALS
    return S3Source(spec["bucket"], spec["key"], spec["endpoint"], **FAKE_CREDENTIALS)


def rebuilder_main(spec: dict[str, Any], index_path: str, interval: float, delay: float,
                   positions: list[tuple[int, int, int]], events: Any, stop: Any) -> None:
    """Child process: the rebuild worker, one ``("cycle", dict)`` event per cycle."""
    from ..index import open_index
    from ..rebuild import Rebuilder

    found: set[int] = set()
    count = [0]
    try:
        source = TimedSource(open_spec(spec), delay)

        def on_cycle(result: Any) -> None:
            published_at = time.time()
            new: list[int] = []
            if result.outcome == "built":
                with open_index(index_path, refresh_interval=None) as idx:
                    new = [i for i, p in enumerate(positions)
                           if i not in found and idx.get(*p) is not None]
                found.update(new)
            events.put(("cycle", "rebuilder", {
                "cycle": count[0], "outcome": result.outcome, "generation": result.generation,
                "poll_at": source.started_at, "read_at": source.read_at,
                "fetched_at": source.done_at, "published_at": published_at,
                "cycle_s": result.seconds, "fetch_s": result.fetch_seconds,
                "build_s": result.build_seconds, "records": result.records,
                "error": result.error, "new_changes": new}))
            count[0] += 1

        worker = Rebuilder(source, index_path, interval=interval, on_cycle=on_cycle)
        first = worker.run_once()      # the start: the index built from the world as it is
        if first.outcome == "failed":
            raise RuntimeError(f"first rebuild failed: {first.error}")
        worker.start()
        events.put(("ready", "rebuilder", time.time()))
        try:
            while not stop.wait(0.05):
                pass
        finally:
            worker.stop()
        events.put(("done", "rebuilder", worker.status.as_dict()))
    except BaseException as exc:  # noqa: BLE001 - report, never leave the parent waiting
        events.put(("error", "rebuilder", f"{type(exc).__name__}: {exc}"))
    finally:
        events.put(("bye", "rebuilder", None))


def reader_main(label: str, opener: Callable[[], Any], positions: list[tuple[int, int, int]],
                markers: list[int], written: Any, poll: float, events: Any, stop: Any) -> None:
    """Child process: one reader polling each written change's position every ``poll`` s.

    A change counts as served when ``get`` at its (fresh) position returns the record
    carrying its marker value; the stamp is taken when the answer is in hand.
    """
    client = None
    try:
        client = opener()
        client.get(*positions[0])         # warm: map the file, or open the channel
        events.put(("ready", label, time.time()))
        pending = list(range(len(positions)))
        while pending and not stop.is_set():
            upto = written.value
            for i in [i for i in pending if i < upto]:
                rec = client.get(*positions[i])
                if rec is not None and rec.value == markers[i]:
                    seen_at = time.time()
                    generation = getattr(client, "generation", None)
                    pending.remove(i)
                    events.put(("seen", label, (i, seen_at, generation)))
            time.sleep(poll)
    except BaseException as exc:  # noqa: BLE001 - report, never leave the parent waiting
        events.put(("error", label, f"{type(exc).__name__}: {exc}"))
    finally:
        if client is not None:
            with contextlib.suppress(Exception):     # closing is best effort at the end
                client.close()
        events.put(("bye", label, None))


def local_opener(index_path: str | Path, refresh_interval: float | None) -> Any:
    """A ``LootIndex`` as a replica holds it (module level, so a spawned child can run it)."""
    from ..index import open_index
    return open_index(index_path, refresh_interval=refresh_interval)
