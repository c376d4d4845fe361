"""Delaying proxies in front of servers: ``DelayProxy`` (one child process) and
``proxy_for(upstream, network)``, the process-wide set of them that ``lootlab.targets``
routes clients through.

``proxy_for`` starts at most one proxy per (upstream target, network) in this process and
stops them all at exit; a spawned worker handed a factory reaches the proxy its parent
started, because the factory carries the proxy's address (no global state crosses).
Whether a client goes through a proxy at all is decided in ``lootlab.targets``.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import selectors
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any

from ..remote import childproc
from ..remote.address import split_target
from .errors import ConditionsError
from .network import Network

_START_TIMEOUT = 30.0


class ProxyTimeout(ConditionsError):
    """The proxy did not report ready (or answer) in time."""


class DelayProxy(childproc.ChildProcess):
    """``with DelayProxy("127.0.0.1:50051", Network(rtt_ms=5)) as p: ... p.target``.

    A child process (``python -m lootlab.conditions.proxy``) listening on ``host`` that
    forwards to ``upstream`` under ``network``; it exits with this process.
    """

    what, error, timed_out = "delay proxy", ConditionsError, ProxyTimeout
    start_timeout, stop_timeout = _START_TIMEOUT, 5.0

    def __init__(self, upstream: str, network: Network, *, host: str = "127.0.0.1",
                 port: int = 0, seed: int = 0):
        split_target(upstream)
        if not isinstance(network, Network):
            raise ConditionsError(f"a delay proxy needs a lootlab.Network, got "
                                  f"{type(network).__name__} (Network.coerce makes one)")
        self.upstream = upstream
        self.network = network
        self.host, self.port, self.seed = host, port, seed
        self.proc: subprocess.Popen | None = None
        self.info: dict[str, Any] = {}
        self._lock = threading.Lock()

    def command(self) -> list[str]:
        n = self.network
        argv = [sys.executable, "-m", "lootlab.conditions.proxy", "--upstream", self.upstream,
                "--host", self.host, "--port", str(self.port), "--rtt-ms", repr(n.rtt_ms),
                "--jitter-ms", repr(n.jitter_ms), "--seed", str(self.seed),
                "--parent", str(os.getpid())]
        if n.bandwidth_mbit is not None:
            argv += ["--bandwidth-mbit", repr(n.bandwidth_mbit)]
        return argv

    def child_env(self) -> dict[str, str]:
        return dict(os.environ, PYTHONUNBUFFERED="1")

    @property
    def target(self) -> str:
        if not self.info:
            raise ConditionsError("the delay proxy is not started; call start() first")
        return self.info["target"]

    @property
    def pid(self) -> int:
        return self.info["pid"]

    def stats(self, timeout: float = 10.0) -> dict[str, Any]:
        """The proxy's counters: connections (total, open), chunks and bytes each way
        (``up`` = client to server), the largest and mean delay error (how late a chunk
        left after its due time, us), and which timer it uses."""
        with self._lock:
            proc = self.proc
            if proc is None or proc.poll() is not None:
                raise ConditionsError("the delay proxy is not running")
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write(b"stats\n")
            proc.stdin.flush()
            sel = selectors.DefaultSelector()
            sel.register(proc.stdout, selectors.EVENT_READ)
            try:
                line = b""
                while not line.endswith(b"\n"):
                    if not sel.select(timeout):
                        raise ProxyTimeout(f"the delay proxy did not answer within {timeout} s")
                    chunk = os.read(proc.stdout.fileno(), 65536)
                    if not chunk:
                        raise ConditionsError("the delay proxy exited")
                    line += chunk
            finally:
                sel.close()
            return json.loads(line.decode().splitlines()[-1])

    def __repr__(self) -> str:
        state = f"target={self.info.get('target')}" if self.running else "stopped"
        return f"<DelayProxy {state} -> {self.upstream} ({self.network.label})>"


class _Registry:
    """The proxies ``proxy_for`` started in this process, keyed (upstream, network)."""

    def __init__(self) -> None:
        self.proxies: dict[tuple[str, Network], DelayProxy] = {}
        self.lock = threading.Lock()
        self.owner = os.getpid()
        atexit.register(self.stop)

    def get(self, upstream: str, network: Network) -> DelayProxy:
        with self.lock:
            if self.owner != os.getpid():       # a forked child must not reuse the parent's
                self.proxies, self.owner = {}, os.getpid()
            proxy = self.proxies.get((upstream, network))
            if proxy is None or not proxy.running:
                proxy = self.proxies[(upstream, network)] = DelayProxy(upstream, network).start()
            return proxy

    def stop(self) -> None:
        if self.owner != os.getpid():
            return
        with self.lock:
            proxies, self.proxies = list(self.proxies.values()), {}
        for proxy in proxies:
            proxy.stop(timeout=2)


_registry: _Registry | None = None
_registry_lock = threading.Lock()


def registry() -> _Registry:
    global _registry
    with _registry_lock:
        if _registry is None or _registry.owner != os.getpid():
            _registry = _Registry()
        return _registry


def proxy_for(upstream: str, network: Network) -> DelayProxy:
    """The running proxy in front of ``upstream`` (``host:port``) under ``network``: this
    process's one for that pair, started now if there is none, stopped at exit."""
    return registry().get(upstream, network)


class ProxiedEcho:
    """An ``echo`` for ``lootlab.remote.service.run_grpc`` that puts a delaying proxy in
    front of the server once it reports its address (its first line, "... on HOST:PORT
    (pid N)"), and prints the proxy's address in its place: what ``lootlab serve
    --rtt-ms`` shows users.  ``stop()`` ends the proxy."""

    _READY = re.compile(r" on (\S+) \(pid \d+\)")

    def __init__(self, echo: Callable[[str], None], network: Network, host: str = "127.0.0.1"):
        self.echo, self.network, self.host = echo, network, host
        self.proxy: DelayProxy | None = None
        self.direct = ""

    def __call__(self, line: str) -> None:
        if self.proxy is None:
            found = self._READY.search(line)
            if found:
                self.direct = found.group(1)
                self.proxy = DelayProxy(self.direct, self.network, host=self.host).start()
                self.echo(line.replace(self.direct, self.proxy.target))
                self.echo(f"  network: {self.network.label} through a delaying proxy (pid "
                          f"{self.proxy.pid}); the server itself is on {self.direct}")
                return
        elif self.direct:
            line = line.replace(self.direct, self.proxy.target)
        self.echo(line)

    def stop(self) -> None:
        if self.proxy is not None:
            self.proxy.stop()


__all__ = ["DelayProxy", "ProxiedEcho", "ProxyTimeout", "proxy_for"]
