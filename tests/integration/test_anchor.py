"""The harness held against the anchor: coordinated omission, wrk2, the HTTP client.

A tiny HTTP server (in a child process, so its thread never competes with the load
generator for the GIL) freezes for STALL s every PERIOD s, as a GC pause would.  An open
loop measures from intended send times, so every request scheduled during the freeze is
charged for it: p99 > 500 ms.  A closed loop waits for each answer before sending the
next, so one request per freeze sees it and p99 stays small: the omission.  wrk2 (when on
PATH) must see the freeze as lootlab's open loop does.
"""

from __future__ import annotations

import functools
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from lootlab import loadgen
from lootlab.benchmarks.anchor import parse_wrk2, run_wrk2, wrk2_path
from lootlab.errors import LootlabError, QueryError
from lootlab.remote.errors import ServerUnavailable
from lootlab.remote.httpclient import HttpNearClient

PERIOD, STALL = 5.0, 1.0

_SERVER = textwrap.dedent(f"""
    import sys, time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    T0 = time.monotonic()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"          # keep-alive, as wrk2 and HttpNearClient use
        disable_nagle_algorithm = True         # headers and body go in two writes: without
                                               # this, Nagle + delayed ACK add 40 ms to each

        def do_GET(self):
            phase = (time.monotonic() - T0) % {PERIOD}
            if phase >= {PERIOD - STALL}:      # the freeze: answer when it ends
                time.sleep({PERIOD} - phase)
            body = b'{{"count":1,"returned":0,"truncated":false,"records":[]}}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    print(srv.server_address[1], flush=True)
    srv.serve_forever()
""")

WORKLOAD = np.array([[1, 2, 3, 4]], np.int64)


@pytest.fixture(scope="module")
def stalling_url():
    proc = subprocess.Popen([sys.executable, "-c", _SERVER], stdout=subprocess.PIPE, text=True)
    try:
        port = int(proc.stdout.readline())     # printed once bound: no sleeping
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.kill()
        proc.wait(timeout=30)


def test_open_loop_sees_the_stall_closed_loop_hides_it(stalling_url):
    factory = functools.partial(HttpNearClient, stalling_url)
    # 6 s (PERIOD + STALL) always holds a whole freeze: >= 16 % of requests wait in one,
    # >= 8 % of them more than 500 ms.
    opened = loadgen.run(factory, loadgen.constant(100, PERIOD + STALL), concurrency=1,
                         workload=WORKLOAD)
    assert opened.counts["failed"] == 0 and opened.counts["timeouts"] == 0
    assert opened.latency_us(99) > 500_000, opened.summary()

    # 6 s always holds a whole freeze; with one worker only the request in flight waits.
    shut = loadgen.run(factory, loadgen.closed(1, PERIOD + STALL, think_time=0.005),
                       workload=WORKLOAD)
    assert shut.counts["failed"] == 0 and shut.counts["timeouts"] == 0
    assert shut.percentile_us(100) > 500_000, "the closed run met no freeze: test is void"
    assert shut.latency_us(99) < 100_000, shut.summary()


@pytest.mark.skipif(wrk2_path() is None,
                    reason="wrk2 is not on PATH (build it from github.com/giltene/wrk2)")
def test_wrk2_sees_the_stall_too(stalling_url):
    # wrk2 resets its histograms at 10 s + 5 ms per connection ("calibration"), so a 6 s
    # run keeps all of it; 6 s holds a whole freeze, as for lootlab's open loop above.
    res = run_wrk2(stalling_url, 100, PERIOD + STALL, connections=8)
    assert res.errors == 0 and res.requests > 400
    assert res.latency_us(99) > 500_000, res.output


def test_parse_wrk2_reads_the_recorded_distribution_not_the_uncorrected():
    text = textwrap.dedent("""\
        Running 10s test @ http://127.0.0.1:1
          Latency Distribution (HdrHistogram - Recorded Latency)
         50.000%    1.50ms
         90.000%  812.00us
         99.000%    1.20s
         99.900%    1.00m
        100.000%    2.00h

          Latency Distribution (HdrHistogram - Uncorrected Latency (measured without ...))
         50.000%    7.00us
         99.000%    9.00us
          1000 requests in 10.00s, 10.00KB read
          Socket errors: connect 0, read 2, write 0, timeout 3
          Non-2xx or 3xx responses: 4
        Requests/sec:    99.95
        """)
    res = parse_wrk2(text, 100)
    assert res.percentiles_us == {50.0: 1500.0, 90.0: 812.0, 99.0: 1.2e6, 99.9: 60e6,
                                  100.0: 7200e6}
    assert (res.requests, res.errors, res.achieved_rate) == (1000, 9, 99.95)
    with pytest.raises(LootlabError, match="--latency"):
        parse_wrk2("Running 10s test\nRequests/sec: 1\n")


