"""Run directories and ``lootlab compare``: same code reads as noise, a slower variant as a
change, repeated trials and thin tails are handled, bad inputs give one-line errors."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
from _loadgen import QUERIES, ServiceClient, VirtualClock
from click.testing import CliRunner

from lootlab import loadgen
from lootlab.cli import main
from lootlab.experiments.comparison import caveats, compare_runs, load_run, save_run
from lootlab.experiments.rundir import schema
from lootlab.experiments.verdicts import CHANGED, TOO_FEW, WITHIN
from lootlab.report.comparison_page import comparison_html
from lootlab.targets import client_factory

JUDGED = (WITHIN, CHANGED)


def test_bench_out_writes_a_run_directory(tmp_path):
    a = tmp_path / "a"
    res = CliRunner().invoke(main, ["bench", "--variant", "mmap", "--rate", "500",
                                    "--duration", "1", "--warmup", "0.2", "--out", str(a)])
    assert res.exit_code == 0, res.output
    meta = json.loads((a / "manifest.json").read_text())
    assert meta["schema"] == schema() and meta["env"]["cpu_count"]
    assert meta["params"]["rate"] == 500 and "mmap" in meta["what"]
    assert meta["parts"] == ["bench"]
    trial = a / "bench" / "results" / "mmap" / "trial-0"
    assert (trial / "summary.json").exists() and (trial / "latency.hlog").exists()
    [back] = load_run(a).results["mmap"]
    assert back.requests > 0 and back.variant == "mmap"
    # a run against itself: every judged figure within noise, B/A exactly 1
    same = CliRunner().invoke(main, ["compare", str(a), str(a)])
    assert same.exit_code == 0, same.output
    for text in ("p50_us", "p99_us", "achieved_rate", "B/A", "within noise", "1.00x"):
        assert text in same.output
    assert " changed" not in same.output


def test_two_runs_of_the_same_code_are_within_noise(tmp_path):
    # three trials each, interleaved A B A B A B so that drift hits both runs alike
    trials: dict[str, list] = {"a": [], "b": []}
    for i in range(3):
        for side in ("a", "b"):
            sched = loadgen.constant(2000, 0.5, seed=i)   # 1,000 samples a trial
            trials[side].append(loadgen.run(client_factory("mmap"), sched, warmup=0.3))
    a = load_run(save_run(tmp_path / "a", {"mmap": trials["a"]}, what="same code, A"))
    b = load_run(save_run(tmp_path / "b", {"mmap": trials["b"]}, what="same code, B"))
    frame = compare_runs(a, b)
    assert set(frame["figure"]) == {"p50_us", "p99_us", "p99.9_us", "achieved_rate"}
    assert (frame["trials_a"] == 3).all() and (frame["trials_b"] == 3).all()
    # 1,000 samples a trial: a p99.9 rests on 1 of them, so it is not shown as a number
    p999 = frame.set_index("figure").loc["p99.9_us"]
    assert p999["verdict"] == TOO_FEW and math.isnan(p999["a"])
    judged = frame[frame["verdict"].isin(JUDGED)]
    assert len(judged) == 3
    for side in ("a", "b"):
        assert (judged[f"{side}_lo"] <= judged[side]).all()
        assert (judged[side] <= judged[f"{side}_hi"]).all()
    within = int((judged["verdict"] == WITHIN).sum())
    if within < 2:
        # a machine busy enough to change same-code figures must be named, never hidden
        # behind a bare "changed": every such run is INVALID or noisy, and said so
        notes = caveats(a, "A") + caveats(b, "B")
        assert notes, frame.to_string()


def _run_dir(path, extra_us: int):
    """1,200 requests (12 above the p99) of a client whose service times spread 50-150 us,
    ``extra_us`` slower on every call (a regression on purpose), in virtual time: what is
    compared is the comparison, not this machine's timer."""
    service = np.linspace(50, 150, 97).astype(np.int64) + extra_us
    res = _virtual(service, 1_200)
    res.variant = "mmap"
    return save_run(path, {"mmap": res}, what=f"<b>mmap + {extra_us / 1e3:g} ms</b>")


def test_a_variant_made_slower_is_changed(tmp_path):
    a = _run_dir(tmp_path / "fast", 0)
    b = _run_dir(tmp_path / "slow", 8_000)
    frame = compare_runs(a, b).set_index("figure")
    for figure in ("p50_us", "p99_us"):
        row = frame.loc[figure]
        assert row["verdict"] == CHANGED, frame.to_string()
        assert row["ratio"] > 1.5 and row["b_lo"] > row["a_hi"]
    assert frame.loc["p50_us", "b"] > 8_000      # the 8 ms is in every request
    assert frame.loc["achieved_rate", "verdict"] == WITHIN   # the schedule was kept

    html_out = tmp_path / "cmp" / "compare.html"
    res = CliRunner().invoke(main, ["compare", str(a), str(b), "--html", str(html_out)])
    assert res.exit_code == 0, res.output
    assert "changed" in res.output and html_out.exists()
    page = html_out.read_text()
    assert "<tr class=\"changed\">" in page and "p99_us" in page
    assert "&lt;b&gt;mmap + 8 ms&lt;/b&gt;" in page and "<b>mmap + 8 ms</b>" not in page


