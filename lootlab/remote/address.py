"""Parsing a ``host:port`` target (shared by the clients and the TLS diagnosis)."""

from __future__ import annotations

import ipaddress

from ..errors import LootlabError


def split_target(target: str) -> tuple[str, int]:
    """``"host:port"`` (or ``"[::1]:port"``) -> (host, port); a LootlabError otherwise."""
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit():
        raise LootlabError(f"target must look like host:port, got {target!r}")
    return host.strip("[]"), int(port)


def is_loopback_ip(target: str) -> bool:
    """Whether the target's host is a loopback IP address (not a name)."""
    try:
        return ipaddress.ip_address(split_target(target)[0]).is_loopback
    except ValueError:
        return False
