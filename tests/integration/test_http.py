"""The player-facing JSON endpoint, served by uvicorn in a real subprocess, with the
local index and a remote variant as backends; wrk can drive it."""

from __future__ import annotations

import json
import re
import shutil
import signal
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import lootlab

from _remote import small_index


def _start(index_path: Path, *args: str, env=None) -> tuple[subprocess.Popen, str]:
    proc, url, _ = _start_with_hint(index_path, *args, env=env)
    return proc, url


def _start_with_hint(index_path: Path, *args: str, env=None):
    """Start ``serve --http 0``; return the process, its URL and the curl it suggests."""
    proc = subprocess.Popen(
        [sys.executable, "-c", "from lootlab.cli import main; main()", "serve", "--http", "0",
         "--index", str(index_path), *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    for _ in range(5):
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"endpoint did not start: {proc.stderr.read()}")
        if "search endpoint on " in line:
            hint = proc.stdout.readline()
            return proc, line.split(" on ")[1].split()[0], hint
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
    ("near?x=1&y=2&z=3&r=1e9", "'r' must be a plain decimal"),
    ("near?x=1&y=2&z=3&r=nan", "'r' must be a plain decimal"),
    ("near?x=1&y=99999&z=3&r=4", "packable range"),
    ("near?x=1&y=2&z=3&r=4&limit=51", "'limit' must be in"),
    ("get?x=1&z=3", "missing query parameter 'y'"),
    ("near?x=1_6824&y=64&z=6566&r=4", "'x' must be an integer"),
    ("near?x=%201&y=64&z=6566&r=4", "'x' must be an integer"),                 # " 1"
    ("near?x=1&y=%D9%A6%D9%A4&z=3&r=4", "'y' must be an integer"),             # Arabic-Indic 64
    ("get?x=1&y=2&z=%EF%BC%93", "'z' must be an integer"),                     # fullwidth 3
    ("near?x=1&y=2&z=3&r=%EF%BC%94", "'r' must be a plain decimal"),
    ("near?x=1&y=2&z=3&x=1&r=4", "'x' is given 2 times"),
    ("get?x=1&y=2&z=3&z=3", "'z' is given 2 times"),
    ("near?x=1&y=2&z=3&r=4&limit=3&limit=3", "'limit' is given 2 times"),
])
def test_bad_query_strings_get_400(endpoint, query, pattern):
    status, body = _get(f"{endpoint}/{query}")
    assert status == 400
    assert re.search(pattern, body["error"])


# -- the query-string grammar, as properties (in-process app over the same index) -------------
_ASCII_INT = re.compile(r"-?[0-9]+", re.ASCII)
_ASCII_DECIMAL = re.compile(r"-?[0-9]+(\.[0-9]+)?", re.ASCII)


@pytest.fixture(scope="module")
def app_client(index_path):
    import warnings
    with warnings.catch_warnings():     # starlette's notice that httpx2 will replace httpx
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient
    from lootlab.clients import MmapClient
    from lootlab.remote.http import create_app
    backend = MmapClient(index_path)
    with TestClient(create_app(backend, max_results=50)) as client:
        yield client
    backend.close()


def _query(**params: str) -> str:
    from urllib.parse import quote
    return "&".join(f"{k}={quote(v, safe='')}" for k, v in params.items())


_ANY_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)
# Near misses that int()/float() accept: padding, '+', '_', non-ASCII digits, exponents...
_DIGITS = st.text(alphabet=st.characters(whitelist_categories=("Nd",)) | st.sampled_from("_"),
                  min_size=1, max_size=6)
_NEAR_MISS = st.builds(lambda pre, sign, digits, post: pre + sign + digits + post,
                       st.sampled_from(["", " ", "\t", "\n", "\u00a0", "\u3000"]),
                       st.sampled_from(["", "-", "+", "--", "\u2212"]), _DIGITS,
                       st.sampled_from(["", " ", "\n", ".", ".5", ".٥", "e1", "E+2", "j"]))
_TEXT = st.one_of(_ANY_TEXT, _NEAR_MISS,
                  st.sampled_from(["inf", "-inf", "nan", "Infinity", "1e3", "0x10", "1_000",
                                   "١٢", "１２", "12.", ".5", "+5", " 5", "5 ", "5\n"]))


@pytest.mark.parametrize("name", ["x", "y", "z", "limit"])
@settings(max_examples=300, deadline=None)
@given(raw=_TEXT)
def test_any_integer_parameter_outside_the_ascii_grammar_is_400(app_client, name, raw):
    assume(not _ASCII_INT.fullmatch(raw))
    params = dict(x="16", y="64", z="-40", r="8")
    params[name] = raw
    resp = app_client.get(f"/near?{_query(**params)}")
    assert resp.status_code == 400, (raw, resp.text)
    assert f"'{name}'" in resp.json()["error"]
    if name != "limit":
        resp = app_client.get(f"/get?{_query(**{k: params[k] for k in 'xyz'})}")
        assert resp.status_code == 400 and f"'{name}'" in resp.json()["error"]


@settings(max_examples=300, deadline=None)
@given(raw=_TEXT)
def test_any_radius_outside_the_ascii_decimal_grammar_is_400(app_client, raw):
    assume(not _ASCII_DECIMAL.fullmatch(raw))
    resp = app_client.get(f"/near?{_query(x='16', y='64', z='-40', r=raw)}")
    assert resp.status_code == 400, (raw, resp.text)
    assert "'r'" in resp.json()["error"]


@settings(max_examples=100, deadline=None)
@given(
    x=st.integers(-40_000, 40_000),
    y=st.integers(-2048, 2047),
    z=st.integers(-40_000, 40_000),
    r=st.sampled_from(["0", "8", "12.5", "64", "040"]))
def test_ascii_queries_answer_like_the_index(app_client, index, x, y, z, r):
    resp = app_client.get(f"/near?x={x}&y={y}&z={z}&r={r}")
    want = index.near(x, y, z, float(r))
    assert resp.status_code == 200, resp.text
    assert resp.json()["count"] == len(want)
    assert resp.json()["records"] == _as_rows(want[:50])


@pytest.mark.parametrize("name", ["x", "y", "z", "r", "limit", "other"])
def test_a_repeated_parameter_is_400_naming_it(app_client, name):
    params = "x=16&y=64&z=-40&r=8&limit=5&other=1"
    value = params.split(f"{name}=")[1].split("&")[0]
    resp = app_client.get(f"/near?{params}&{name}={value}")
    assert resp.status_code == 400 and f"'{name}' is given 2 times" in resp.json()["error"]


def test_the_suggested_curl_finds_loot(index_path, index, tmp_path):
    import os
    env = dict(os.environ, LOOTLAB_DATA=str(tmp_path))
    proc, url, hint = _start_with_hint(index_path, env=env)
    try:
        suggested = hint.split("curl '", 1)[1].split("'")[0]
        assert suggested.startswith(f"{url}/near?")
        status, body = _get(suggested)
        assert status == 200 and body["count"] >= 1
    finally:
        _stop(proc)


def test_http_port_in_use_prints_only_lootlabs_line(index_path, tmp_path):
    import os
    import socket
    env = dict(os.environ, LOOTLAB_DATA=str(tmp_path))
    with socket.socket() as held:                      # a port something else listens on
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-c", "from lootlab.cli import main; main()", "serve", "--http",
             str(port), "--index", str(index_path)],
            capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr                 # no uvicorn "ERROR: [Errno 98]" line
    assert lines[0].startswith(f"lootlab: error: cannot listen on 127.0.0.1:{port}: "
                               f"the port is in use"), proc.stderr


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