def _virtual(service_us, n: int):
    clock = VirtualClock()
    client = ServiceClient(clock, np.asarray(service_us, np.int64) * 1000)
    sched = loadgen.constant(100, n / 100)
    return loadgen.run(lambda: client, sched, warmup=0, workload=QUERIES, clock=clock,
                       label="toy")


def test_repeated_trials_use_the_median_and_their_spread(tmp_path):
    base = [_virtual([100], 2_000) for _ in range(3)]
    same = [_virtual([100], 2_000), _virtual([100], 2_000), _virtual([300], 2_000)]
    slow = [_virtual([500], 2_000) for _ in range(3)]
    a = save_run(tmp_path / "a", {"toy": base}, what="base")
    assert len(list((a / "bench" / "results" / "toy").glob("trial-*"))) == 3
    run_a = load_run(a)
    assert len(run_a.results["toy"]) == 3
    b = load_run(save_run(tmp_path / "b", {"toy": same}, what="one trial drifted"))
    c = load_run(save_run(tmp_path / "c", {"toy": slow, "extra": _virtual([100], 2_000)},
                          what="slower"))
    drift = compare_runs(run_a, b).set_index("figure")
    # the median of (100, 100, 300) is 100, and the interval spans the 300 trial
    assert abs(drift.loc["p50_us", "b"] - 100) < 1 and drift.loc["p50_us", "b_hi"] >= 299
    assert drift.loc["p50_us", "verdict"] == WITHIN and drift.loc["p50_us", "trials_b"] == 3
    changed = compare_runs(run_a, c)
    p50 = changed[(changed["variant"] == "toy") & (changed["figure"] == "p50_us")].iloc[0]
    assert p50["verdict"] == CHANGED and abs(p50["ratio"] - 5) < 0.05
    assert set(changed[changed["variant"] == "extra"]["verdict"]) == {"only in B"}


def test_thin_tails_say_too_few_samples_and_invalid_runs_are_named(tmp_path):
    thin = _virtual(np.arange(100, 300), 500)
    thin.health = dataclasses.replace(thin.health, valid=False, reasons=("made up reason",))
    a = save_run(tmp_path / "a", {"toy": thin}, what="500")
    b = save_run(tmp_path / "b", {"toy": _virtual(np.arange(100, 300), 5_000)}, what="5k")
    frame = compare_runs(a, b).set_index("figure")
    # 500 samples: p99 rests on 5 of them (too few), p50 on 250; 5,000: p99 on 50
    assert frame.loc["p99_us", "verdict"] == TOO_FEW and math.isnan(frame.loc["p99_us", "a"])
    assert not math.isnan(frame.loc["p99_us", "b"])
    assert frame.loc["p50_us", "verdict"] == WITHIN
    res = CliRunner().invoke(main, ["compare", str(a), str(b)])
    assert res.exit_code == 0 and "too few samples" in res.output
    notes = [line for line in res.output.splitlines() if line.startswith("note: A:")]
    assert len(notes) == 1 and "A: toy is INVALID" in notes[0]
    assert "B: toy is INVALID" not in res.output    # (B may be noisy on a busy machine)
    assert "made up reason" in notes[0] and "rerun on a quieter machine" in notes[0]
    page = comparison_html(compare_runs(a, b), load_run(a), load_run(b))
    assert "too few samples" in page and "A: toy is INVALID" in page


def test_bad_inputs_give_one_line_errors(tmp_path):
    runner = CliRunner()
    ok = save_run(tmp_path / "ok", {"toy": _virtual([100], 200)}, what="ok")
    (tmp_path / "empty").mkdir()
    (tmp_path / "file.txt").write_text("x")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "manifest.json").write_text(json.dumps({"schema": "something-else"}))
    cases = {tmp_path / "missing": "no such run directory",
             tmp_path / "empty": "not a lootlab run directory",
             tmp_path / "file.txt": "not a directory",
             bad: "a run of schema 'something-else'"}
    for path, text in cases.items():
        for args in ([str(path), str(ok)], [str(ok), str(path)]):
            res = runner.invoke(main, ["compare", *args])
            assert res.exit_code == 1, (path, res.output)
            assert text in res.output and "Traceback" not in res.output
            assert len(res.output.strip().splitlines()) == 1, res.output
