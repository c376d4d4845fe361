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
    # 8 s always holds a whole freeze (1 s every 5 s): >= 12 % of requests wait in one,
    # >= 6 % of them more than 500 ms.
    opened = loadgen.run(factory, loadgen.constant(100, 8.0), concurrency=1,
                         workload=WORKLOAD)
    assert opened.counts["failed"] == 0 and opened.counts["timeouts"] == 0
    assert opened.latency_us(99) > 500_000, opened.summary()

    # 6 s always holds a whole freeze; with one worker only the request in flight waits.
    shut = loadgen.run(factory, loadgen.closed(1, 6.0, think_time=0.005), workload=WORKLOAD)
    assert shut.counts["failed"] == 0 and shut.counts["timeouts"] == 0
    assert shut.percentile_us(100) > 500_000, "the closed run met no freeze: test is void"
    assert shut.latency_us(99) < 100_000, shut.summary()


@pytest.mark.skipif(wrk2_path() is None,
                    reason="wrk2 is not on PATH (build it from github.com/giltene/wrk2)")
def test_wrk2_sees_the_stall_too(stalling_url):
    # wrk2 resets its histograms at 10 s + 5 ms per connection ("calibration"), so an 8 s
    # run keeps all of it; 8 s holds a whole freeze, as for lootlab's open loop above.
    res = run_wrk2(stalling_url, 100, 8.0, connections=8)
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
