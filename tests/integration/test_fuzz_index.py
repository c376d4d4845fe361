"""Fuzzing the index file: corrupt copies of small indexes, opened and queried in child
processes with a timeout, on the C and the numpy paths.

Allowed outcomes: a lootlab error, the original answers, or (body corruption without
``verify``, or a crafted header with its CRC recomputed) different answers; never a
signal, a hang, a non-lootlab exception, or an answer larger than the file can hold.

``LOOTLAB_FUZZ_CASES`` (default 320) sets the number of cases, ``LOOTLAB_FUZZ_SEED``
(default 10) the seed, ``LOOTLAB_FUZZ_ONLY`` (comma-separated ids) reruns named cases.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import lootlab

import _fuzz
from make_golden import golden_frame

CASES = int(os.environ.get("LOOTLAB_FUZZ_CASES", "320"))
SEED = int(os.environ.get("LOOTLAB_FUZZ_SEED", "10"))
ONLY = {int(v) for v in os.environ.get("LOOTLAB_FUZZ_ONLY", "").split(",") if v.strip()}
BATCH = 40
TIMEOUT = float(os.environ.get("LOOTLAB_FUZZ_TIMEOUT", "240"))   # per batch of 40 (normally ~2 s)


@pytest.fixture(scope="module")
def bases(tmp_path_factory) -> list[str]:
    d = tmp_path_factory.mktemp("fuzz-bases")
    made = []
    for name, table, shift in [
        ("golden", golden_frame(), 5),
        ("world-s0", lootlab.generate_world(300, seed=1), 0),
        ("world-s3", lootlab.generate_world(500, seed=2), 3),
        ("world-s26", lootlab.generate_world(120, seed=3), 26),
        ("empty", pd.DataFrame(columns=lootlab.FIELDS, dtype="int64"), 5),
    ]:
        path = d / f"{name}.idx"
        lootlab.build_index(table, path, cell_shift=shift)
        made.append(str(path))
    return made


def _run_batch(batch: list[dict], work: Path) -> tuple[dict[int, dict], str | None]:
    """Results by case id, and what went wrong with the child (None: it finished)."""
    work.mkdir(parents=True, exist_ok=True)
    spec = work / "cases.json"
    spec.write_text(json.dumps(batch))
    env = dict(os.environ)
    env.pop("LOOTLAB_NO_KERNELS", None)
    if batch[0]["numpy"]:
        env["LOOTLAB_NO_KERNELS"] = "1"
    try:
        proc = subprocess.run([sys.executable, str(Path(_fuzz.__file__)), str(spec), str(work)],
                              capture_output=True, text=True, timeout=TIMEOUT, env=env)
        out, problem = proc.stdout, None
        if proc.returncode != 0:
            problem = f"child exited with {proc.returncode}: {proc.stderr[-1500:]}"
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        problem = f"child hung (no answer within {TIMEOUT} s)"
    results = {}
    for line in out.splitlines():
        if line.startswith("{"):
            res = json.loads(line)
            results[res["id"]] = res
    return results, problem


def _check(case: dict, res: dict, data: bytes) -> str | None:
    """What is wrong with one case's outcome (None: allowed)."""
    if "crash" in res:
        return f"non-lootlab exception {res['crash']}\n{res['traceback']}"
    if res["open"] != "ok":
        return None                                          # a lootlab error: allowed
    if res["len"] > res["capacity"] or res["largest"] > max(res["len"], 0):
        return (f"answer of {res['largest']} rows / len {res['len']} from a file holding at "
                f"most {res['capacity']} records")
    if not _fuzz.changed(data, case):
        return None if not res["differ"] else f"unchanged file, different answers {res['differ']}"
    why = _fuzz.must_fail(case)
    if why:
        return f"{why} opened without an error"
    if case["kind"] in ("flip", "scramble") and "verify" not in res["errors"]:
        return "body corruption passed verify()"
    if case["kind"] == "field":
        fields = [case["field"]] + ([case["also_field"][0]] if case["also_field"] else [])
        if not any(_fuzz.FIELDS[f][2] for f in fields):
            allowed = {"verify"} if case["field"] == "body_crc" else set()
            if set(res["differ"]) - allowed:
                return f"a field no query uses changed the answers: {res['differ']}"
    return None


def test_corrupt_index_files_never_crash_hang_or_overanswer(bases, tmp_path):
    cases = _fuzz.make_cases(SEED, CASES, bases)
    if ONLY:
        cases = [c for c in cases if c["id"] in ONLY]
    data = {b: Path(b).read_bytes() for b in bases}
    failures: list[str] = []
    outcomes = {"error": 0, "same": 0, "different": 0}
    for numpy_path in (False, True):
        group = [c for c in cases if c["numpy"] == numpy_path]
        for start in range(0, len(group), BATCH):
            batch = group[start:start + BATCH]
            results, problem = _run_batch(batch, tmp_path / f"b{int(numpy_path)}-{start}")
            if problem:
                # the first case without a result is the one the child died or hung on;
                # rerun it alone to name it for sure
                culprit = next(c for c in batch if c["id"] not in results)
                _, alone = _run_batch([culprit], tmp_path / f"alone-{culprit['id']}")
                failures.append(f"{_fuzz.describe(culprit)}: {alone or problem}")
                rest = [c for c in batch if c["id"] not in results and c is not culprit]
                if rest:
                    more, _ = _run_batch(rest, tmp_path / f"rest-{culprit['id']}")
                    results.update(more)
            for case in batch:
                res = results.get(case["id"])
                if res is None:
                    continue
                wrong = _check(case, res, data[case["base"]])
                if wrong:
                    failures.append(f"{_fuzz.describe(case)}: {wrong}")
                elif res["open"] != "ok" or res["errors"]:
                    outcomes["error"] += 1
                else:
                    outcomes["same" if not res["differ"] else "different"] += 1
    assert not failures, (f"{len(failures)} of {len(cases)} cases failed:\n"
                          + "\n".join(failures[:20]))
    # the cases really exercised both kinds of outcome (not all refused at the door)
    if not ONLY and CASES >= 100:
        assert outcomes["error"] > CASES // 4 and outcomes["same"] + outcomes["different"] > 10, \
            outcomes
