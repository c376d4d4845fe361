"""Where generated files live, and the embedded defaults (world + index made on first use)."""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

DEFAULT_RECORDS = 350_000
DEFAULT_SEED = 0


def data_dir() -> Path:
    """``$LOOTLAB_DATA``, else ``data/`` of the source checkout lootlab runs from, else ``./data``."""
    env = os.environ.get("LOOTLAB_DATA")
    if env:
        return Path(env).expanduser().resolve()
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "pyproject.toml").is_file() and (checkout / "lootlab").is_dir():
        return checkout / "data"
    return Path.cwd() / "data"


def results_dir() -> Path:
    return data_dir() / "results"


def default_world_path() -> Path:
    return data_dir() / "world.parquet"


def default_index_path() -> Path:
    return data_dir() / "loot.idx"


@contextmanager
def data_lock(name: str = ".lock") -> Iterator[None]:
    """An exclusive lock across processes, so concurrent first uses build the defaults once."""
    directory = data_dir()
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / name, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_default_index() -> Path:
    """The default index path, generating the default world and building it if missing.

    A default index written by an older lootlab (another format version) is rebuilt, not
    left to fail: it is lootlab's own generated file.  A user's own index is never rebuilt
    behind their back; opening it names the version and says to rebuild.
    """
    from .build import build_index, is_outdated
    from .tables import write_table
    from .world import generate_world

    index = default_index_path()
    if index.exists() and not is_outdated(index):
        return index
    with data_lock():
        if not index.exists() or is_outdated(index):
            world_path = default_world_path()
            if world_path.exists():
                from .tables import read_table
                world = read_table(world_path)
            else:
                world = generate_world(DEFAULT_RECORDS, DEFAULT_SEED)
                write_table(world, world_path)
            build_index(world, index)
    return index
