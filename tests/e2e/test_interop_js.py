"""A standard grpc-js client decodes every answer of the loot service.

``tests/e2e/interop_js/client.js`` knows the service only through the public loot.proto
(@grpc/proto-loader, pinned in package-lock.json), so these tests hold whatever encoder the
server uses: every record it decodes, repeated and packed, is compared with what
``lootlab.open_index`` returns for the same query (the oracle), over TLS and plaintext, and
so are the error statuses a client sees.  ``make test`` installs the node modules; without
node or them the tests skip, except under CI=true, where they fail so CI never loses the
check silently.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from _remote import free_port, other_ca, small_index
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lootlab
from lootlab.remote.loopback import LoopbackServer

JS_DIR = Path(__file__).parent / "interop_js"
CLIENT = JS_DIR / "client.js"
PINNED = ("@grpc/grpc-js", "@grpc/proto-loader")
XMIN, XMAX, YMIN, YMAX = -(1 << 25), (1 << 25) - 1, -(1 << 11), (1 << 11) - 1
WORLD_RECORDS = 100_000          # above the server's default 95,000-record limit
DEFAULT_LIMIT = 95_000
Query = dict[str, Any]


# -- is the client there? -------------------------------------------------------------------
def js_problem(js_dir: Path = JS_DIR, node: str | None = None) -> str | None:
    """Why the grpc-js client cannot run here, or None when it can."""
    node = node or shutil.which("node")
    if node is None:
        return "node is not on PATH: the grpc-js interop check needs Node.js 18+ and npm"
    modules = js_dir / "node_modules"
    if not modules.is_dir():
        return (f"{modules} is missing: run `make test`, or `npm ci` in {js_dir}")
    pins = json.loads((js_dir / "package.json").read_text())["dependencies"]
    for name in PINNED:
        installed = modules / name / "package.json"
        have = json.loads(installed.read_text())["version"] if installed.is_file() else None
        if have != pins[name]:
            return (f"{name} {have or 'is not installed'} in {modules}, package.json pins "
                    f"{pins[name]}: run `npm ci` in {js_dir}")
    return None


def gate(problem: str | None, env: dict[str, str]) -> None:
    """Skip for a missing client on a developer's machine; fail under CI=true."""
    if problem is None:
        return
    if env.get("CI") == "true":
        pytest.fail(f"{problem} (CI=true: the grpc-js interop check must run, not skip)")
    pytest.skip(problem)


@pytest.fixture(scope="module")
def js() -> None:
    gate(js_problem(), dict(os.environ))


def run_js_raw(target: str, ca: str | None, queries: list[Query],
               timeout: float = 60.0) -> subprocess.CompletedProcess:
    mode = ["--ca", ca] if ca else ["--plaintext"]
    try:
        return subprocess.run(["node", str(CLIENT), "--target", target, *mode],
                              input=json.dumps(queries), capture_output=True, text=True,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the grpc-js client did not finish within {timeout:.0f} s; its stderr:\n"
                    f"{exc.stderr or ''}")


def run_js(target: str, ca: str | None, queries: list[Query]) -> list[dict[str, Any]]:
    """The client's decoded answers, one per query; a failed run fails with its stderr."""
    proc = run_js_raw(target, ca, queries)
    if proc.returncode != 0:
        pytest.fail(f"the grpc-js client exited with code {proc.returncode}; its stderr:\n"
                    f"{proc.stderr}")
    out = json.loads(proc.stdout)
    assert out["fields"] == lootlab.FIELDS
    assert len(out["answers"]) == len(queries)
    return out["answers"]


def ask(srv: LoopbackServer, queries: list[Query]) -> list[dict[str, Any]]:
    return run_js(srv.target, srv.ca if srv.tls else None, queries)


# -- queries and their oracle ---------------------------------------------------------------
def pt(x: int, y: int, z: int) -> dict[str, int]:
    return {"x": int(x), "y": int(y), "z": int(z)}


def both(method: str, **request: Any) -> list[Query]:
    """The query in its repeated and its packed form."""
    return [{"method": method, "request": dict(request, packed=p)} for p in (False, True)]


