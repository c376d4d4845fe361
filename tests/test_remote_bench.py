"""The shipped variant benchmark runs end to end (tiny sizes; no speed is asserted here)."""

from __future__ import annotations

from lootlab.benchmarks import variants as bench

from _remote import ALL_VARIANTS, small_index


def test_variant_benchmark_runs_and_renders(tmp_path, monkeypatch):
    monkeypatch.setenv("LOOTLAB_DATA", str(tmp_path))
    path = small_index(tmp_path / "idx", n=5_000)
    df = bench.run(queries=24, warmup=4, rounds=2, index=str(path), progress=False)
    assert list(df.index) == ALL_VARIANTS
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
