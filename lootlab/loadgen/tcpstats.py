"""The kernel's TCP counters, read straight from ``/proc/net/snmp`` and ``/proc/net/netstat``.

Why: a latency histogram shows that some requests waited hundreds of ms; it cannot say
that the wait was TCP's.  On loopback nothing is lost by the wire, so a retransmission
means the kernel dropped a segment (a full listen queue, a full receive buffer), and the
retransmission waits a timer: at least the 200 ms minimum RTO for data, 1 s for a SYN
(then 3 s, 7 s...).  A few such events in a run are its p99.  Reading the counters before
and after a run (``snapshot``, ``delta``) and naming them (``explain``) puts that on the
page.  No ``nstat`` binary is needed: the files are plain text, pairs of lines
``Prefix: Name1 Name2...`` / ``Prefix: 1 2...``.

The counters are **machine-wide** (every process, every interface, every network
namespace that shares this one's ``/proc/net``): another program making connections during
a run adds to them.  Read a delta as "what TCP did on this machine while the run ran".
Where ``/proc`` cannot be read (not Linux, a sandbox), ``snapshot`` returns ``{}`` and
``delta``/``explain`` then say nothing; nothing here raises.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from .units import plural

__all__ = ["COUNTERS", "snapshot", "read", "parse", "delta", "explain"]

#: The counters ``snapshot`` keeps, with what each one counts (the kernel's MIB names,
#: prefixed ``Tcp`` from /proc/net/snmp or ``TcpExt`` from /proc/net/netstat).
COUNTERS: dict[str, str] = {
    "TcpActiveOpens": "connections this machine opened (connect())",
    "TcpPassiveOpens": "connections this machine accepted (a listener's SYN-ACK answered)",
    "TcpAttemptFails": "connection attempts that failed (refused, reset in SYN-RECV)",
    "TcpEstabResets": "established connections ended by a reset",
    "TcpRetransSegs": "segments retransmitted (each one waited a retransmission timer)",
    "TcpOutRsts": "resets sent (a socket closed with unread data, or a reply to a "
                  "segment for no connection)",
    "TcpExtListenOverflows": "SYNs or handshake ACKs dropped because a listener's accept "
                             "queue was full (the backlog)",
    "TcpExtListenDrops": "SYNs or handshake ACKs a listener dropped, for any reason "
                         "(includes ListenOverflows)",
    "TcpExtTCPReqQFullDrop": "SYNs dropped because the SYN queue was full and SYN cookies "
                             "were off",
    "TcpExtTCPReqQFullDoCookies": "SYN cookies sent because the SYN queue was full",
    "TcpExtSyncookiesSent": "SYN cookies sent",
    "TcpExtTCPSynRetrans": "SYNs and SYN-ACKs retransmitted (each waits >= 1 s)",
    "TcpExtTCPTimeouts": "retransmission timeouts that fired (each waited >= the 200 ms "
                         "minimum RTO on loopback)",
    "TcpExtTCPLossProbes": "tail loss probes sent",
    "TcpExtTCPAbortOnData": "connections reset because they were closed with unread data",
    "TcpExtTCPAbortOnClose": "connections reset because the user closed them with data "
                             "still to read",
    "TcpExtTCPAbortOnTimeout": "connections aborted after too many retransmissions",
    "TcpExtTCPBacklogDrop": "segments dropped because a socket's backlog was full",
    "TcpExtTCPRcvQDrop": "segments dropped because a receive queue was full",
    "TcpExtTCPTimeWaitOverflow": "TIME_WAIT sockets not created (the bucket limit)",
    "TcpExtTW": "connections that finished TIME_WAIT (normal close on the closing side)",
}

_FILES = ("/proc/net/snmp", "/proc/net/netstat")


def parse(text: str) -> dict[str, int]:
    """Every ``Prefix: names`` / ``Prefix: values`` pair of lines in ``text`` as
    ``{PrefixName: value}``; lines that do not pair up are skipped, never an error."""
    out: dict[str, int] = {}
    lines = [line.split() for line in text.splitlines() if line.strip()]
    for head, values in zip(lines[::2], lines[1::2]):
        if not head or not values or head[0] != values[0] or len(head) != len(values):
            continue
        prefix = head[0].rstrip(":")
        for name, value in zip(head[1:], values[1:]):
            try:
                out[prefix + name] = int(value)
            except ValueError:
                continue
    return out


def read(files: tuple[str, ...] = _FILES) -> dict[str, int]:
    """Every counter in ``files`` (not only ``COUNTERS``); ``{}`` if none can be read."""
    out: dict[str, int] = {}
    for path in files:
        try:
            out.update(parse(Path(path).read_text()))
        except (OSError, UnicodeDecodeError):
            continue
    return out


def snapshot() -> dict[str, int]:
    """The ``COUNTERS`` this kernel has, now (machine-wide); ``{}`` where /proc is unreadable.
    Takes well under a millisecond: cheap enough before and after every run."""
    try:
        every = read()
    except Exception:               # never let a diagnostic break a measurement
        return {}
    return {name: every[name] for name in COUNTERS if name in every}


def delta(before: Mapping[str, int], after: Mapping[str, int]) -> dict[str, int]:
    """``after - before`` for every counter both have (the counters only grow, so a
    negative value means they wrapped or were reset; it is kept as it is)."""
    return {name: int(after[name]) - int(before[name]) for name in before if name in after}


def explain(d: Mapping[str, int], requests: int | None = None, *,
            delays_only: bool = False) -> list[str]:
    """Plain-English causes in a counter delta ``d`` (from ``delta``), worst first; ``[]``
    when nothing notable happened.  ``requests`` (the run's request count) lets a
    sentence say how many requests it could have touched.  ``delays_only``: only what
    can delay a request (not resets on close or skipped TIME_WAIT): the causes a tail
    is named with."""
    g = lambda name: max(int(d.get(name, 0) or 0), 0)  # noqa: E731
    per = (lambda n: f" ({n / requests:.2%} of {requests:,} requests)") if requests else \
        (lambda n: "")
    out: list[str] = []
    syn = g("TcpExtTCPSynRetrans")
    overflows, drops = g("TcpExtListenOverflows"), g("TcpExtListenDrops")
    qfull = g("TcpExtTCPReqQFullDrop")
    if syn:
        why = []
        if overflows:
            why.append(f"a listen backlog (accept queue) overflowed {plural(overflows, 'time')}")
        elif drops:
            why.append(f"a listener dropped {plural(drops, 'SYN')}")
        if qfull:
            why.append(f"the SYN queue was full {plural(qfull, 'time')}")
        out.append(f"{plural(syn, 'SYN')} retransmitted{per(syn)}: each connect waited "
                   f">= 1 s" + (f" ({'; '.join(why)})" if why else ""))
    elif overflows or drops:
        n = max(overflows, drops)
        out.append(f"a listener dropped {plural(n, 'connection attempt')} "
                   f"({plural(overflows, 'accept-queue overflow')}); no SYN was "
                   f"retransmitted, so the clients' handshakes were delayed, not lost")
    data_rto = max(g("TcpExtTCPTimeouts") - syn, 0)
    retrans = max(g("TcpRetransSegs") - syn, 0)
    if data_rto:
        out.append(f"{plural(data_rto, 'retransmission timeout')} fired{per(data_rto)}: "
                   f"each stalled its connection >= 200 ms (the minimum RTO), "
                   f"{plural(g('TcpRetransSegs'), 'segment')} retransmitted in all")
    elif retrans:
        out.append(f"{plural(retrans, 'segment')} retransmitted{per(retrans)} (fast "
                   f"retransmit or loss probes: a few ms each, no full timeout)")
    dropped = g("TcpExtTCPBacklogDrop") + g("TcpExtTCPRcvQDrop")
    if dropped:
        out.append(f"{plural(dropped, 'segment')} dropped by full socket queues "
                   f"(a receiver too slow to read): they come back as retransmissions")
    aborted = g("TcpExtTCPAbortOnTimeout")
    if aborted:
        out.append(f"{plural(aborted, 'connection')} aborted after repeated "
                   f"retransmissions")
    fails = g("TcpAttemptFails")
    if fails:
        out.append(f"{plural(fails, 'connection attempt')} failed (refused or reset "
                   f"during the handshake)")
    if delays_only:
        return out
    twov = g("TcpExtTCPTimeWaitOverflow")
    if twov:
        out.append(f"{plural(twov, 'closing connection')} skipped TIME_WAIT (too many "
                   f"sockets in TIME_WAIT)")
    rsts = g("TcpOutRsts")
    if rsts and (g("TcpExtTCPAbortOnClose") or g("TcpExtTCPAbortOnData")):
        out.append(f"{plural(rsts, 'reset')} sent ({plural(g('TcpExtTCPAbortOnClose'), 'socket')} "
                   f"closed with unread data, {plural(g('TcpExtTCPAbortOnData'), 'socket')} "
                   f"receiving data after close): connections torn down with RST, not FIN; "
                   f"harmless to latency on its own")
    return out
