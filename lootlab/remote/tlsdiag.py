"""Why a TLS handshake failed, in words: gRPC reports every failure alike, so the handshake
is redone with Python's ``ssl`` module, whose OpenSSL verify message tells an expired
certificate from a wrong host or an unknown CA."""

from __future__ import annotations

import socket
import ssl

from .address import split_target


def diagnose_tls(target: str, ca: str | None, client_cert: str | None = None,
                 client_key: str | None = None, server_name: str | None = None,
                 timeout: float = 3.0) -> str | None:
    """Redo the handshake with Python's ssl module to name why it fails (None if it works).

    gRPC reports every handshake failure alike; OpenSSL's verify message tells expired
    from wrong host from unknown CA.
    """
    host, port = split_target(target)
    try:
        ctx = ssl.create_default_context(cafile=ca) if ca else ssl.create_default_context()
        ctx.set_alpn_protocols(["h2"])
        if client_cert and client_key:
            ctx.load_cert_chain(client_cert, client_key)
    except (OSError, ssl.SSLError) as exc:
        return f"cannot load the TLS files (ca={ca}, client_cert={client_cert}): {exc}"
    name = server_name or host
    ca_hint = f"ca={ca}" if ca else "the system CAs (no ca= given)"
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            with ctx.wrap_socket(sock, server_hostname=name) as tls:
                # TLS 1.3 servers reject a missing client certificate after the handshake.
                tls.settimeout(3.0)   # only a failing server gets here; a good one speaks at once
                try:
                    closed = tls.recv(1) == b""
                except (socket.timeout, TimeoutError):
                    closed = False
                if closed:
                    raise ConnectionResetError("closed right after the handshake")
    except ssl.SSLCertVerificationError as exc:
        msg = (exc.verify_message or str(exc)).lower()
        if "expired" in msg:
            return (f"the server's certificate has expired ({exc.verify_message}); "
                    f"renew it (delete the server's tls/ files to get a new development one)")
        if "not yet valid" in msg:
            return "the server's certificate is not valid yet; check the clocks"
        if "hostname" in msg or "ip address mismatch" in msg or "mismatch" in msg:
            return (f"the server's certificate is not issued for {name!r} "
                    f"({exc.verify_message}); connect by a name the certificate lists, or "
                    f"pass server_name=")
        return (f"the server's certificate is not trusted by {ca_hint} ({exc.verify_message}); "
                f"pass ca= the CA certificate that `lootlab serve` printed")
    except ssl.SSLError as exc:
        text = f"{exc.reason or ''} {exc}".lower()
        if "wrong_version_number" in text or "record layer failure" in text \
                or "packet length too long" in text or "http request" in text:
            return (f"{target} does not speak TLS (is it serving with --plaintext?); "
                    f"use the grpc-plain variant for a plaintext server")
        if "certificate required" in text or "certificate_required" in text \
                or "handshake failure" in text and not client_cert:
            return ("the server requires a client certificate (mutual TLS); pass "
                    "client_cert= and client_key=")
        if "unknown ca" in text or "bad certificate" in text or "certificate unknown" in text:
            return ("the server rejected the client certificate: it is not signed by the CA "
                    "the server trusts (--client-ca)")
        return f"{exc}"
    except ConnectionRefusedError:
        return f"nothing is listening at {target}"
    except (ConnectionResetError, BrokenPipeError, EOFError):
        if client_cert is None:
            return ("the server closed the connection during the handshake: it may require "
                    "a client certificate (mutual TLS); pass client_cert= and client_key=")
        return ("the server closed the connection right after the handshake: it "
                "rejected the client certificate (is it signed by the CA the server trusts "
                "with --client-ca, and still valid?)")
    except OSError as exc:
        return f"cannot reach {target}: {exc}"
    return None


