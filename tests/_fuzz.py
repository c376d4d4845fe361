"""Index-file fuzzing for tests/integration/test_fuzz_index.py: seeded cases, and the child
that runs them.

A case is a JSON-able dict: which small base index to corrupt, how (``kind`` and its
parameters), whether to open with ``verify=True``, and whether the numpy path is used.
``python tests/_fuzz.py CASES.json WORKDIR`` runs a batch in a child process (a hang or a
signal must not take the test runner with it) and prints one JSON line per finished case,
so when the child dies or times out, the first case without a line is the culprit.

Rerun one case by hand: ``LOOTLAB_FUZZ_SEED=<seed> LOOTLAB_FUZZ_ONLY=<id> pytest
tests/integration/test_fuzz_index.py`` (the failure message prints both).
"""

from __future__ import annotations

import json
import os
import random
import struct
import sys
import traceback
import zlib
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from lootlab import fileformat as ff  # noqa: E402

U64 = (1 << 64) - 1
# header fields: name -> (offset, struct format, whether queries use it)
FIELDS = {
    "version": (8, "<H", True), "header_size": (10, "<H", True), "order": (12, "<I", True),
    "record_size": (16, "<H", True), "cell_shift": (18, "<B", True), "flags": (19, "<B", False),
    "record_count": (24, "<Q", True), "generation": (32, "<Q", False),
    "build_time": (40, "<Q", False), "body_crc": (48, "<I", True), "max_probe": (52, "<I", True),
    "bbox_min_x": (56, "<i", True), "bbox_min_y": (60, "<i", True), "bbox_min_z": (64, "<i", True),
    "bbox_max_x": (68, "<i", True), "bbox_max_y": (72, "<i", True), "bbox_max_z": (76, "<i", True),
    "records_offset": (80, "<Q", True), "cells_offset": (88, "<Q", True),
    "cell_count": (96, "<Q", True), "hash_offset": (104, "<Q", True),
    "hash_slots": (112, "<Q", True), "file_size": (120, "<Q", True),
    "source_len": (128, "<H", False), "lineage": (256, "<Q", False),
}
_LIMITS = {"<B": (0, 255), "<H": (0, 65535), "<I": (0, 2**32 - 1), "<Q": (0, U64),
           "<i": (-2**31, 2**31 - 1)}
B = 1 << 25


def extremes(fmt: str) -> list[int]:
    lo, hi = _LIMITS[fmt]
    vals = {lo, hi, 0, 1, hi - 1, lo + 1, 2, 7, 8, 26, 27, B - 1, B, -B, -B - 1, 2**31 - 1,
            2**32 - 1, 2**32, 2**63 - 1, 2**63, 2047, 2048, -2048, -2049}
    return sorted(v for v in vals if lo <= v <= hi)


def sections(size: int, header: ff.Header) -> dict[str, tuple[int, int]]:
    lay = header.layout
    parts = {"header": (0, ff.HEADER_SIZE),
             "records": (lay.records_offset, lay.records_offset + 24 * header.record_count),
             "cells": (lay.cells_offset, lay.cells_offset + 16 * header.cell_count + 8),
             "hash": (lay.hash_offset, lay.file_size)}
    return {k: v for k, v in parts.items() if v[1] > v[0]}


def make_cases(seed: int, count: int, bases: list[str]) -> list[dict]:
    """``count`` reproducible cases over ``bases`` (paths of valid index files)."""
    rng = random.Random(seed)
    info = []
    for p in bases:
        data = Path(p).read_bytes()
        info.append((len(data), ff.parse_header(data, p, len(data))))
    kinds = ["flip", "flip", "flip", "scramble", "truncate", "extend", "field", "field"]
    cases = []
    for i in range(count):
        b = rng.randrange(len(bases))
        size, header = info[b]
        case = {"id": i, "seed": seed, "base": bases[b], "verify": rng.random() < 0.3,
                "numpy": i % 2 == 1, "kind": rng.choice(kinds)}
        secs = sections(size, header)
        if case["kind"] in ("flip", "scramble"):
            name = rng.choice(sorted(secs))
            a, e = secs[name]
            case["section"] = name
            if case["kind"] == "flip":
                case["at"], case["bit"] = rng.randrange(a, e), rng.randrange(8)
            else:
                start = rng.randrange(a, e)
                case["at"], case["len"] = start, rng.randint(1, min(64, e - start))
                case["bytes_seed"] = rng.randrange(2**32)
        elif case["kind"] == "truncate":
            case["to"] = rng.choice([0, 1, 15, ff.HEADER_SIZE - 1, ff.HEADER_SIZE,
                                     rng.randrange(size), size - 1])
        elif case["kind"] == "extend":
            case["by"] = rng.choice([1, 4, 64, rng.randint(1, 4096)])
        else:
            name = rng.choice(sorted(FIELDS))
            off, fmt, _ = FIELDS[name]
            case["field"], case["value"] = name, rng.choice(extremes(fmt))
            case["also_field"] = None
            if rng.random() < 0.3:       # two fields at once (e.g. a count and the file size)
                other = rng.choice(sorted(FIELDS))
                case["also_field"] = [other, rng.choice(extremes(FIELDS[other][1]))]
        cases.append(case)
    return cases


def describe(case: dict) -> str:
    keys = [k for k in case if k not in ("id", "seed", "base")]
    detail = ", ".join(f"{k}={case[k]!r}" for k in keys)
    return f"seed={case['seed']} case={case['id']} base={Path(case['base']).name}: {detail}"