def test_http_client_against_the_endpoint(tmp_path):
    import lootlab
    from lootlab.benchmarks.anchor import http_endpoint

    from _remote import small_index

    path = small_index(tmp_path)
    with lootlab.open_index(path) as idx:
        rec = idx.box((-(2 ** 25), -2048, -(2 ** 25)), (2 ** 25 - 1, 2047, 2 ** 25 - 1))[0]
        x, y, z = int(rec["x"]), int(rec["y"]), int(rec["z"])
        expected = idx.near(x, y, z, 40)
    with http_endpoint(path) as url:
        cli = HttpNearClient(url)
        assert cli.near(x, y, z, 40) == len(expected) > 0
        again = pickle.loads(pickle.dumps(cli))        # loadgen's spawned workers need this
        rows = HttpNearClient(url, records=True, limit=5).near(x, y, z, 40)
        assert len(rows) == min(5, len(expected))
        assert {(r["x"], r["y"], r["z"]) for r in rows} <= {
            (int(a), int(b), int(c)) for a, b, c in zip(expected["x"], expected["y"],
                                                        expected["z"])}
        assert again.near(x, y, z, 40) == len(expected)
        with pytest.raises(QueryError, match="'r'"):
            cli.near(x, y, z, 5000)
        assert cli.near(x, y, z, 40) == len(expected)     # the connection survived a 400
        cli.close()
        again.close()
    with pytest.raises(ServerUnavailable, match="nothing is listening"):
        HttpNearClient(url).near(x, y, z, 40)


def test_the_anchor_benchmark_skips_cleanly_without_wrk2(monkeypatch):
    from click.testing import CliRunner

    from lootlab.benchmarks import anchor
    from lootlab.benchmarks.__main__ import BENCHMARKS

    assert "anchor" in BENCHMARKS
    monkeypatch.setattr(anchor, "wrk2_path", lambda: None)
    res = CliRunner().invoke(anchor.main, ["--rates", "100"])
    assert res.exit_code == 0, res.output
    assert res.output.startswith("skipped: wrk2 is not on PATH")
    assert "Usage" in CliRunner().invoke(anchor.main, ["--help"]).output
    with pytest.raises(LootlabError, match="wrk2 is not on PATH"):
        run_wrk2("http://127.0.0.1:1", 10, 1.0)


def test_saturation_names_the_rates_and_nan_when_none():
    import pandas as pd

    from lootlab.benchmarks.anchor import saturation

    table = pd.DataFrame({"tool": ["wrk2"] * 3 + ["lootlab"] * 3,
                          "rate": [200.0, 500.0, 1000.0] * 2,
                          "achieved_rate": [200, 499, 600, 200, 420, 500],
                          "p99_us": [2e3, 9e3, 9e5, 3e3, 2e4, 9e5]})
    sat = saturation(table, 10_000).set_index("tool")
    assert sat.loc["wrk2"].tolist() == [500.0, 1000.0]
    assert sat.loc["lootlab"].tolist() == [200.0, 500.0]
    none = saturation(table[table["rate"] == 200.0], 1_000).set_index("tool")
    assert none.isna().all().all()


def test_resolution_rows_without_wrk2_is_an_empty_frame_with_a_note(monkeypatch):
    from lootlab.benchmarks import anchor, resolution

    monkeypatch.setattr(anchor, "wrk2_path", lambda: None)
    monkeypatch.setattr(anchor, "http_endpoint", None)     # nothing may be started
    monkeypatch.setattr(resolution, "null_server", None)
    out = resolution.resolution_rows()
    assert out.empty and list(out.columns) == resolution.RESOLUTION_COLUMNS
    assert out.attrs["note"].startswith("wrk2 is not on PATH")
    assert out.attrs["rates"] == [1_000.0, 10_000.0]
    assert out.attrs["duration_s"] < anchor.CALIBRATION_S
    assert out.attrs["target"] == "null"


