"""A gRPC loot server in a child process on 127.0.0.1, for tests, benchmarks and defaults.

``LoopbackServer`` starts ``lootlab serve`` machinery in a subprocess, waits until the
child reports its bound port (no sleeps), and stops it on exit.  The child also exits by
itself when this process dies (it watches its stdin pipe and its parent pid), so no
orphans are left behind.  ``shared_server()`` is the process-wide one that
``lootlab.connect(variant)`` uses when no target is given.
"""

from __future__ import annotations

import atexit
import json
import os
import selectors
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from ..errors import LootlabError, LootlabTimeout

_START_TIMEOUT = 60.0


class LoopbackError(LootlabError):
    """The loopback server did not start."""


class LoopbackTimeout(LoopbackError, LootlabTimeout):
    """The loopback server did not report ready in time."""


class LoopbackServer:
    """``with LoopbackServer() as srv: cli = srv.connect("grpc-tls-pooled")``.

    ``index`` defaults to the default index (built on first use); ``tls=False`` serves
    plaintext; ``client_ca`` turns on mutual TLS; ``cert``/``key`` replace the development
    certificate (tests use it for broken certificates); ``delay`` makes every query wait
    that many seconds first (a slow server, for tests of timeouts).
    """

    def __init__(self, index: str | Path | None = None, *, tls: bool = True, port: int = 0,
                 client_ca: str | Path | None = None, cert: str | Path | None = None,
                 key: str | Path | None = None, workers: int = 8,
                 max_concurrent_streams: int | None = None,
                 limits: dict[str, Any] | None = None, env: dict[str, str] | None = None,
                 delay: float = 0.0):
        if index is None:
            from ..paths import ensure_default_index
            index = ensure_default_index()
        self.index = Path(index)
        self.tls = tls
        self.port = port
        self.options: dict[str, Any] = {
            "index": str(self.index), "tls": tls, "port": port, "workers": workers,
            "max_concurrent_streams": max_concurrent_streams, "limits": limits or {},
            "delay": delay,
        }
        for name, value in (("client_ca", client_ca), ("cert", cert), ("key", key)):
            if value is not None:
                self.options[name] = str(value)
        self.env = env
        self.proc: subprocess.Popen | None = None
        self.info: dict[str, Any] = {}

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> "LoopbackServer":
        if self.proc is not None:
            return self
        opts = dict(self.options, parent=os.getpid())
        env = dict(os.environ if self.env is None else self.env)
        env.setdefault("PYTHONUNBUFFERED", "1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "lootlab.remote._child", json.dumps(opts)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
            close_fds=True)
        try:
            self.info = self._wait_ready()
        except BaseException:
            self.stop()
            raise
        # Drain stderr so a chatty child can never block on a full pipe.
        threading.Thread(target=self._drain, daemon=True, name="lootlab-loopback-stderr").start()
        return self

    def _wait_ready(self) -> dict[str, Any]:
        assert self.proc and self.proc.stdout
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + _START_TIMEOUT
        line = b""
        try:
            while not line.endswith(b"\n"):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise LoopbackTimeout(f"loopback server did not report ready within "
                                          f"{_START_TIMEOUT:.0f} s")
                if not sel.select(timeout=left):
                    continue
                chunk = os.read(self.proc.stdout.fileno(), 4096)
                if not chunk:
                    self.proc.wait(timeout=5)
                    err = self.proc.stderr.read().decode(errors="replace").strip() if self.proc.stderr else ""
                    last = err.splitlines()[-1] if err else "(no output)"
                    raise LoopbackError(f"loopback server exited with code {self.proc.returncode} "
                                        f"before it was ready: {last}")
                line += chunk
        finally:
            sel.close()
        return json.loads(line.decode())

    def _drain(self) -> None:
        proc = self.proc
        if proc is None or proc.stderr is None:
            return
        try:
            for _ in iter(lambda: proc.stderr.read(65536), b""):
                pass
        except (OSError, ValueError):
            pass

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the child to shut down gracefully (SIGTERM), then kill it if it lingers."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass

    close = stop

    def __enter__(self) -> "LoopbackServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __del__(self) -> None:
        try:
            self.stop(timeout=2)
        except Exception:
            pass

    # -- what clients need -------------------------------------------------------------
    @classmethod
    def attach(cls, info: dict[str, Any], *, tls: bool) -> "LoopbackServer":
        """A handle on a server another process started (it is not stopped by this one)."""
        srv = cls.__new__(cls)
        srv.index, srv.tls, srv.port = Path(info.get("index", "")), tls, 0
        srv.options, srv.env, srv.proc, srv.info = {"tls": tls}, None, None, dict(info)
        return srv

    @property
    def running(self) -> bool:
        if self.proc is None:
            return self._attached_alive()
        return self.proc.poll() is None

    def _attached_alive(self) -> bool:
        pid = self.info.get("pid")
        if not pid:
            return False
        try:
            os.kill(pid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True

    @property
    def target(self) -> str:
        return self.info["target"]

    @property
    def ca(self) -> str | None:
        return self.info.get("ca")

    @property
    def pid(self) -> int:
        return self.info["pid"]

    def connect(self, variant: str = "grpc-tls-pooled", **options: Any):
        """A client of this server; TLS variants get its CA (and, for mutual TLS, the
        development client certificate) unless given."""
        from ..clients import connect
        options.setdefault("target", self.target)
        if self.tls and variant.startswith("grpc-tls"):
            options.setdefault("ca", self.ca)
            if "client_ca" in self.options and "client_cert" not in options:
                from .tls import ensure_dev_tls
                files = ensure_dev_tls()
                options.setdefault("client_cert", str(files.client_cert))
                options.setdefault("client_key", str(files.client_key))
        return connect(variant, **options)

    def stats(self) -> dict[str, int]:
        """The server's counters (requests, connections, tls_connections, tls_resumed...)."""
        from ..clients import server_stats
        return server_stats(self.target, ca=self.ca if self.tls else None,
                            **self._client_cert_options())

    def _client_cert_options(self) -> dict[str, str]:
        if "client_ca" not in self.options:
            return {}
        from .tls import ensure_dev_tls
        files = ensure_dev_tls()
        return {"client_cert": str(files.client_cert), "client_key": str(files.client_key)}

    def __repr__(self) -> str:
        state = f"target={self.info.get('target')}" if self.running else "stopped"
        return f"<LoopbackServer {state} tls={self.tls} index={str(self.index)!r}>"


_shared: dict[bool, LoopbackServer] = {}
_shared_lock = threading.Lock()
_shared_pid: int | None = None


def _env_name(tls: bool) -> str:
    return "LOOTLAB_LOOPBACK_TLS" if tls else "LOOTLAB_LOOPBACK_PLAIN"


def shared_server(tls: bool = True) -> LoopbackServer:
    """The process-wide loopback server on the default index, started on first use and
    stopped at interpreter exit.

    Its address is put in the environment, so worker processes started afterwards (spawn)
    use the same server instead of each starting their own.
    """
    global _shared_pid
    with _shared_lock:
        if _shared_pid != os.getpid():      # a forked child must not reuse the parent's
            _shared.clear()
            _shared_pid = os.getpid()
        srv = _shared.get(tls)
        if srv is not None and srv.running:
            return srv
        inherited = os.environ.get(_env_name(tls))
        if inherited:
            try:
                srv = LoopbackServer.attach(json.loads(inherited), tls=tls)
            except (ValueError, TypeError):
                srv = None
            if srv is not None and srv.running and srv.info.get("data_dir") == _data_dir():
                _shared[tls] = srv
                return srv
        srv = LoopbackServer(tls=tls).start()
        srv.info["data_dir"] = _data_dir()
        _shared[tls] = srv
        os.environ[_env_name(tls)] = json.dumps(srv.info)
        return srv


def _data_dir() -> str:
    from ..paths import data_dir
    return str(data_dir())


@atexit.register
def _stop_shared() -> None:
    if _shared_pid == os.getpid():
        for tls, srv in list(_shared.items()):
            if srv.proc is not None:                 # ours, not inherited
                srv.stop(timeout=5)
                os.environ.pop(_env_name(tls), None)
    _shared.clear()