def mutate(data: bytes, case: dict) -> bytes:
    d = bytearray(data)
    kind = case["kind"]
    if kind == "flip":
        d[case["at"]] ^= 1 << case["bit"]
    elif kind == "scramble":
        r = random.Random(case["bytes_seed"])
        for j in range(case["at"], case["at"] + case["len"]):
            d[j] = r.randrange(256)
    elif kind == "truncate":
        del d[case["to"]:]
    elif kind == "extend":
        d += random.Random(case["by"]).randbytes(case["by"])
    else:
        for name, value in [(case["field"], case["value"])] + (
                [tuple(case["also_field"])] if case["also_field"] else []):
            off, fmt, _ = FIELDS[name]
            struct.pack_into(fmt, d, off, value)
        struct.pack_into("<I", d, 20, 0)             # reseal: only the field is wrong
        struct.pack_into("<I", d, 20, zlib.crc32(bytes(d[:ff.HEADER_SIZE])))
    return bytes(d)


def must_fail(case: dict) -> str | None:
    """Why this case must end in a lootlab error at open (None: other outcomes allowed)."""
    if case["kind"] in ("truncate", "extend"):
        return "a file of the wrong size"
    if case["kind"] in ("flip", "scramble") and case["section"] == "header":
        return "a header that fails its checksum"
    if case["kind"] in ("flip", "scramble") and case["verify"]:
        return "body corruption opened with verify=True"
    return None


def changed(data: bytes, case: dict) -> bool:
    return mutate(data, case) != data


# -- the child --------------------------------------------------------------------------

def _answers(idx, probes: list[tuple[int, int, int]]) -> dict[str, object]:
    """Every query on one index, each as plain data ("error" for a lootlab error)."""
    import numpy as np

    import lootlab
    from lootlab.records import FIELDS as COLS

    def rows(recs) -> list:
        return [tuple(int(r[f]) for f in COLS) for r in recs]

    ops = {
        "len": lambda: len(idx),
        "get": lambda: [tuple(r) if r else None for r in (idx.get(*p) for p in probes)],
        "get_many": lambda: [(bool(f), tuple(int(r[c]) for c in COLS))
                             for f, r in zip(*idx.get_many(np.array(probes)))],
        "near_small": lambda: sorted(rows(idx.near(*probes[0], 8))),
        "near_all": lambda: sorted(rows(idx.near(*probes[1], 10**6))),
        "box_all": lambda: sorted(rows(idx.box((-B, -2048, -B), (B - 1, 2047, B - 1)))),
        "box_small": lambda: sorted(rows(idx.box(tuple(v - 20 for v in probes[2]),
                                                 tuple(v + 20 for v in probes[2])))),
        "knn": lambda: rows(idx.knn(*probes[3], 5)),
        "knn_all": lambda: rows(idx.knn(*probes[0], 10**9)),
        "verify": lambda: idx.verify(),
    }
    out: dict[str, object] = {}
    for name, op in ops.items():
        try:
            out[name] = op()
        except lootlab.LootlabError as exc:
            out[name] = ["error", type(exc).__name__, str(exc)[:200]]
    return out


def _sizes(ans: dict[str, object]) -> int:
    return max((len(v) for k, v in ans.items()
                if k not in ("len", "get", "get_many", "verify") and v and v[0] != "error"),
               default=0)


def run_case(case: dict, work: Path, originals: dict) -> dict:
    import lootlab
    data = Path(case["base"]).read_bytes()
    if case["base"] not in originals:
        with lootlab.open_index(case["base"], refresh_interval=None) as idx:
            recs = idx.sample(4, seed=1)
            probes = [tuple(int(r[a]) for a in "xyz") for r in recs] if len(recs) else []
            probes = (probes + [(0, 64, 0), (B - 1, 2047, -B), (-5, -5, 5), (7, 0, -7)])[:4]
            probes += [(123, 45, -678), (-B, -2048, -B)]
            originals[case["base"]] = (probes, _answers(idx, probes))
    probes, original = originals[case["base"]]
    mutated = mutate(data, case)
    path = work / "case.idx"
    tmp = work / ".case.tmp"
    tmp.write_bytes(mutated)
    os.replace(tmp, path)          # a new file each case, never rewritten while mapped
    result = {"id": case["id"], "capacity": max(0, (len(mutated) - ff.HEADER_SIZE) // 24)}
    try:
        idx = lootlab.open_index(path, verify=case["verify"], refresh_interval=None)
    except lootlab.LootlabError as exc:
        result["open"] = ["error", type(exc).__name__, str(exc)[:200]]
        return result
    result["open"] = "ok"
    with idx:
        ans = _answers(idx, probes)
    result["len"] = ans["len"] if isinstance(ans["len"], int) else -1
    result["largest"] = _sizes(ans)
    result["same"] = sorted(k for k in ans if ans[k] == original[k])
    result["differ"] = sorted(k for k in ans if ans[k] != original[k])
    result["errors"] = {k: v for k, v in ans.items() if isinstance(v, list) and v[:1] == ["error"]}
    return result


def main(cases_path: str, work: str) -> None:
    cases = json.loads(Path(cases_path).read_text())
    if cases and cases[0]["numpy"]:
        from lootlab import index
        index._kernels = None
    originals: dict = {}
    for case in cases:
        try:
            res = run_case(case, Path(work), originals)
        except Exception as exc:  # noqa: BLE001 - exactly what the fuzz test looks for
            res = {"id": case["id"], "crash": f"{type(exc).__name__}: {exc}",
                   "traceback": traceback.format_exc()[-2000:]}
        print(json.dumps(res), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