def test_resolution_rows_pair_the_tools_rate_by_rate(monkeypatch):
    import contextlib
    from types import SimpleNamespace

    from lootlab.benchmarks import anchor, resolution

    calls = []

    def fake_wrk2(url, rate, duration, *, connections, script):
        calls.append(("wrk2", rate))
        assert "/near?" in open(script).read()          # the same queries, as a wrk script
        return anchor.Wrk2Result(rate, rate, int(rate * duration),
                                 {50.0: 1_000.0, 90.0: 2_000.0, 99.0: 4_000.0,
                                  99.9: 8_000.0})

    def fake_lootlab(url, rate, duration, *, connections, workload):
        calls.append(("lootlab", rate))
        lat = {50.0: 900.0, 90.0: 1_500.0, 99.0: 6_000.0, 99.9: 9_000.0}
        return SimpleNamespace(
            counts={"measured": 10, "failed": 1, "timeouts": 0, "unsent": 2},
            achieved_rate=rate / 2 if rate > 500 else rate,
            health=SimpleNamespace(valid=rate <= 500),
            latency_us=lat.__getitem__,
            percentile_us=lambda p, metric="latency": 70.0 if metric == "generator_lag"
            else lat[p])

    fake_null = SimpleNamespace(url="http://127.0.0.1:9", cpu_s=lambda: 1.0)
    monkeypatch.setattr(anchor, "wrk2_path", lambda: "/usr/local/bin/wrk2")
    monkeypatch.setattr(anchor, "http_endpoint",
                        lambda index=None: contextlib.nullcontext("http://127.0.0.1:9"))
    monkeypatch.setattr(resolution, "null_server", lambda: contextlib.nullcontext(fake_null))
    monkeypatch.setattr(anchor, "settle_endpoint", lambda url, queries=None: 0.0)
    monkeypatch.setattr(anchor, "run_wrk2", fake_wrk2)
    monkeypatch.setattr(anchor, "run_lootlab", fake_lootlab)
    out = resolution.resolution_rows((100, 1_000), 2.0)        # the null server by default

    assert calls == [("wrk2", 100), ("lootlab", 100), ("lootlab", 1_000), ("wrk2", 1_000)]
    assert list(out.columns) == resolution.RESOLUTION_COLUMNS
    assert out["rate"].tolist() == [100.0, 1_000.0]
    assert out["first"].tolist() == ["wrk2", "lootlab"]
    row = out.iloc[0]
    assert (row["wrk2_p50_us"], row["wrk2_p99_us"]) == (1_000.0, 4_000.0)
    assert (row["lootlab_p50_us"], row["lootlab_p99_us"]) == (900.0, 6_000.0)
    assert row["lootlab_generator_lag_p99_us"] == 70.0
    assert row["lootlab_observed_p99_us"] == 6_000.0
    assert row["p99_lootlab_over_wrk2"] == 1.5
    assert (row["wrk2_errors"], row["lootlab_errors"]) == (0, 3)
    assert row["note"] == ""
    assert out["lootlab_verdict"].tolist() == ["valid", "INVALID"]
    assert out["saturated"].tolist() == [False, True]      # lootlab got half of 1,000/s
    # on the null server a tool short of the rate measured its own backlog: not reported
    short = out.iloc[1]
    assert np.isnan(short["lootlab_p50_us"]) and np.isnan(short["lootlab_p99_us"])
    assert np.isnan(short["p99_lootlab_over_wrk2"]) and short["wrk2_p99_us"] == 4_000.0
    assert "lootlab's Python HTTP client is the limit" in short["note"]
    assert "500/s" in short["note"]
    assert out.attrs["note"] == "" and out.attrs["connections"] == 8
    assert out.attrs["target"] == "null" and out.attrs["server_cpu_s"] == 0.0
    assert len(out.attrs["loadavg_before"].split()) == 3

    # against `lootlab serve` the same shortfall is the endpoint's queue, reported as such
    served = resolution.resolution_rows((1_000,), 2.0, queries=WORKLOAD, target="serve")
    assert served["lootlab_p99_us"].tolist() == [6_000.0]
    assert served["note"].iloc[0].startswith("the endpoint saturated")
    with pytest.raises(LootlabError, match="calibration"):
        resolution.resolution_rows((100,), anchor.CALIBRATION_S + 1, queries=WORKLOAD)
    with pytest.raises(LootlabError, match="target"):
        resolution.resolution_rows((100,), 1.0, target="nginx")


@pytest.mark.skipif(wrk2_path() is None,
                    reason="wrk2 is not on PATH (build it from github.com/giltene/wrk2)")
