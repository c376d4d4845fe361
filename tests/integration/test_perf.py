"""perf beside py-spy: the perf-script parser, the kernel buckets, perf profiles and counters of
processes with a known answer, and the workload's measured loop fenced for perf."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lootlab
import lootlab.index as index_mod
import lootlab.snapshot as snapshot_mod
from lootlab.cli import main as cli
from lootlab.profiling import (
    KERNEL_BUCKETS,
    bucket_shares,
    copy_share,
    counters,
    kernel_total,
    load_flame,
    perf_flamegraph,
    perf_unavailable,
    stack_bucket,
)
from lootlab.profiling._run import ProfilerError
from lootlab.profiling.categorize import COPY_PARTS, copy_parts
from lootlab.profiling.counters import parse_stat, process_counts
from lootlab.profiling.perf import DEFAULT_HZ, copy_share_measured, gated_argv, record
from lootlab.profiling.perfscript import PY_FRAME, kernel_share, parse_script
from lootlab.records import X_MAX, X_MIN, Y_MAX, Y_MIN

FIXTURES = Path(__file__).parents[1] / "fixtures"
WHY = perf_unavailable()
# where perf cannot run the recording tests skip with the reason, except in CI on a machine
# whose system-deps installed perf: there a missing perf is a failure, not a skip
needs_perf = pytest.mark.skipif(WHY is not None and os.environ.get("CI") != "true",
                                reason=f"perf unavailable: {WHY}")
KERNELS = "lootlab/_kernels.cpython-311-x86_64-linux-gnu.so"


# -- the perf script parser ---------------------------------------------------------------

def test_perf_script_fixture_folds_to_the_expected_stacks():
    stacks = parse_script((FIXTURES / "perf_script_small.txt").read_text())
    kernel_loop = (PY_FRAME, f"query_cells ({KERNELS})", f"select_rows ({KERNELS})")
    # the complete stack and the one perf's unwinder truncated fold to the same frames:
    # the start-up chain is dropped and the interpreter's call machinery is one frame
    assert stacks[kernel_loop] == 2
    assert stacks[(PY_FRAME, "_PyEval_EvalFrameDefault (libpython3.11.so.1.0)")] == 1
    grpc = next(s for s in stacks if s[0] == "clone3 (libc.so.6)")
    assert grpc[2] == "grpc_core::ExecCtx::Flush(absl::Status, int) (libgrpc.so.29)"
    assert grpc[3] == "0x55d555 (grpc/_cython/cygrpc.cpython-311-x86_64-linux-gnu.so)"
    assert grpc[-2:] == ("tcp_sendmsg [k]", "tcp_sendmsg_locked [k]")
    fault = (PY_FRAME, "_PyObject_Malloc (libpython3.11.so.1.0)", "asm_exc_page_fault [k]",
             "exc_page_fault [k]")
    assert stacks[fault] == 1
    assert stacks[("[unknown]",)] == 1            # a sample perf could not unwind at all
    assert sum(stacks.values()) == 6             # the warning line is not a sample
    assert kernel_share(stacks) == pytest.approx(2 / 6)
    raw = parse_script((FIXTURES / "perf_script_small.txt").read_text(), fold=False)
    assert any("_start (python3.11)" in s for s in raw)     # fold=False keeps perf's frames


# -- kernel buckets -------------------------------------------------------------------------

USER = ("[python] (libpython)", "__libc_recvmsg (libc.so.6)", "entry_SYSCALL_64 [k]")


@pytest.mark.parametrize("kernel, bucket", [
    (("__sys_recvmsg [k]", "tcp_recvmsg [k]", "skb_copy_datagram_iter [k]",
      "copy_user_enhanced_fast_string [k]"), "kernel: network"),
    (("do_epoll_wait [k]", "ep_poll [k]", "_raw_spin_lock_irqsave [k]"), "kernel: network"),
    (("__sys_recvmsg [k]", "tcp_recvmsg [k]", "asm_exc_page_fault [k]", "exc_page_fault [k]",
      "handle_mm_fault [k]", "clear_page_erms [k]"), "kernel: page faults"),
    (("do_epoll_wait [k]", "schedule_hrtimeout_range [k]", "schedule [k]", "__schedule [k]",
      "finish_task_switch [k]"), "kernel: scheduler"),
    (("filemap_map_pages [k]", "next_uptodate_folio [k]"), "kernel: page faults"),
    (("__x64_sys_getpid [k]", "__task_pid_nr_ns [k]"), "kernel: other"),
])
def test_kernel_frames_go_to_their_subsystem(kernel, bucket):
    assert stack_bucket(USER + kernel) == bucket


def test_user_space_leaves_keep_their_buckets_and_kernel_shares_sum():
    assert stack_bucket((PY_FRAME, f"select_rows ({KERNELS})")) == \
        "lootlab C kernel (search + copy)"
    assert stack_bucket((PY_FRAME, "PyUnicode_InternFromString (libpython3.11.so.1.0)")) \
        == "Python overhead"     # not protobuf's FromString
    row = {"kernel: network": 0.1, "kernel: scheduler": 0.05, "lootlab C kernel (search + copy)": 0.85}
    assert kernel_total(row) == pytest.approx(0.15)
    assert set(KERNEL_BUCKETS) <= set(bucket_shares([]).columns)


def test_perf_stat_csv_is_parsed_and_unsupported_events_left_out():
    text = ("# started on x\n\n12,,context-switches,3570,100.00,336.076,/sec\n"
            "1,,cpu-migrations,3570,100.00,28.006,/sec\n35.71,msec,task-clock,1,100.00,,\n"
            "<not supported>,,major-faults,0,100.00,,\n706,,raw_syscalls:sys_enter,1,100.00,,\n")
    assert parse_stat(text) == {"context_switches": 12.0, "cpu_migrations": 1.0,
                                "task_clock_ms": 35.71, "syscalls": 706.0}


def test_without_perf_the_cli_says_why_in_one_line(monkeypatch):
    monkeypatch.setenv("LOOTLAB_PERF", "/nonexistent/perf")
    res = CliRunner().invoke(cli, ["profile", "perf", "mmap", "--duration", "1"])
    assert res.exit_code == 1
    lines = res.output.strip().splitlines()
    assert lines[-1].startswith("lootlab: error: perf is not installed")
    assert "Traceback" not in res.output
    assert perf_unavailable() is not None


# -- perf on processes with a known answer ---------------------------------------------------

def _child(code: str) -> list[str]:
    return [sys.executable, "-c", code]


SPIN_MEMMOVE = ("import ctypes, time\nn = 1 << 24\na = ctypes.create_string_buffer(n)\n"
                "b = ctypes.create_string_buffer(n)\nend = time.time() + 1.5\n"
                "while time.time() < end:\n    ctypes.memmove(a, b, n)\n")
READ_ZERO = ("import time\nbuf = bytearray(1 << 22)\nf = open('/dev/zero', 'rb', buffering=0)\n"
             "end = time.time() + 1.5\nwhile time.time() < end:\n    f.readinto(buf)\n")


@needs_perf
def test_a_c_function_called_in_a_loop_is_the_leaf_perf_sees():
    stacks, _ = record(_child(SPIN_MEMMOVE), gated=False, frequency=DEFAULT_HZ)
    total = sum(stacks.values())
    copy = sum(c for s, c in stacks.items() if re.match(r"__(memmove|memcpy)\w* \(libc", s[-1]))
    assert total > 200
    assert copy / total > 0.6, sorted(stacks.items(), key=lambda kv: -kv[1])[:5]


@needs_perf
def test_reading_dev_zero_is_mostly_kernel_time():
    stacks, _ = record(_child(READ_ZERO), gated=False)
    assert kernel_share(stacks) > 0.6
    frames = {f for s in stacks for f in s}
    assert any(f.startswith(("read_zero", "__x64_sys_read", "ksys_read")) for f in frames)


@needs_perf
def test_perf_sees_only_the_measured_loop_of_the_workload():
    """Fenced by perfgate, a 1.5 s spin yields at most 1.5 s of one thread's samples and no
    import machinery; the same process unfenced also shows its start-up."""
    duration = 1.5
    prof = perf_flamegraph("mmap", duration=duration, spin=True)
    imports = re.compile(r"^(r_object|PyMarshal_\w+|_imp_\w+|import_find_and_load|"
                         r"PyImport_\w+)")

    def import_share(stacks):
        hit = sum(c for s, c in stacks.items() if any(imports.match(f) for f in s))
        return hit / sum(stacks.values())

    assert prof.summary["kind"] == "spin" and prof.summary["ops"] > 0
    assert prof.samples <= duration * DEFAULT_HZ * 1.15
    assert import_share(prof.stacks) < 0.01
    assert stack_bucket(max(prof.stacks, key=prof.stacks.get)) == "Python overhead"
    argv = gated_argv("mmap", duration=duration, extra=["--spin"])
    unfenced, _ = record(argv, gated=False)
    assert import_share(unfenced) > 0.02
    assert sum(unfenced.values()) > prof.samples


@needs_perf
def test_a_saved_perf_profile_loads_back_as_one(tmp_path):
    prof = perf_flamegraph("mmap", duration=0.5, spin=True, frequency=199)
    prof.save(tmp_path)
    back = load_flame(tmp_path)
    assert type(back).__name__ == "PerfProfile" and back.stacks == prof.stacks
    assert "perf cpu-clock samples" in back.svg


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


@needs_perf
def test_n_blocking_reads_on_a_pipe_cost_about_n_context_switches():
    """The child reads one byte at a time; the test writes each byte only once the child is
    asleep in read(), so every read blocks: one voluntary switch each."""
    n = 300
    to_child_r, to_child_w = os.pipe()
    pid_r, pid_w = os.pipe()
    code = (f"import os\nos.write({pid_w}, str(os.getpid()).encode() + b'\\n')\n"
            f"for _ in range({n}):\n    os.read({to_child_r}, 1)\n")
    proc = process_counts(_child(code), pass_fds=(to_child_r, pid_w))
    os.close(to_child_r)
    os.close(pid_w)
    pid = int(os.read(pid_r, 64).decode().split()[0])
    try:
        for _ in range(n):
            deadline = time.monotonic() + 30
            while _state(pid) != "S":        # asleep: blocked in read()
                assert time.monotonic() < deadline, "the child never blocked"
                time.sleep(0)
            os.write(to_child_w, b"x")
        _, err = proc.communicate(timeout=60)
    finally:
        os.close(to_child_w)
        os.close(pid_r)
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    switches = parse_stat(err)["context_switches"]
    # n blocked reads, plus the interpreter's own start-up (~10-20 here)
    assert n <= switches <= 1.3 * n + 60, switches


@needs_perf
def test_remote_variants_switch_per_op_and_mmap_does_not():
    pooled = counters("grpc-tls-pooled", duration=1.5)
    mmap = counters("mmap", duration=1.5)
    fallback = counters("mmap", duration=1.0, source="rusage")
    assert pooled.source == mmap.source == "perf stat" and fallback.source == "rusage"
    p, m, f = pooled.per_op(), mmap.per_op(), fallback.per_op()
    assert p["voluntary_switches"] >= 1.0 and p["syscalls"] >= 2.0
    assert m["voluntary_switches"] < 0.05 and m["syscalls"] < 0.05
    assert p["context_switches"] > 20 * max(m["context_switches"], 0.01)
    assert f["voluntary_switches"] < 0.05 and f["syscalls"] != f["syscalls"]   # NaN: not counted


# -- the memcpy question: the copy-call kernel build -----------------------

COPYCALL = "lootlab_copy_record (lootlab/_kernels_copycall.cpython-311-x86_64-linux-gnu.so)"


def test_copy_parts_put_each_sample_where_the_copy_question_needs_it():
    cc = "lootlab/_kernels_copycall.cpython-311-x86_64-linux-gnu.so"
    kernel = (PY_FRAME, f"query_cells ({cc})", f"select_rows ({cc})")
    stacks = {
        kernel + (COPYCALL,): 5,                                       # the copy itself
        kernel + (COPYCALL, "asm_exc_page_fault [k]", "exc_page_fault [k]"): 1,  # a fault in it
        kernel: 7,                                                     # decode and test
        (PY_FRAME, f"query_cells ({KERNELS})", "asm_exc_page_fault [k]"): 2,   # default build
        (PY_FRAME, "PyArray_NewCopy (numpy/_core/_multiarray_umath.so)",
         "__memmove_avx_unaligned_erms (libc.so.6)"): 3,
        (PY_FRAME, "PyArray_NewCopy (numpy/_core/_multiarray_umath.so)"): 4,
        (PY_FRAME, "_PyEval_EvalFrameDefault (libpython3.11.so.1.0)"): 6,
        (PY_FRAME, "__x64_sys_getpid [k]"): 1,
    }
    assert copy_parts(stacks) == {"record copy": 6, "C kernel, rest": 9, "other copies": 3,
                                  "numpy": 4, "Python": 6, "OS kernel": 1, "other": 0}
    assert set(copy_parts({})) == set(COPY_PARTS)
    # copy_share counts every copy leaf: the kernel's copy function and libc's memmove
    assert copy_share(stacks) == pytest.approx((5 + 3) / sum(stacks.values()))


def _run_py(code: str, **env: str) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if k not in ("LOOTLAB_KERNELS",
                                                             "LOOTLAB_NO_KERNELS")}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env=dict(full, **env), check=False)


def test_lootlab_kernels_selects_the_build_and_names_a_bogus_one(tmp_path):
    code = "import lootlab.index as i; print(i.kernels_in_use(), i.kernels_available())"
    assert _run_py(code).stdout.split() == ["default", "True"]
    assert _run_py(code, LOOTLAB_KERNELS="copycall").stdout.split() == ["copycall", "True"]
    assert _run_py(code, LOOTLAB_KERNELS="copycall", LOOTLAB_NO_KERNELS="1").stdout.split() \
        == ["numpy", "False"]
    bad = _run_py("import lootlab.index", LOOTLAB_KERNELS="bogus")
    assert bad.returncode != 0
    assert ("KernelsError: LOOTLAB_KERNELS='bogus' is not a kernel build: use one of default, "
            "copycall") in bad.stderr
    # the CLI says it in one line, like any user error (a process of its own: the build is
    # chosen when lootlab.index is first imported, which this process did long ago)
    lootlab.build_index(lootlab.generate_world(n=500, seed=0), tmp_path / "t.idx")
    cli_run = subprocess.run(
        [sys.executable, "-m", "lootlab", "query", str(tmp_path / "t.idx"), "get", "0", "0", "0"],
        capture_output=True, text=True, timeout=120, check=False,
        env=dict(os.environ, LOOTLAB_KERNELS="bogus"))
    assert cli_run.returncode == 1
    assert cli_run.stderr.strip().splitlines() == [
        ("lootlab: error: LOOTLAB_KERNELS='bogus' is not a kernel build: use one of default, "
         "copycall (or leave it unset)")]
    with pytest.raises(ProfilerError, match="kernels must be one of default, copycall"):
        perf_flamegraph("mmap", duration=1, kernels="bogus")


@needs_perf
def test_the_copycall_build_shows_the_copy_of_record_bytes_as_a_frame():
    """Under the copy-call build the copy has samples of its own, inside the C kernel; the
    default build (same workload, same run) never shows the frame."""
    res = copy_share_measured("mmap", duration=1.0, blocks=4)
    cc, default = res.profiles["copycall"], res.profiles["default"]
    assert cc.options["kernels"] == "copycall" and default.options["kernels"] == "default"
    assert any(COPYCALL in s for s in cc.stacks)
    assert not any(f.startswith("lootlab_copy_record") for s in default.stacks for f in s)
    assert 0 < res.copy < res.c_kernel < 1
    assert res.parts["C kernel, rest"] > 0 and res.parts["Python"] > 0
    assert res.default_parts["record copy"] == 0 and res.default_parts["C kernel, rest"] > 0
    assert sum(res.parts.values()) == pytest.approx(1.0)
    assert res.records["copycall"] > res.ops["copycall"] > 0      # hits were copied
    assert res.ops_per_s["default"] > 0 and res.ops_per_s["copycall"] > 0
    # the call's cost, timed apart on the same queries: both builds ran, the ratio is finite
    assert res.interleaved["records_per_op"] > 0 and -1 < res.call_overhead < 1
    assert 0 < res.ns_per_record < 1000


# -- both builds give the same answers -------------------------------------------------------

@pytest.fixture(scope="module")
def both_builds(tmp_path_factory):
    from lootlab import _kernels  # both builds come with setup.py
    from lootlab import _kernels_copycall as copycall
    path = tmp_path_factory.mktemp("builds") / "w.idx"
    lootlab.build_index(lootlab.generate_world(n=20_000, seed=3), path)
    with lootlab.open_index(path) as a, lootlab.open_index(path) as b:
        yield path, {"default": (_kernels, a), "copycall": (copycall, b)}


@contextmanager
def _build(module):
    """Queries in this process run on ``module`` (the index's switch, and its Retry).  The
    per-thread scratch rows the kernel writes into are poisoned first, so a build that left
    bytes unwritten cannot pass on what the other build wrote there."""
    scratch = getattr(snapshot_mod._scratch, "rows", None)
    if scratch is not None:
        scratch.view(np.uint8)[:] = 0xA5
    saved = index_mod._kernels, index_mod._Retry
    index_mod._kernels, index_mod._Retry = module, module.Retry
    try:
        yield
    finally:
        index_mod._kernels, index_mod._Retry = saved


_off = st.integers(-200, 200)


@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pick=st.integers(0, 19_999), r=st.integers(0, 300), lo=st.tuples(_off, _off, _off),
       hi=st.tuples(_off, _off, _off), miss=st.tuples(_off, _off, _off))
def test_both_builds_answer_near_box_get_alike(both_builds, pick, r, lo, hi, miss):
    """Queries around a record of the world (so near and box are never empty) and a point
    near it (mostly a miss), run on each build; the answers must be the same bytes."""
    _, builds = both_builds
    answers = {}
    for name, (module, idx) in builds.items():
        with _build(module):
            assert index_mod.kernels_in_use() == name
            rec = idx.sample(1, seed=pick)[0]
            p = (int(rec["x"]), int(rec["y"]), int(rec["z"]))
            q = tuple(np.clip(np.add(p, miss), [X_MIN, Y_MIN, X_MIN], [X_MAX, Y_MAX, X_MAX]))
            corner_lo = tuple(int(v) - abs(d) for v, d in zip(p, lo))
            corner_hi = tuple(int(v) + abs(d) for v, d in zip(p, hi))
            near, box = idx.near(*p, r), idx.box(corner_lo, corner_hi)
            assert len(near) >= 1 and len(box) >= 1
            xyz = np.array([p, q], np.int64)
            answers[name] = (near.tobytes(), box.tobytes(), idx.get(*p),
                             idx.get(*map(int, q)), [a.tobytes() for a in idx.get_many(xyz)])
    assert answers["copycall"] == answers["default"]
    assert answers["default"][2] is not None          # the record's own position is found


@needs_perf
def test_a_perf_profile_reaches_a_remote_variant_through_the_delaying_proxy():
    """``network=``: at 30 ms RTT a pooled workload spends its time waiting, so the measured
    loop has few ops (a loopback one does hundreds a second)."""
    from lootlab import Network
    prof = perf_flamegraph("grpc-tls-pooled", duration=1.0, network=Network(rtt_ms=30.0))
    assert 0 < prof.summary["ops"] <= 1.0 / 0.030 * 1.2
