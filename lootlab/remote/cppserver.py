"""The C++ loot server (``build/lootlab-server``, ``make cpp-server``) in a child process.

``CppServer`` is to the C++ server what ``LoopbackServer`` is to the Python one: the same
``target`` / ``ca`` / ``pid`` / ``endpoint`` / ``stats()``, so
``lootlab.connect("grpc-tls-pooled", cpp)`` and ``story.run_steps(..., server=cpp)``
work unchanged, and the lab can show what the remote cost is with a server that is not
the bottleneck.  It serves the same index file and proto with the same answer
bytes (docs/cpp-server.md).  The child exits when its stdin pipe closes, so a parent
that dies leaves no server behind.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

from . import childproc
from .endpoint import Endpoint
from .loopback import LoopbackError, LoopbackTimeout, server_stats

ENV_BINARY = "LOOTLAB_CPP_SERVER"
_LIMIT_OPTIONS = {"max_results": "--max-results", "max_radius": "--max-radius",
                  "max_k": "--max-k"}


# The C++ server is a loopback server too: it fails with the same (LootlabError) classes,
# under names that say which server; a class of its own would be listed in lootlab.errors.
CppServerError = LoopbackError          # not built, or did not start
CppServerTimeout = LoopbackTimeout      # did not report ready in time


def checkout_binary() -> Path:
    """Where ``make cpp-server`` puts the binary: build/ beside the lootlab package."""
    return Path(__file__).resolve().parents[2] / "build" / "lootlab-server"


def find_binary() -> Path:
    """The server binary: ``$LOOTLAB_CPP_SERVER``, else the checkout's build/lootlab-server."""
    chosen = os.environ.get(ENV_BINARY)
    path = Path(chosen) if chosen else checkout_binary()
    if not (path.is_file() and os.access(path, os.X_OK)):
        where = f"{ENV_BINARY}={chosen}" if chosen else str(path)
        raise CppServerError(
            f"the C++ loot server is not built ({where} is not an executable file): run "
            f"`make cpp-server` in the checkout (needs g++, libgrpc++-dev and "
            f"protobuf-compiler-grpc; `make system-deps` installs them), or set {ENV_BINARY}")
    return path


class CppServer(childproc.ChildProcess):
    """``with CppServer(index) as cpp: cli = lootlab.connect("grpc-tls-pooled", cpp)``.

    ``index`` defaults to the default index; ``tls=False`` serves plaintext; ``threads``
    is the fixed number of handler threads; ``limits`` overrides ``max_results``,
    ``max_radius`` or ``max_k`` (as ``LoopbackServer``'s ``limits`` does).
    """

    what, error, timed_out = "the C++ server", CppServerError, CppServerTimeout
    start_timeout = 30.0

    def __init__(self, index: str | Path | None = None, *, tls: bool = True, port: int = 0,
                 threads: int = 4, limits: dict[str, Any] | None = None,
                 binary: str | Path | None = None):
        if threads < 1:
            raise CppServerError(f"threads must be at least 1, got {threads}")
        unknown = set(limits or {}) - set(_LIMIT_OPTIONS)
        if unknown:
            raise CppServerError(f"unknown limits {sorted(unknown)}; the C++ server takes "
                                 f"{', '.join(sorted(_LIMIT_OPTIONS))}")
        if index is None:
            from ..paths import ensure_default_index
            index = ensure_default_index()
        self.index = Path(index)
        self.tls = tls
        self.port = port
        self.threads = threads
        self.limits = dict(limits or {})
        self.binary = Path(binary) if binary else None
        self.proc: subprocess.Popen | None = None
        self.info: dict[str, Any] = {}
        self._ca: str | None = None

    # -- lifecycle ---------------------------------------------------------------------
    def command(self) -> list[str]:
        """The child's command line (finds the binary; makes the development TLS files)."""
        args = [str(self.binary or find_binary()), "--index", str(self.index), "--port",
                str(self.port), "--threads", str(self.threads)]
        for name, value in self.limits.items():
            args += [_LIMIT_OPTIONS[name], str(int(value))]
        if self.tls:
            from .tls import ensure_dev_tls
            files = ensure_dev_tls()
            args += ["--cert", str(files.cert), "--key", str(files.key)]
            self._ca = str(files.ca)
        else:
            args.append("--plaintext")
        return args

    # -- what clients need -------------------------------------------------------------
    @property
    def target(self) -> str:
        return self.info["target"]

    @property
    def ca(self) -> str | None:
        return self._ca if self.tls else None

    @property
    def pid(self) -> int:
        return self.info["pid"]

    @property
    def pids(self) -> list[int]:
        return [self.pid]

    @property
    def endpoint(self) -> Endpoint:
        if not self.info:
            raise CppServerError("the C++ server is not started; call start() first")
        return Endpoint(self.target, tls=self.tls, ca=self.ca)

    def stats(self) -> dict[str, Any]:
        """ServerStats: requests, connections, tls_requests, cpu_seconds, processes (1)..."""
        return server_stats(self.endpoint)

    def __repr__(self) -> str:
        state = f"target={self.info.get('target')}" if self.running else "stopped"
        return (f"<CppServer {state} tls={self.tls} threads={self.threads} "
                f"index={str(self.index)!r}>")
