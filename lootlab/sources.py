"""Where the loot table comes from: a local file or directory, or an object in S3.

A source answers one question cheaply — "has the table changed since version V?" — and
hands over the new table only when it has.  Locally the version is a digest of the
files' identities (name, size, mtime_ns); in S3 it is the object's ETag, checked with a
conditional GET (``If-None-Match``), so an unchanged object costs one small request.

Errors are split by what the caller should do: ``SourceUnavailableError`` (network,
timeouts, 5xx, missing object: retry later, keep serving) and ``CorruptSourceError``
(the bytes arrived but are not a readable loot table or fail their checksum).
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import pandas as pd

from .errors import LootlabError
from .tables import TABLE_SUFFIXES


class SourceError(LootlabError):
    """A source could not deliver its table."""


class SourceUnavailableError(SourceError):
    """The source could not be reached or answered with an error; worth retrying later."""


class CorruptSourceError(SourceError):
    """The source delivered bytes that are not a valid loot table (or fail their checksum)."""


@dataclass(frozen=True)
class Fetched:
    """A table and the version it was read at (ETag or local file digest)."""

    table: pd.DataFrame
    version: str
    nbytes: int = 0


@runtime_checkable
class Source(Protocol):
    """The one thing the rebuild worker needs from a source."""

    description: str

    def fetch(self, known_version: str | None = None) -> Fetched | None:
        """The table, or None when it is still at ``known_version`` (nothing downloaded)."""
        ...


def _table_format(name: str) -> str:
    suffix = Path(name).suffix.lower()
    if suffix in (".parquet", ".pq"):
        return "parquet"
    if suffix == ".csv":
        return "csv"
    raise SourceError(f"{name}: unknown table type {suffix or '(no suffix)'!r} "
                      f"(use .parquet, .pq or .csv)")


def parse_table(data: bytes, name: str) -> pd.DataFrame:
    """Parse Parquet or CSV bytes (chosen by ``name``'s suffix); errors name the object."""
    kind = _table_format(name)
    try:
        if kind == "parquet":
            return pd.read_parquet(io.BytesIO(data))
        return pd.read_csv(io.BytesIO(data))
    except Exception as exc:  # pyarrow and pandas raise many types for bad bytes
        raise CorruptSourceError(f"{name}: not a readable {kind} loot table "
                                 f"({type(exc).__name__}: {exc})") from exc


class LocalSource:
    """A loot table file, or a directory of them (read in name order; later files win)."""

    def __init__(self, path: str | Path):
        self.path = Path(path).expanduser()
        self.description = str(self.path)

    def __repr__(self) -> str:
        return f"LocalSource({str(self.path)!r})"

    def _files(self) -> list[Path]:
        if self.path.is_dir():
            files = sorted(p for p in self.path.iterdir()
                           if p.suffix.lower() in TABLE_SUFFIXES and not p.name.startswith("."))
            if not files:
                raise SourceUnavailableError(f"{self.path}: directory holds no .parquet or .csv "
                                             f"loot table")
            return files
        if not self.path.exists():
            raise SourceUnavailableError(f"{self.path}: no such file or directory")
        _table_format(self.path.name)
        return [self.path]

    @staticmethod
    def _digest(idents: list[tuple[str, os.stat_result]]) -> str:
        digest = hashlib.sha1()
        for name, st in idents:
            digest.update(f"{name}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ino}\n".encode())
        return "local:" + digest.hexdigest()[:20]

    def version(self) -> str:
        """Digest of the files' names, sizes, mtimes and inodes: changes whenever a file is
        replaced or rewritten."""
        idents = []
        for f in self._files():
            try:
                idents.append((f.name, f.stat()))
            except OSError as exc:
                raise SourceUnavailableError(f"{f}: {exc.strerror or exc}") from exc
        return self._digest(idents)

    def fetch(self, known_version: str | None = None) -> Fetched | None:
        if known_version is not None and self.version() == known_version:
            return None
        frames, idents, nbytes = [], [], 0
        for f in self._files():
            try:
                # read through one open handle: the bytes and the identity belong to the
                # same file even if it is replaced meanwhile (the next cycle sees that)
                with open(f, "rb") as handle:
                    st = os.fstat(handle.fileno())
                    data = handle.read()
            except OSError as exc:
                raise SourceUnavailableError(f"{f}: {exc.strerror or exc}") from exc
            idents.append((f.name, st))
            nbytes += len(data)
            frames.append(parse_table(data, str(f)))
        table = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
        return Fetched(table, self._digest(idents), nbytes)


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


def verify_checksums(data: bytes, response: dict[str, Any], name: str) -> list[str]:
    """Check ``data`` against every checksum S3 sent (flexible checksums, plain-MD5 ETag).

    Returns the algorithms checked; raises ``CorruptSourceError`` on a mismatch.
    """
    checked = []
    expected = {
        "ChecksumSHA256": lambda: _b64(hashlib.sha256(data).digest()),
        "ChecksumSHA1": lambda: _b64(hashlib.sha1(data).digest()),
        "ChecksumCRC32": lambda: _b64(zlib.crc32(data).to_bytes(4, "big")),
    }
    for field, compute in expected.items():
        want = response.get(field)
        if want and "-" not in want:          # "-N" marks a checksum of part checksums
            got = compute()
            if got != want:
                raise CorruptSourceError(f"{name}: {field[8:]} checksum mismatch (S3 says {want}, "
                                         f"the {len(data)} bytes received give {got})")
            checked.append(field[8:])
    etag = (response.get("ETag") or "").strip('"')
    if len(etag) == 32 and "-" not in etag and not response.get("SSEKMSKeyId") \
            and response.get("ServerSideEncryption") in (None, "AES256"):
        if hashlib.md5(data).hexdigest() != etag:
            raise CorruptSourceError(f"{name}: MD5 of the {len(data)} bytes received does not "
                                     f"match the ETag {etag}")
        checked.append("MD5")
    return checked


class S3Source:
    """One S3 object holding the loot table, fetched only when its ETag changes.

    Credentials come from the arguments or the usual AWS chain (``AWS_ACCESS_KEY_ID``,
    ``AWS_SECRET_ACCESS_KEY``, profiles...); ``endpoint_url`` (or ``AWS_ENDPOINT_URL_S3``,
    ``AWS_ENDPOINT_URL``) points at any S3-protocol server.  Timeouts and retries are
    bounded so a slow S3 costs at most about ``max_attempts * (connect + read timeout)``.
    """

    def __init__(self, bucket: str, key: str, endpoint_url: str | None = None, *,
                 region_name: str | None = None, aws_access_key_id: str | None = None,
                 aws_secret_access_key: str | None = None, aws_session_token: str | None = None,
                 connect_timeout: float = 3.0, read_timeout: float = 10.0, max_attempts: int = 2,
                 client: Any = None):
        _table_format(key)
        self.bucket, self.key = bucket, key
        self.endpoint_url = (endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3")
                             or os.environ.get("AWS_ENDPOINT_URL"))
        self.description = f"s3://{bucket}/{key}" + (f" at {self.endpoint_url}"
                                                     if self.endpoint_url else "")
        self.last_checksums: list[str] = []
        if client is None:
            import boto3
            from botocore.config import Config

            client = boto3.session.Session().client(
                "s3", endpoint_url=self.endpoint_url,
                region_name=region_name or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
                aws_access_key_id=aws_access_key_id, aws_secret_access_key=aws_secret_access_key,
                aws_session_token=aws_session_token,
                config=Config(connect_timeout=connect_timeout, read_timeout=read_timeout,
                              retries={"max_attempts": max_attempts, "mode": "standard"}))
        self.client = client

    def __repr__(self) -> str:
        return f"S3Source({self.description!r})"

    def fetch(self, known_version: str | None = None) -> Fetched | None:
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        args: dict[str, Any] = {"Bucket": self.bucket, "Key": self.key, "ChecksumMode": "ENABLED"}
        if known_version:
            args["IfNoneMatch"] = f'"{known_version}"'
        name = f"s3://{self.bucket}/{self.key}"
        try:
            response = self.client.get_object(**args)
            data = response["Body"].read()
        except ClientError as exc:
            err = exc.response.get("Error", {})
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if status == 304 or err.get("Code") in ("304", "NotModified"):
                return None
            raise SourceUnavailableError(f"{self.description}: S3 answered {status} "
                                         f"{err.get('Code', '')}: {err.get('Message', '')}") from exc
        except NoCredentialsError as exc:
            raise SourceUnavailableError(f"{self.description}: no AWS credentials (set "
                                         f"AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or pass "
                                         f"them)") from exc
        except BotoCoreError as exc:
            if type(exc).__name__ == "FlexibleChecksumError":
                raise CorruptSourceError(f"{name}: {exc}") from exc
            raise SourceUnavailableError(f"{self.description}: {type(exc).__name__}: {exc}") from exc
        except OSError as exc:
            raise SourceUnavailableError(f"{self.description}: {exc}") from exc
        expected_len = response.get("ContentLength")
        if expected_len is not None and expected_len != len(data):
            raise CorruptSourceError(f"{name}: truncated: received {len(data)} of "
                                     f"{expected_len} bytes")
        self.last_checksums = verify_checksums(data, response, name)
        version = (response.get("ETag") or "").strip('"')
        return Fetched(parse_table(data, name), version, len(data))


def open_source(spec: str | Path | Source, **options: Any) -> Source:
    """``s3://bucket/key`` -> ``S3Source`` (options go to it); a path -> ``LocalSource``."""
    if isinstance(spec, Source) and not isinstance(spec, (str, Path)):
        return spec
    text = str(spec)
    if text.startswith("s3://"):
        bucket, _, key = text[5:].partition("/")
        if not bucket or not key:
            raise SourceError(f"{text!r}: an S3 source is s3://BUCKET/KEY")
        return S3Source(bucket, key, **options)
    if options:
        raise SourceError(f"options {sorted(options)} only apply to s3:// sources")
    return LocalSource(text)