def oracle(idx: lootlab.LootIndex, q: Query) -> list[list[int]]:
    """What the local index answers for query ``q``, as rows of FIELDS."""
    r = q["request"]

    def xyz(p: dict[str, int]) -> tuple[int, int, int]:
        return p["x"], p["y"], p["z"]

    if q["method"] == "Get":
        rec = idx.get(*xyz(r["at"]))
        return [] if rec is None else [list(rec)]
    if q["method"] == "Near":
        res = idx.near(*xyz(r["at"]), r["radius"])
    elif q["method"] == "Box":
        res = idx.box(xyz(r["lo"]), xyz(r["hi"]))
    else:
        res = idx.knn(*xyz(r["at"]), r["k"])
    return [list(row) for row in res.tolist()]


def check_answers(idx: lootlab.LootIndex, queries: list[Query], answers: list[dict]) -> None:
    """Every answer carries exactly the oracle's records, in the form asked for."""
    for q, a in zip(queries, answers):
        assert a["ok"], f"{q}: {a}"
        want = oracle(idx, q)
        packed = q["request"]["packed"]
        got, other = (a["packed"], a["records"]) if packed else (a["records"], a["packed"])
        assert other == [], f"{q}: the form not asked for is filled"
        assert a["generation"] == str(idx.generation), q
        assert len(got) == len(want), f"{q}: {len(got)} records decoded, oracle has {len(want)}"
        bad = next((i for i, (g, w) in enumerate(zip(got, want)) if g != w), None)
        assert bad is None, f"{q}: record {bad} decoded as {got[bad]}, oracle {want[bad]}"
        assert a["packed_bytes"] == (24 * len(want) if packed else 0), q


def world_queries(idx: lootlab.LootIndex) -> list[Query]:
    """Empty, single, small, large and extreme-coordinate queries, each both ways."""
    s = idx.sample(3, seed=17)
    p, p2, p3 = (pt(r["x"], r["y"], r["z"]) for r in s)
    corner_lo, corner_hi = pt(XMIN, YMIN, XMIN), pt(XMAX, YMAX, XMAX)
    absent = dict(p, y=YMAX)
    assert idx.get(absent["x"], absent["y"], absent["z"]) is None
    xs = np.sort(np.asarray(idx.box(tuple(corner_lo.values()), tuple(corner_hi.values()))["x"]))
    cut = int(xs[90_000 - 1])            # a box of x <= cut: about 90,000 records
    large = both("Box", lo=corner_lo, hi=pt(cut, YMAX, XMAX))
    assert 50_000 <= len(oracle(idx, large[0])) <= DEFAULT_LIMIT
    return [
        *both("Get", at=p), *both("Get", at=absent), *both("Get", at=corner_lo),
        *both("Get", at=corner_hi),
        *both("Near", at=p, radius=0.0), *both("Near", at=p2, radius=64.0),
        *both("Near", at=p3, radius=10.5), *both("Near", at=p, radius=4096.0),
        *both("Near", at=corner_hi, radius=4096.0), *both("Near", at=corner_lo, radius=0.0),
        *both("Box", lo=pt(p["x"] - 50, p["y"] - 8, p["z"] - 50),
              hi=pt(p["x"] + 50, p["y"] + 8, p["z"] + 50)),
        *both("Box", lo=absent, hi=absent), *both("Box", lo=corner_lo, hi=corner_lo),
        *both("Box", lo=pt(XMAX - 10, YMAX - 10, XMAX - 10), hi=corner_hi), *large,
        *both("Knn", at=p, k=1), *both("Knn", at=p2, k=100), *both("Knn", at=p3, k=0),
        *both("Knn", at=corner_hi, k=10_000), *both("Knn", at=corner_lo, k=3),
    ]


