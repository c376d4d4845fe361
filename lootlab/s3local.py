"""A real S3-protocol server on loopback (moto's ``ThreadedMotoServer``), for tests and notebooks.

boto3 talks to it over HTTP exactly as it would to S3: no in-process mocking.  A fault
switch in front of moto's WSGI app makes it misbehave on purpose, so the rebuild worker's
handling of a slow, failing or corrupting S3 can be tested for real:

- ``fault = "slow"``: hold each request ``slow_seconds`` before answering (client timeouts)
- ``fault = "error"``: answer 503 SlowDown without touching moto
- ``fault = "corrupt"``: flip one byte in the middle of each object body sent back
- ``stop()`` then use ``endpoint_url``: nothing listens any more (unreachable)

Run ``python -m lootlab.s3local`` to keep one running in a terminal and try
``lootlab rebuild --source s3://...`` against it.
"""

from __future__ import annotations

import io
import logging
import queue
import signal
import threading
import time
from pathlib import Path
from typing import Any, Self

import click
import pandas as pd

from .console import handle_errors

FAKE_CREDENTIALS = {"aws_access_key_id": "lootlab-local", "aws_secret_access_key": "lootlab-local",
                    "region_name": "us-east-1"}


class _FaultSwitch:
    """WSGI middleware: passes requests to moto unless a fault is switched on."""

    def __init__(self, app: Any):
        self.app = app
        self.fault: str | None = None
        self.slow_seconds = 5.0
        self.requests = 0
        self._lock = threading.Lock()

    def __call__(self, environ: dict, start_response: Any):
        with self._lock:
            self.requests += 1
        fault = self.fault
        if fault == "slow":
            time.sleep(self.slow_seconds)
        elif fault == "error":
            body = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
                    b'<Message>Please reduce your request rate (lootlab fault switch)</Message>'
                    b'</Error>')
            start_response("503 Service Unavailable",
                           [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))])
            return [body]
        if fault == "corrupt" and environ.get("REQUEST_METHOD") == "GET":
            chunks = b"".join(self.app(environ, start_response))
            if len(chunks) > 0 and not chunks.startswith(b"<?xml"):
                middle = len(chunks) // 2
                chunks = chunks[:middle] + bytes([chunks[middle] ^ 0xFF]) + chunks[middle + 1:]
            return [chunks]
        return self.app(environ, start_response)


def _threaded_moto_server_class():
    from moto.moto_server.threaded_moto_server import ThreadedMotoServer
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    class _QuietHandler(MotoRequestHandler):
        def log_request(self, *args: Any, **kwargs: Any) -> None:  # no line per request
            pass

    class FaultyMotoServer(ThreadedMotoServer):
        """``ThreadedMotoServer`` whose app sits behind a ``_FaultSwitch``."""

        def __init__(self, ip_address: str = "127.0.0.1", port: int = 0):
            super().__init__(ip_address=ip_address, port=port, verbose=False)
            self.switch = _FaultSwitch(DomainDispatcherApplication(create_backend_app))

        def _server_entry(self) -> None:
            self._server = make_server(self._ip_address, self._port, self.switch, True,
                                       request_handler=_QuietHandler)
            self._server_ready_event.set()
            self._server.serve_forever()

    return FaultyMotoServer


