"""The shipped variant benchmark runs end to end (tiny sizes; no speed is asserted here)."""

from __future__ import annotations

import click
import pandas as pd
import pytest

from lootlab.benchmarks import variants as bench

from _remote import ALL_VARIANTS, small_index


def test_variant_benchmark_runs_and_renders(tmp_path, monkeypatch):
    monkeypatch.setenv("LOOTLAB_DATA", str(tmp_path))
    path = small_index(tmp_path / "idx", n=5_000)
    df = bench.run(queries=24, warmup=4, rounds=2, trials=2, index=str(path), progress=False)
    assert list(df.index) == ALL_VARIANTS
    assert (df["trials"] == 2).all()
    assert ((df["p99_lo"] <= df["p99_hi"]) & (df["p50_lo"] <= df["p50_hi"])).all()
    assert (df["queries"] >= 2).all()
    assert (df["p99_us"] >= df["p50_us"]).all() and (df["p50_us"] > 0).all()
    # the same overlay queries reach every variant: the same records come back
    pooled = df[df.index.isin(["grpc-tls-pooled", "grpc-tls-packed", "grpc-plain", "mmap"])]
    assert pooled["records_per_query"].nunique() == 1
    assert df.at["grpc-tls-fresh", "resumed"] == 0
    assert df.at["grpc-tls-resumed", "resumed"] == 19
    assert df.at["grpc-plain", "tls_requests"] == 0
    text = bench.render(df)
    assert "expected shape:" in text and "mmap >= 100x faster" in text


def _frame(p50: dict[str, tuple[float, float, float]]) -> pd.DataFrame:
    rows = [{"variant": v, "p50_us": m, "p50_lo": lo, "p50_hi": hi, "p99_us": 2 * m,
             "p99_lo": 2 * lo, "p99_hi": 2 * hi, "resumed": None} for v, (m, lo, hi) in p50.items()]
    return pd.DataFrame(rows).set_index("variant")


def test_a_check_is_called_only_when_the_trials_ranges_do_not_overlap():
    checks = {claim: verdict for claim, verdict, _ in bench.shape_checks(_frame({
        "grpc-tls-fresh": (900.0, 850.0, 950.0), "grpc-tls-resumed": (600.0, 550.0, 870.0),
        "grpc-tls-pooled": (300.0, 290.0, 320.0), "grpc-plain": (400.0, 380.0, 420.0),
        "mmap": (2.0, 1.9, 2.1)}))}
    assert checks["fresh slower than resumed (p50)"] == "within noise"   # 850 < 870
    assert checks["resumed slower than pooled (p50)"] == "ok"
    assert checks["plain below pooled (p50)"] == "NO"                   # plain is slower
    assert checks["mmap >= 100x faster than pooled (p99)"] == "ok"     # 580 / 4.2 > 100
    with pytest.raises(click.BadParameter, match="trials"):
        bench.run(rounds=2, trials=3)


def test_server_benchmark_runs_both_servers_and_renders(tmp_path, monkeypatch):
    """The server's before/after benchmark (tiny sizes; no speed is asserted)."""
    from lootlab.benchmarks import server as server_bench

    monkeypatch.setenv("LOOTLAB_DATA", str(tmp_path))
    path = small_index(tmp_path / "idx", n=5_000)
    df = server_bench.run(rate=40, duration=0.5, trials=1, warmup=0.2,
                          steps=["grpc-tls-pooled"], index=str(path),
                          servers=("python", "fast"))
    assert list(df["server"]) == ["python", "fast"] and (df["n"] >= 15).all()
    assert (df["server_cores"] >= 0).all() and (df["split_server_compute_us"] > 0).all()
    assert (df["client_cores"] > 0).all()
    text = server_bench.render(df)
    assert "fast / python, per step" in text and "grpc-tls-pooled: p50" in text
    assert "server share" in text
    assert "mean latency split" in text
