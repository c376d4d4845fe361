"""``python -m lootlab.s3local`` stops on SIGINT and SIGTERM every time, whatever started it.

A test run launched in the background by a non-interactive shell hands its children SIGINT
*ignored*; Python's default Ctrl-C (a KeyboardInterrupt) then never comes and the server
runs until killed.  These start it that way, with a request half sent, and require a clean
exit within seconds, several times over.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys

import pytest

EXIT_WITHIN = 8.0     # seconds; a stop takes well under one (busy machines get slack)


def _start() -> tuple[subprocess.Popen, tuple[str, int]]:
    """The server as a background job of a non-interactive shell starts: SIGINT ignored
    (``trap "" INT`` is kept across ``exec``)."""
    proc = subprocess.Popen(["sh", "-c", 'trap "" INT; exec "$0" -m lootlab.s3local',
                             sys.executable], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    line = proc.stdout.readline()
    assert line.startswith("loopback S3 at http://"), (line, proc.stderr.read())
    host, port = line.split()[3].rstrip(";").removeprefix("http://").split(":")
    return proc, (host, int(port))


def _half_sent_request(address: tuple[str, int]) -> socket.socket:
    """A connection whose request never ends: a handler thread is left waiting on it."""
    conn = socket.create_connection(address, timeout=5)
    conn.sendall(b"GET /loot HTTP/1.1\r\nHost: " + f"{address[0]}".encode() + b"\r\n")
    return conn


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_s3local_exits_promptly_on_a_stop_signal_each_time(sig):
    for attempt, in_flight in enumerate((True, False, True)):
        proc, address = _start()
        conn = _half_sent_request(address) if in_flight else None
        try:
            proc.send_signal(sig)
            try:
                code = proc.wait(timeout=EXIT_WITHIN)
            except subprocess.TimeoutExpired:
                pytest.fail(f"attempt {attempt}: still running {EXIT_WITHIN} s after {sig.name}"
                            f"{' with a request in flight' if in_flight else ''}")
            assert code == 0, (attempt, code, proc.stderr.read())
            with pytest.raises(ConnectionRefusedError):   # nothing listens any more
                socket.create_connection(address, timeout=5).close()
        finally:
            if conn is not None:
                conn.close()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()
            proc.stderr.close()