class LoopbackS3:
    """A moto S3 server on 127.0.0.1 (free port), started on enter and stopped on exit."""

    def __init__(self, port: int = 0):
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self._server = _threaded_moto_server_class()(port=port)
        self.endpoint_url: str | None = None
        self._port = port
        self._client = None

    def start(self) -> Self:
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint_url = f"http://{host}:{port}"
        return self

    def stop(self) -> None:
        """Stop listening (the endpoint then refuses connections: "S3 unreachable")."""
        self.switch.fault = None
        self._server.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- faults ---------------------------------------------------------------------------
    @property
    def switch(self) -> _FaultSwitch:
        return self._server.switch

    @property
    def fault(self) -> str | None:
        return self.switch.fault

    @fault.setter
    def fault(self, value: str | None) -> None:
        if value not in (None, "slow", "error", "corrupt"):
            raise ValueError(f"unknown fault {value!r}: use None, 'slow', 'error' or 'corrupt'")
        self.switch.fault = value

    @property
    def requests(self) -> int:
        """Requests received so far (to prove an unchanged check is one request)."""
        return self.switch.requests

    # -- clients and data -----------------------------------------------------------------
    @property
    def credentials(self) -> dict[str, str]:
        return dict(FAKE_CREDENTIALS)

    def client(self, **config: Any):
        """A boto3 S3 client for this server (``config``: botocore Config arguments)."""
        import boto3
        from botocore.config import Config

        if not config and self._client is not None:
            return self._client
        client = boto3.session.Session().client(
            "s3", endpoint_url=self.endpoint_url, config=Config(**config) if config else None,
            **FAKE_CREDENTIALS)
        if not config:
            self._client = client
        return client

    def source(self, bucket: str, key: str, **options: Any):
        """An ``S3Source`` on this server (options: timeouts, max_attempts...)."""
        from .sources import S3Source

        return S3Source(bucket, key, self.endpoint_url, **FAKE_CREDENTIALS, **options)

    def ensure_bucket(self, bucket: str) -> None:
        client = self.client()
        existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
        if bucket not in existing:
            client.create_bucket(Bucket=bucket)

    def put_bytes(self, data: bytes, bucket: str, key: str, *, checksum: str | None = "SHA256") -> str:
        """Upload raw bytes (creating the bucket); returns the new ETag (unquoted)."""
        self.ensure_bucket(bucket)
        extra = {"ChecksumAlgorithm": checksum} if checksum else {}
        response = self.client().put_object(Bucket=bucket, Key=key, Body=data, **extra)
        return response["ETag"].strip('"')

    def put_table(self, df: pd.DataFrame, bucket: str, key: str, **options: Any) -> str:
        """Upload a loot table as Parquet or CSV (by the key's suffix); returns the ETag."""
        buf = io.BytesIO()
        if key.lower().endswith(".csv"):
            df.to_csv(buf, index=False)
        else:
            df.to_parquet(buf, index=False)
        return self.put_bytes(buf.getvalue(), bucket, key, **options)


class StopSignals:
    """SIGINT and SIGTERM, turned into a queue the main thread waits on.

    Installed explicitly because Python's default Ctrl-C is not dependable here: a process
    started in the background by a non-interactive shell (a test run launched with ``&``)
    inherits SIGINT *ignored*, so no KeyboardInterrupt ever comes, and SIGTERM would kill
    the process without stopping the server.  ``SimpleQueue.put`` is safe in a handler.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)
    #: How often the waiting main thread wakes: a signal the kernel hands to another thread
    #: only runs its handler once the main thread executes Python again.
    WAKE_EVERY = 0.25

    def __init__(self) -> None:
        self._received: queue.SimpleQueue[int] = queue.SimpleQueue()
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> Self:
        for sig in self.SIGNALS:
            self._previous[sig] = signal.signal(sig, lambda signum, _: self._received.put(signum))
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def wait(self) -> signal.Signals:
        """Block until one of the signals arrives (at once if one came already)."""
        while True:
            try:
                return signal.Signals(self._received.get(timeout=self.WAKE_EVERY))
            except queue.Empty:
                continue


@click.command(cls=handle_errors("lootlab.s3local"))
@click.option("--port", type=int, default=0, help="port [default: a free one]")
@click.option("--put", nargs=2, metavar="TABLE S3URL", default=None,
              help="upload TABLE (.parquet/.csv) to s3://BUCKET/KEY")
def main(port: int, put: tuple[str, str] | None) -> None:
    """Run a loopback S3 until Ctrl-C (or SIGTERM), optionally uploading a table first."""
    # signals first: one arriving while the server starts or uploads stops it right after
    with StopSignals() as stop, LoopbackS3(port=port) as s3:
        if put:
            from .tables import read_table
            bucket, _, key = put[1].removeprefix("s3://").partition("/")
            etag = s3.put_table(read_table(Path(put[0])), bucket, key)
            print(f"uploaded {put[0]} to s3://{bucket}/{key} (ETag {etag})")
        print(f"loopback S3 at {s3.endpoint_url}; in another shell:\n"
              f"  export AWS_ACCESS_KEY_ID=lootlab-local AWS_SECRET_ACCESS_KEY=lootlab-local\n"
              f"  lootlab rebuild --source s3://BUCKET/KEY --endpoint-url {s3.endpoint_url} "
              f"--index data/loot.idx --interval 5\nCtrl-C to stop.", flush=True)
        # the server thread's serve loop is stopped by LoopbackS3.stop (shutdown, then the
        # listening socket closed), from this thread, once a signal has come
        stop.wait()


if __name__ == "__main__":
    main(prog_name="python -m lootlab.s3local")
