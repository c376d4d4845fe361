from __future__ import annotations

import os
import shutil
import subprocess
import sys

import click

from ..errors import LootlabError
from ..report import notebooks_dir


@click.command("lab", context_settings={"ignore_unknown_options": True})
@click.argument("jupyter_args", nargs=-1, type=click.UNPROCESSED)
def command(jupyter_args: tuple[str, ...]) -> None:
    """Open JupyterLab on notebooks/ (extra arguments go to `jupyter lab`)."""
    directory = notebooks_dir()
    if not directory.is_dir():
        raise LootlabError(f"no notebooks directory at {directory}; run from a lootlab checkout")
    jupyter = shutil.which("jupyter", path=os.path.dirname(sys.executable)) or shutil.which("jupyter")
    cmd = ([jupyter] if jupyter else [sys.executable, "-m", "jupyter"]) + ["lab", *jupyter_args]
    raise SystemExit(subprocess.call(cmd, cwd=directory))
