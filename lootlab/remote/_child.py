"""Entry point of the loopback server subprocess (``LoopbackServer`` starts it).

``python -m lootlab.remote._child '<json options>'``: serves, writes one JSON line with
the target and CA path to stdout once the port is bound, and exits when told (SIGTERM),
when its stdin closes, or when its parent process goes away, so it is never orphaned.
With ``"member"`` in the options it is one of several processes sharing a port (its
parent serves too, see ``lootlab.remote.group``) and counts into the parent's table.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from dataclasses import asdict
from pathlib import Path


def _watch_parent(stop: threading.Event, parent: int) -> None:
    # stdin is a pipe from the parent: EOF means the parent closed it or died.
    def stdin_eof() -> None:
        try:
            # os.read on the raw fd: a daemon thread blocked in sys.stdin's buffered
            # reader aborts the interpreter at shutdown.
            while os.read(0, 4096):
                pass
        except (OSError, ValueError):
            pass
        stop.set()

    def ppid_changed() -> None:
        while not stop.wait(0.5):
            if os.getppid() != parent:
                stop.set()

    threading.Thread(target=stdin_eof, daemon=True, name="lootlab-stdin-watch").start()
    threading.Thread(target=ppid_changed, daemon=True, name="lootlab-parent-watch").start()


def main(argv: list[str]) -> int:
    from .server import Limits, serve, tls_config

    opts = json.loads(argv[0])
    stop = threading.Event()
    _watch_parent(stop, int(opts.pop("parent")))
    member = opts.pop("member", None)
    if member is not None:        # one of several processes on a port (remote.group)
        from .group import member_counters
        opts["counters"] = member_counters(member)
    tls = None
    if opts.pop("tls", True):
        tls = tls_config(cert=opts.pop("cert", None), key=opts.pop("key", None),
                         ca=opts.pop("ca", None), client_ca=opts.pop("client_ca", None))

    def ready(info) -> None:
        sys.stdout.write(json.dumps(asdict(info)) + "\n")
        sys.stdout.flush()

    serve(Path(opts.pop("index")), tls=tls, on_ready=ready, stop=stop,
          limits=Limits(**opts.pop("limits", {})), **opts)
    return 0


if __name__ == "__main__":
    from ..errors import LootlabError
    try:
        sys.exit(main(sys.argv[1:]))
    except LootlabError as exc:
        print(f"lootlab: error: {exc}", file=sys.stderr)
        sys.exit(1)
