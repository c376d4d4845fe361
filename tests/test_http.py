"""The player-facing JSON endpoint, served by uvicorn in a real subprocess, with the
local index and a remote variant as backends; wrk can drive it."""

from __future__ import annotations

import json
import shutil
import signal
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

import lootlab

from _remote import small_index


def _start(index_path: Path, *args: str, env=None) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", "from lootlab.cli import main; main()", "serve", "--http", "0",
         "--index", str(index_path), *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    for _ in range(5):
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"endpoint did not start: {proc.stderr.read()}")
        if "search endpoint on " in line:
            return proc, line.split(" on ")[1].split()[0]
    raise AssertionError("no endpoint line")


def _stop(proc: subprocess.Popen) -> str:
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    return out


def _get(url: str, context=None) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=30, context=context) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture(scope="module")
def index_path(tmp_path_factory):
    return small_index(tmp_path_factory.mktemp("http"))


@pytest.fixture(scope="module")
def index(index_path):
    with lootlab.open_index(index_path) as idx:
        yield idx


@pytest.fixture(scope="module", params=["mmap", "grpc-plain"])
def endpoint(request, index_path, tmp_path_factory):
    import os
    env = dict(os.environ, LOOTLAB_DATA=str(tmp_path_factory.mktemp("http-data")))
    proc, url = _start(index_path, "--backend", request.param, "--max-results", "50", env=env)
    try:
        yield url
    finally:
        out = _stop(proc)
        assert "endpoint stopped" in out


def _as_rows(records) -> list[dict]:
    return [dict(zip(lootlab.FIELDS, row)) for row in records.tolist()]


def test_near_matches_the_index_and_flags_truncation(endpoint, index):
    for x, y, z, r in [(int(p["x"]), int(p["y"]), int(p["z"]), r)
                       for p, r in zip(index.sample(6, seed=4), (4, 16, 64, 64, 8, 0))]:
        status, body = _get(f"{endpoint}/near?x={x}&y={y}&z={z}&r={r}")
        want = index.near(x, y, z, r)
        assert status == 200
        assert body["count"] == len(want)
        assert body["truncated"] == (len(want) > 50)
        assert body["returned"] == min(50, len(want))
        assert body["records"] == _as_rows(want[:50])


def test_limit_parameter(endpoint, index):
    p = index.sample(1, seed=2)[0]
    status, body = _get(f"{endpoint}/near?x={p['x']}&y={p['y']}&z={p['z']}&r=64&limit=3")
    assert status == 200 and body["returned"] == min(3, body["count"])
    assert body["truncated"] == (body["count"] > 3)


def test_get(endpoint, index):
    p = index.sample(1, seed=8)[0]
    status, body = _get(f"{endpoint}/get?x={p['x']}&y={p['y']}&z={p['z']}")
    assert status == 200 and body["found"]
    assert body["record"] == index.get(int(p["x"]), int(p["y"]), int(p["z"]))._asdict()
    status, body = _get(f"{endpoint}/get?x=0&y=-2000&z=0")
    assert status == 200 and body == {"found": False, "record": None}


@pytest.mark.parametrize("query,pattern", [
    ("near?x=1&y=2&z=3", "missing query parameter 'r'"),
    ("near?x=a&y=2&z=3&r=4", "'x' must be an integer"),
    ("near?x=1&y=2&z=3&r=-4", "'r' must be in"),
    ("near?x=1&y=2&z=3&r=1e9", "'r' must be in"),
    ("near?x=1&y=2&z=3&r=nan", "'r' must be in"),
    ("near?x=1&y=99999&z=3&r=4", "packable range"),
    ("near?x=1&y=2&z=3&r=4&limit=51", "'limit' must be in"),
    ("get?x=1&z=3", "missing query parameter 'y'"),
])
def test_bad_query_strings_get_400(endpoint, query, pattern):
    import re
    status, body = _get(f"{endpoint}/{query}")
    assert status == 400
    assert re.search(pattern, body["error"])


def test_https_with_the_development_certificate(index_path, tmp_path):
    import os
    env = dict(os.environ, LOOTLAB_DATA=str(tmp_path))
    proc, url = _start(index_path, "--https", env=env)
    try:
        assert url.startswith("https://")
        ctx = ssl.create_default_context(cafile=str(tmp_path / "tls" / "ca.pem"))
        status, body = _get(f"{url}/near?x=0&y=0&z=0&r=8", context=ctx)
        assert status == 200 and "count" in body
        with pytest.raises(urllib.error.URLError):          # not trusted without the CA
            _get(f"{url}/near?x=0&y=0&z=0&r=8", context=ssl.create_default_context())
    finally:
        _stop(proc)


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")
def test_wrk_can_drive_the_endpoint_with_the_overlay_workload(endpoint, index, tmp_path):
    from lootlab.overlay import overlay_queries
    from lootlab.remote.wrk import lua_script
    script = tmp_path / "overlay.lua"
    script.write_text(lua_script(overlay_queries(index, 50, seed=1, radius=16).tolist()))
    out = subprocess.run(["wrk", "-t1", "-c4", "-d1s", "-s", str(script), endpoint],
                         capture_output=True, text=True, timeout=60).stdout
    assert "Requests/sec" in out
    assert "Non-2xx" not in out and "Socket errors" not in out


def test_remote_backend_down_gives_502_naming_the_cause(index_path, tmp_path):
    import os
    from _remote import free_port
    env = dict(os.environ, LOOTLAB_DATA=str(tmp_path))
    proc, url = _start(index_path, "--backend", "grpc-plain", "--target",
                       f"127.0.0.1:{free_port()}", env=env)
    try:
        status, body = _get(f"{url}/near?x=0&y=0&z=0&r=8")
        assert status == 502
        assert "nothing is listening" in body["error"]
    finally:
        _stop(proc)
