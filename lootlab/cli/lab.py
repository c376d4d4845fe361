"""``lootlab lab``: JupyterLab on a working copy of the notebooks.

The committed notebooks in ``notebooks/`` are kept output-free; JupyterLab opens a copy
under ``data/lab/`` (git-ignored), so saving a notebook never dirties the repository.
A copy is refreshed when the committed notebook is newer (the replaced copy is kept in
``data/lab/replaced/``).  As root, Jupyter refuses to start without ``--allow-root``,
so lootlab passes it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import click

from ..errors import LootlabError
from ..paths import data_dir


def lab_dir() -> Path:
    return data_dir() / "lab"


def sync_working_copy(source: Path, target: Path) -> tuple[list[str], list[str]]:
    """Copy notebooks missing from ``target`` or older there than in ``source``; return
    (copied, replaced) names.  A replaced copy is moved aside, never deleted."""
    target.mkdir(parents=True, exist_ok=True)
    copied, replaced = [], []
    for nb in sorted(source.glob("*.ipynb")):
        dst = target / nb.name
        if dst.exists():
            if nb.stat().st_mtime <= dst.stat().st_mtime:
                continue
            aside = target / "replaced" / f"{nb.stem}.{time.strftime('%Y%m%dT%H%M%S')}.ipynb"
            aside.parent.mkdir(exist_ok=True)
            os.replace(dst, aside)
            replaced.append(nb.name)
        shutil.copy2(nb, dst)      # keeps the source's mtime: "newer" compares like with like
        copied.append(nb.name)
    return copied, replaced


def jupyter_command(args: tuple[str, ...]) -> list[str]:
    """``jupyter lab ARGS``, with ``--allow-root`` when running as root."""
    jupyter = (shutil.which("jupyter", path=os.path.dirname(sys.executable))
               or shutil.which("jupyter"))
    cmd = ([jupyter] if jupyter else [sys.executable, "-m", "jupyter"]) + ["lab", *args]
    if os.geteuid() == 0 and "--allow-root" not in args:
        cmd.append("--allow-root")
    return cmd


@click.command("lab", context_settings={"ignore_unknown_options": True})
@click.argument("jupyter_args", nargs=-1, type=click.UNPROCESSED)
def command(jupyter_args: tuple[str, ...]) -> None:
    """Open JupyterLab on a working copy of notebooks/ in data/lab/ (extra arguments go to
    `jupyter lab`).  Saving there never changes the committed notebooks."""
    from ..report import notebooks_dir  # nbformat: only when the lab opens

    source = notebooks_dir()
    if not source.is_dir():
        raise LootlabError(f"no notebooks directory at {source}; run from a lootlab checkout")
    target = lab_dir()
    copied, replaced = sync_working_copy(source, target)
    click.echo(f"lootlab: JupyterLab on {target}, a working copy of {source} "
               f"(saving there leaves the repository clean)", err=True)
    if copied:
        click.echo(f"lootlab: copied {', '.join(copied)}", err=True)
    if replaced:
        click.echo(f"lootlab: {', '.join(replaced)} changed in {source}; your previous copies "
                   f"are in {target / 'replaced'}", err=True)
    env = {**os.environ, "LOOTLAB_DATA": str(data_dir())}   # the same data/ as from the checkout
    raise SystemExit(subprocess.call(jupyter_command(jupyter_args), cwd=target, env=env))