def extreme_table() -> pd.DataFrame:
    """Records at every corner of the packable range, with fields at their widest and
    zero (the origin's all-zero record is an empty message on the wire)."""
    rows = []
    widest = (2**32 - 1, 2**32 - 1, 2**16 - 1, 255, 255, 2**32 - 1)
    middle = (2**31, 2**31 - 1, 2**15, 128, 127, 2**31)
    for i, (x, y, z) in enumerate((x, y, z) for x in (XMIN, XMAX, -1, 1)
                                  for y in (YMIN, YMAX, -1) for z in (XMIN, XMAX, 0)):
        rows.append((x, y, z) + (widest, middle, (1, 0, 0, 0, 0, 0))[i % 3])
    rows.append((0, 0, 0, 0, 0, 0, 0, 0, 0))
    frame = pd.DataFrame(rows, columns=lootlab.FIELDS)
    return frame.astype({name: lootlab.RESULT_DTYPE[name] for name in lootlab.FIELDS})


# -- servers --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    """The remote tests' index, with more records than one answer may hold, so the default
    limit's OUT_OF_RANGE and a ~90,000-record answer (2.4 MB repeated, under grpc-js's
    default 4 MiB receive limit) both come from a server at its default settings."""
    return small_index(tmp_path_factory.mktemp("interop-world"), n=WORLD_RECORDS)


@pytest.fixture(scope="module")
def idx(world):
    with lootlab.open_index(world) as index:
        yield index


@pytest.fixture(scope="module")
def tls_server(js, world):
    with LoopbackServer(world) as srv:
        yield srv


@pytest.fixture(scope="module")
def plain_server(js, world):
    with LoopbackServer(world, tls=False) as srv:
        yield srv


@pytest.fixture(params=["tls_server", "plain_server"], ids=["tls", "plaintext"])
def server(request) -> LoopbackServer:
    return request.getfixturevalue(request.param)


@pytest.fixture(scope="module")
def extremes(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("interop-extremes") / "extremes.idx"
    lootlab.build_index(extreme_table(), path)
    return path


# -- the answers ----------------------------------------------------------------------------
def test_every_answer_decodes_to_the_oracles_records(server, idx):
    queries = world_queries(idx) + [{"method": "ServerStats"}]
    answers = ask(server, queries)
    check_answers(idx, queries[:-1], answers[:-1])
    stats = answers[-1]
    assert stats["ok"], stats
    stats = {k: int(v) if isinstance(v, str) else v for k, v in stats["stats"].items()}
    assert set(stats) == set(server.stats())     # every field of Stats, as Python sees it
    assert stats["records"] == len(idx) and stats["generation"] == idx.generation
    assert stats["requests"] > 0
    assert stats["tls_requests"] == (stats["requests"] if server.tls else 0)


def test_extreme_records_decode_exactly(js, extremes):
    table = extreme_table()
    lo, hi = pt(XMIN, YMIN, XMIN), pt(XMAX, YMAX, XMAX)
    queries = [*both("Box", lo=lo, hi=hi), *both("Knn", at=pt(0, 0, 0), k=10_000),
               *both("Near", at=pt(0, 0, 0), radius=2.0)]
    for r in table.itertuples(index=False):
        queries += both("Get", at=pt(r.x, r.y, r.z))
    with LoopbackServer(extremes) as srv, lootlab.open_index(extremes) as ex:
        answers = ask(srv, queries)
        check_answers(ex, queries, answers)
    everything = sorted(map(list, table.itertuples(index=False)))
    assert sorted(answers[0]["records"]) == sorted(answers[1]["packed"]) == everything


def test_query_errors_arrive_with_their_status_and_message(server, idx):
    p = pt(0, 0, 0)
    cases = [
        (both("Near", at=p, radius=-1.0), "INVALID_ARGUMENT",
         r"^radius must be a finite number in \[0, 4096\], got -1\.0$"),
        (both("Near", at=p, radius=4097.0), "INVALID_ARGUMENT", r"radius must be"),
        (both("Knn", at=p, k=10_001), "INVALID_ARGUMENT", r"k must be in \[0, 10000\]"),
        (both("Box", lo=pt(5, 0, 0), hi=pt(4, 0, 0)), "INVALID_ARGUMENT", r"lo .* <= hi"),
        (both("Get", at=pt(2**30, 0, 0)), "INVALID_ARGUMENT", r"packable range"),
        (both("Box", lo=pt(XMIN, YMIN, XMIN), hi=pt(XMAX, YMAX, XMAX)), "OUT_OF_RANGE",
         rf"query matched {WORLD_RECORDS:,} records; .*at most {DEFAULT_LIMIT:,}"),
    ]
    queries = [q for qs, _, _ in cases for q in qs]
    answers = iter(ask(server, queries))
    for qs, code, pattern in cases:
        for q in qs:
            a = next(answers)
            assert not a["ok"] and a["code"] == code, f"{q}: {a}"
            assert re.search(pattern, a["details"]), f"{q}: {a['details']!r}"


@st.composite
def random_query(draw, centers: list[dict[str, int]]) -> list[Query]:
    c = draw(st.sampled_from(centers))
    c = {k: v + draw(st.integers(-40, 40)) for k, v in c.items()}
    c["y"] = min(max(c["y"], YMIN), YMAX)
    method = draw(st.sampled_from(["Get", "Near", "Box", "Knn"]))
    if method == "Get":
        return both("Get", at=c)
    if method == "Near":
        return both("Near", at=c, radius=draw(st.floats(0, 200)))
    if method == "Knn":
        return both("Knn", at=c, k=draw(st.integers(0, 300)))
    size = [draw(st.integers(0, 120)) for _ in range(3)]
    return both("Box", lo=c, hi={k: v + d for (k, v), d in zip(c.items(), size)})


@settings(max_examples=6, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_queries_match_the_oracle(data, idx, plain_server):
    centers = [pt(r["x"], r["y"], r["z"]) for r in idx.sample(64, seed=5)]
    batch = data.draw(st.lists(random_query(centers), min_size=1, max_size=25))
    queries = [q for pair in batch for q in pair]
    check_answers(idx, queries, ask(plain_server, queries))


# -- when the client cannot get through -----------------------------------------------------
def test_connection_refused_exits_nonzero_with_a_readable_message(js):
    target = f"127.0.0.1:{free_port()}"
    proc = run_js_raw(target, None, both("Get", at=pt(0, 0, 0)))
    assert proc.returncode == 3, proc.stderr
    assert f"cannot reach {target} over plaintext" in proc.stderr
    assert "ECONNREFUSED" in proc.stderr


def test_untrusted_server_certificate_exits_nonzero_naming_tls(tls_server, tmp_path):
    wrong = other_ca(tmp_path)
    proc = run_js_raw(tls_server.target, str(wrong), both("Get", at=pt(0, 0, 0)))
    assert proc.returncode == 3, proc.stderr
    assert f"over TLS (CA {wrong})" in proc.stderr
    assert "certificate" in proc.stderr


def test_a_failed_client_run_shows_its_stderr(js):
    with pytest.raises(pytest.fail.Exception, match="(?s)exited with code 3.*cannot reach"):
        run_js(f"127.0.0.1:{free_port()}", None, both("Get", at=pt(0, 0, 0)))


# -- the skip/fail gate ---------------------------------------------------------------------
def test_missing_node_modules_skip_for_a_developer_and_fail_under_ci(tmp_path):
    (tmp_path / "package.json").write_text((JS_DIR / "package.json").read_text())
    problem = js_problem(tmp_path, node="/usr/bin/node")
    assert problem is not None and "node_modules is missing" in problem
    with pytest.raises(pytest.skip.Exception, match="node_modules is missing"):
        gate(problem, {})
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        gate(problem, {"CI": "true"})
    gate(None, {"CI": "true"})            # nothing missing: neither


def test_a_stale_install_is_named(tmp_path):
    (tmp_path / "package.json").write_text((JS_DIR / "package.json").read_text())
    pkg = tmp_path / "node_modules" / "@grpc" / "grpc-js"
    pkg.mkdir(parents=True)
    (pkg / "package.json").write_text('{"version": "0.0.1"}')
    problem = js_problem(tmp_path, node="/usr/bin/node")
    assert problem is not None and "@grpc/grpc-js 0.0.1" in problem and "npm ci" in problem
