"""Several server processes on one port, so the server is not GIL-bound by accident.

The first process (the one ``serve`` runs in) binds the port with ``SO_REUSEPORT``
(``grpc.so_reuseport``); each further process is a loopback child
(``lootlab.remote._child``) that binds the same port the same way, and the kernel spreads
incoming connections over them.  All of them count into one shared ``CounterTable``, so
``ServerStats`` reports the whole server whichever process answers.  The members watch
their parent like any loopback child (stdin pipe, parent pid): they exit when it stops
or dies.
"""

from __future__ import annotations

import errno
import socket
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .counters import Counters, CounterTable


def check_port_free(host: str, port: int) -> None:
    """Fail (OSError EADDRINUSE) if something listens on ``host:port`` already: with
    ``SO_REUSEPORT`` the bind itself would succeed and share the port with it."""
    if port == 0:
        return
    for family, kind, proto, _, address in socket.getaddrinfo(host, port,
                                                              type=socket.SOCK_STREAM):
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise
                # another failure (address not ours...) is the real bind's to report


def member_counters(spec: dict[str, int]) -> Counters:
    """A member process's counters: its slot of the table its parent handed it."""
    return Counters(CounterTable(spec["processes"], fd=spec["fd"]), slot=spec["slot"])


def start_members(index: str | Path, table: CounterTable, *, host: str, port: int,
                  tls: Any, options: dict[str, Any]) -> list[Any]:
    """Start ``table.processes - 1`` member processes on ``host:port`` (already bound by
    this one with reuse), in parallel; returns their ``LoopbackServer`` handles."""
    from .loopback import LoopbackServer

    if table.fd is None:
        raise ValueError("the counter table must be shared (CounterTable.shared)")
    members = []
    for slot in range(1, table.processes):
        member = LoopbackServer(
            index, tls=tls is not None, port=port,
            cert=tls.cert if tls else None, key=tls.key if tls else None,
            client_ca=tls.client_ca if tls else None, workers=options["workers"],
            max_concurrent_streams=options["max_concurrent_streams"],
            limits=asdict(options["limits"]), delay=options["delay"],
            encoder=options["encoder"], server=options.get("server"),
            pass_fds=(table.fd,))
        member.options.update(host=host, reuse_port=True,
                              member={"fd": table.fd, "processes": table.processes,
                                      "slot": slot})
        if tls is not None and tls.ca is not None:
            member.options["ca"] = str(tls.ca)
        members.append(member)
    try:
        with ThreadPoolExecutor(max_workers=len(members) or 1) as pool:
            list(pool.map(LoopbackServer.start, members))
    except BaseException:
        stop_members(members)
        raise
    return members


def stop_members(members: list[Any], timeout: float = 10.0) -> None:
    """Stop every member (SIGTERM: running calls finish), in parallel."""
    if not members:
        return
    with ThreadPoolExecutor(max_workers=len(members)) as pool:
        list(pool.map(lambda m: m.stop(timeout=timeout), members))
