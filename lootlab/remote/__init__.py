"""The remote interface: the gRPC loot service (``server``), its schema (``loot.proto`` and
generated ``loot_pb2``), development TLS material (``tls``), a loopback server for tests
and defaults (``loopback``), and the player-facing HTTP endpoint (``http``).
Clients live in ``lootlab.clients``.
"""

from .errors import DeadlineExceeded, RemoteError, ServerBusy, ServerUnavailable, TLSError

__all__ = ["RemoteError", "ServerUnavailable", "TLSError", "DeadlineExceeded", "ServerBusy"]
