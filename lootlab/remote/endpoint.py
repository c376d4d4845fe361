"""``Endpoint``: where a loot server listens and how to speak to it, as plain data.

A frozen, picklable value: servers hand one out (``LoopbackServer.endpoint``), a client
factory carries one to spawned load workers, a delaying proxy is put in front of one.  It
knows nothing of variants or clients; ``lootlab.targets`` matches it to a variant.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Endpoint:
    """How to reach a loot server: its ``host:port``, whether it speaks TLS, and the files
    a TLS client needs (the CA that signed its certificate; a client certificate and key
    when it asks for mutual TLS)."""

    target: str
    tls: bool = True
    ca: str | None = None
    client_cert: str | None = None
    client_key: str | None = None

    def tls_files(self) -> dict[str, str]:
        """The TLS file options a client of this server needs (none for plaintext)."""
        if not self.tls:
            return {}
        files = {"ca": self.ca, "client_cert": self.client_cert, "client_key": self.client_key}
        return {name: path for name, path in files.items() if path is not None}


__all__ = ["Endpoint"]
