"""Shared test configuration: tests never touch the repo's data/, and the quick report is
measured once per session, in a child process while the other tests run (``_quick``),
for every test that reads it.

The tests live in three folders by what they need: ``unit`` (the library alone: no server,
no subprocess, no real load run, no notebook), ``integration`` (servers, subprocesses, real
load runs, profilers, cgroups, faults) and ``e2e`` (the report and its notebooks, replays,
the README, packaging, the grpc-js interop, Locust, browser checks).  The ``_*.py`` helper
modules stay here, in ``tests/``: pytest puts this conftest's folder on ``sys.path``, so
``from _loadgen import ...`` works from every folder.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
from _quick import QuickReport

# Matplotlib must never try to open a window in tests.
os.environ.setdefault("MPLBACKEND", "Agg")

#: How long the quick report may take before the tests that read it fail (it took 190 s in a
#: fresh-clone CI run on 2026-12-07, its seven notebooks beside the other tests).
QUICK_REPORT_TIMEOUT = 1500


def pytest_configure(config: pytest.Config) -> None:
    """Point LOOTLAB_DATA at a session temp dir (unless LOOTLAB_KEEP_DATA_DIR is set), before
    anything runs: the quick report starts right after collection, and the kernels and
    servers it starts inherit the variable."""
    if os.environ.get("LOOTLAB_KEEP_DATA_DIR"):
        return
    tmp = tempfile.TemporaryDirectory(prefix="lootlab-test-data-")
    config.stash[_DATA] = (tmp, os.environ.get("LOOTLAB_DATA"))
    os.environ["LOOTLAB_DATA"] = tmp.name


def pytest_unconfigure(config: pytest.Config) -> None:
    saved = config.stash.get(_DATA, None)
    if saved is None:
        return
    tmp, old = saved
    if old is None:
        os.environ.pop("LOOTLAB_DATA", None)
    else:
        os.environ["LOOTLAB_DATA"] = old
    tmp.cleanup()


_DATA = pytest.StashKey[tuple]()
_QUICK = pytest.StashKey[QuickReport]()


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start the quick report as soon as the tests are known, if any of them reads it."""
    if any("quick_report" in getattr(item, "fixturenames", ()) for item in session.items):
        out = Path(tempfile.mkdtemp(prefix="quick-report-", dir=os.environ.get("LOOTLAB_DATA")))
        session.config.stash[_QUICK] = QuickReport(out)


@pytest.fixture(scope="session")
def quick_report(request: pytest.FixtureRequest) -> Any:
    """The whole report in the quick size, measured once for the session: the notebook
    tests read its pages, the replay tests draw its run again.  ``messages`` holds the
    lines it said while it ran.  Waits for the background run (started after collection)."""
    quick = request.config.stash.get(_QUICK, None)
    if quick is None:                 # not foreseen at collection: measure it now
        quick = QuickReport(Path(tempfile.mkdtemp(prefix="quick-report-")))
        request.config.stash[_QUICK] = quick
    return quick.result(QUICK_REPORT_TIMEOUT)