def test_resolution_rows_against_a_real_endpoint(tmp_path):
    from lootlab.benchmarks.resolution import RESOLUTION_COLUMNS, resolution_rows

    from _remote import small_index

    out = resolution_rows((100, 200), 1.0, connections=2, index=small_index(tmp_path),
                          target="serve")
    assert list(out.columns) == RESOLUTION_COLUMNS and len(out) == 2
    assert out.attrs["note"] == "" and out.attrs["target"] == "serve"
    for tool in ("wrk2", "lootlab"):
        assert (out[f"{tool}_p50_us"] > 0).all() and \
            (out[f"{tool}_p50_us"] <= out[f"{tool}_p99_us"]).all()
    assert (out["lootlab_generator_lag_p99_us"] >= 0).all()


# The null HTTP server: an answer that costs next to nothing, so a generator driving it
# measures its own error.

_REQUEST = b"GET /near?x=1&y=2&z=3&r=4 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


def _start_null() -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen([sys.executable, "-m", "lootlab.benchmarks.nullhttp", "--port",
                             "0"], stdout=subprocess.PIPE, text=True)
    return proc, int(proc.stdout.readline())   # printed once it listens


def _gone(pid: int) -> bool:
    """No such process, or only its zombie (reparented to an init that may not reap)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_null_server_answers_every_pipelined_request():
    import socket

    from lootlab.benchmarks.nullhttp import RESPONSE

    n = 200
    proc, port = _start_null()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            blob = _REQUEST * n
            cut = len(_REQUEST) * 7 + 5            # one request split across two sends
            sock.sendall(blob[:cut])
            sock.sendall(blob[cut:])
            got = b""
            while len(got) < n * len(RESPONSE):    # the socket timeout is the deadline
                chunk = sock.recv(65536)
                assert chunk, f"closed after {got.count(b'HTTP/1.1 200')} answers"
                got += chunk
            assert got == RESPONSE * n
        with HttpNearClient(f"http://127.0.0.1:{port}") as cli:
            assert cli.near(1, 2, 3, 4) == 0       # a count the client can read
        proc.terminate()                           # SIGTERM: a clean, prompt exit
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()
        proc.wait(timeout=30)


def test_null_server_exits_when_its_parent_is_killed():
    import os
    import signal
    import time

    parent = subprocess.Popen([sys.executable, "-c", textwrap.dedent("""
        import subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-m", "lootlab.benchmarks.nullhttp",
                                  "--port", "0"], stdout=subprocess.PIPE, text=True)
        port = int(child.stdout.readline())
        print(child.pid, port, flush=True)
        time.sleep(600)
    """)], stdout=subprocess.PIPE, text=True)
    child_pid = None
    try:
        child_pid, _port = (int(v) for v in parent.stdout.readline().split())
        assert not _gone(child_pid)
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=30)
        deadline = time.monotonic() + 30
        while not _gone(child_pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _gone(child_pid), f"the null server {child_pid} outlived its parent"
    finally:
        parent.kill()
        parent.wait(timeout=30)
        if child_pid is not None and not _gone(child_pid):
            os.kill(child_pid, signal.SIGKILL)


def test_wrk2_floor_without_wrk2_is_an_empty_frame_with_a_note(monkeypatch):
    from lootlab.benchmarks import anchor, resolution

    monkeypatch.setattr(anchor, "wrk2_path", lambda: None)
    monkeypatch.setattr(resolution, "null_server", None)       # nothing may be started
    out = resolution.wrk2_floor()
    assert out.empty and list(out.columns) == resolution.FLOOR_COLUMNS
    assert out.attrs["note"].startswith("wrk2 is not on PATH")
    assert out.attrs["rates"] == [1_000.0, 10_000.0] and out.attrs["connections"] == 8
    assert out.attrs["duration_s"] < anchor.CALIBRATION_S


@pytest.mark.skipif(wrk2_path() is None,
                    reason="wrk2 is not on PATH (build it from github.com/giltene/wrk2)")
def test_wrk2_floor_against_the_null_server():
    from lootlab.benchmarks.resolution import FLOOR_COLUMNS, wrk2_floor

    out = wrk2_floor((200,), 1.0, connections=2)
    assert list(out.columns) == FLOOR_COLUMNS and len(out) == 1
    row = out.iloc[0]
    assert out.attrs["note"] == "" and row["errors"] == 0 and row["requests"] > 0
    assert 0 < row["p50_us"] <= row["p99_us"] <= row["p99.9_us"]
    assert 0 <= row["server_cpu_s"] < 1.0
    assert len(out.attrs["loadavg_after"].split()) == 3
