"""Sources: local file/dir and S3 (a real moto server on loopback, boto3 over HTTP)."""

from __future__ import annotations

import io

import pytest

from _rebuild import canon, loopback_s3, s3, small_world  # noqa: F401
from lootlab.sources import (CorruptSourceError, LocalSource, S3Source, SourceError,
                             SourceUnavailableError, open_source, verify_checksums)
from lootlab.tables import write_table


def test_local_file_fetches_then_reports_unchanged(tmp_path):
    world = small_world(500)
    write_table(world, tmp_path / "w.parquet")
    src = LocalSource(tmp_path / "w.parquet")
    got = src.fetch()
    assert canon(got.table) == canon(world)
    assert got.version.startswith("local:")
    assert src.fetch(got.version) is None
    write_table(world.head(10), tmp_path / "w.parquet")      # replaced: new version
    again = src.fetch(got.version)
    assert again is not None and again.version != got.version and len(again.table) == 10


def test_local_directory_reads_all_tables_in_name_order(tmp_path):
    world = small_world(300)
    write_table(world.iloc[:200], tmp_path / "a.parquet")
    write_table(world.iloc[200:], tmp_path / "b.csv")
    (tmp_path / "notes.txt").write_text("ignored")
    got = LocalSource(tmp_path).fetch()
    assert canon(got.table) == canon(world)
    assert got.table["x"].iloc[-1] == world["x"].iloc[-1]      # b after a: later rows last


def test_local_missing_and_corrupt(tmp_path):
    with pytest.raises(SourceUnavailableError, match="no such file"):
        LocalSource(tmp_path / "nope.parquet").fetch()
    with pytest.raises(SourceUnavailableError, match="no .parquet or .csv"):
        LocalSource(tmp_path).fetch()
    bad = tmp_path / "bad.parquet"
    buf = io.BytesIO()
    small_world(200).to_parquet(buf)
    bad.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])   # truncated
    with pytest.raises(CorruptSourceError, match="bad.parquet"):
        LocalSource(bad).fetch()


def test_open_source_dispatch(tmp_path):
    assert isinstance(open_source(tmp_path / "x.parquet"), LocalSource)
    src = open_source("s3://bucket/some/key.parquet", endpoint_url="http://127.0.0.1:9")
    assert isinstance(src, S3Source) and (src.bucket, src.key) == ("bucket", "some/key.parquet")
    assert open_source(src) is src
    with pytest.raises(SourceError, match="s3://BUCKET/KEY"):
        open_source("s3://bucket-only")
    with pytest.raises(SourceError, match="unknown table type"):
        open_source("s3://bucket/key.json")
    with pytest.raises(SourceError, match="only apply to s3"):
        open_source(tmp_path, endpoint_url="http://x")


def test_verify_checksums_catches_a_mismatch():
    data = b"loot table bytes"
    import base64, hashlib, zlib  # noqa: E401
    good = {"ChecksumSHA256": base64.b64encode(hashlib.sha256(data).digest()).decode(),
            "ChecksumCRC32": base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode(),
            "ETag": f'"{hashlib.md5(data).hexdigest()}"'}
    assert verify_checksums(data, good, "obj") == ["SHA256", "CRC32", "MD5"]
    with pytest.raises(CorruptSourceError, match="SHA256 checksum mismatch"):
        verify_checksums(data + b"!", {"ChecksumSHA256": good["ChecksumSHA256"]}, "obj")
    with pytest.raises(CorruptSourceError, match="ETag"):
        verify_checksums(data + b"!", {"ETag": good["ETag"]}, "obj")
    # multipart ETags and composite checksums are not plain digests: not checked
    assert verify_checksums(data, {"ETag": '"abc-3"', "ChecksumCRC32": "xyz-3"}, "obj") == []


# -- S3 over HTTP ------------------------------------------------------------------------------

def test_s3_fetch_then_conditional_get_is_one_request(s3):
    world = small_world(800)
    etag = s3.put_table(world, "loot", "t1/world.parquet")
    src = s3.source("loot", "t1/world.parquet")
    got = src.fetch()
    assert got.version == etag and canon(got.table) == canon(world)
    assert "SHA256" in src.last_checksums and "MD5" in src.last_checksums
    before = s3.requests
    assert src.fetch(etag) is None                      # 304 Not Modified
    assert s3.requests - before == 1
    new_etag = s3.put_table(world.head(5), "loot", "t1/world.parquet")
    again = src.fetch(etag)
    assert again.version == new_etag != etag and len(again.table) == 5


def test_s3_csv_object(s3):
    world = small_world(100)
    s3.put_table(world, "loot", "t2/world.csv")
    assert canon(s3.source("loot", "t2/world.csv").fetch().table) == canon(world)


def test_s3_checksum_mismatch_in_transit_is_corrupt(s3):
    s3.put_table(small_world(300), "loot", "t3/world.parquet")
    s3.fault = "corrupt"                                   # flips a byte of the body sent
    with pytest.raises(CorruptSourceError, match="(?i)checksum"):
        s3.source("loot", "t3/world.parquet").fetch()


def test_s3_truncated_object_is_corrupt(s3):
    buf = io.BytesIO()
    small_world(300).to_parquet(buf)
    s3.put_bytes(buf.getvalue()[:-100], "loot", "t4/world.parquet")
    with pytest.raises(CorruptSourceError, match="t4/world.parquet.*parquet"):
        s3.source("loot", "t4/world.parquet").fetch()


def test_s3_errors_are_unavailable(s3):
    s3.put_table(small_world(50), "loot", "t5/world.parquet")
    with pytest.raises(SourceUnavailableError, match="NoSuchKey"):
        s3.source("loot", "t5/other.parquet", max_attempts=1).fetch()
    s3.fault = "error"
    with pytest.raises(SourceUnavailableError, match="503 SlowDown"):
        s3.source("loot", "t5/world.parquet", max_attempts=1).fetch()


def test_s3_slow_is_a_bounded_timeout(s3):
    s3.put_table(small_world(50), "loot", "t6/world.parquet")
    s3.fault = "slow"
    s3.switch.slow_seconds = 3
    src = s3.source("loot", "t6/world.parquet", read_timeout=0.3, connect_timeout=0.3,
                    max_attempts=1)
    with pytest.raises(SourceUnavailableError, match="(?i)timeout"):
        src.fetch()


def test_s3_unreachable_endpoint():
    from lootlab.s3local import LoopbackS3

    with LoopbackS3() as gone:
        url = gone.endpoint_url
    src = S3Source("loot", "w.parquet", url, aws_access_key_id="a", aws_secret_access_key="b",
                   connect_timeout=0.3, read_timeout=0.3, max_attempts=1)
    with pytest.raises(SourceUnavailableError, match="(?i)could not connect"):
        src.fetch()


def test_s3_credentials_from_environment(s3, monkeypatch):
    world = small_world(40)
    s3.put_table(world, "loot", "t7/world.parquet")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "from-env")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "from-env")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3.endpoint_url)
    src = open_source("s3://loot/t7/world.parquet")
    assert src.endpoint_url == s3.endpoint_url
    assert canon(src.fetch().table) == canon(world)
