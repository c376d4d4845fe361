"""perf beside py-spy: the perf-script parser, the kernel buckets, perf profiles and counters of
processes with a known answer, and the workload's measured loop fenced for perf."""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from lootlab.cli import main as cli
from lootlab.profiling import (
    KERNEL_BUCKETS,
    bucket_shares,
    counters,
    kernel_total,
    load_flame,
    perf_flamegraph,
    perf_unavailable,
    stack_bucket,
)
from lootlab.profiling.counters import parse_stat, process_counts
from lootlab.profiling.perf import DEFAULT_HZ, gated_argv, record
from lootlab.profiling.perfscript import PY_FRAME, kernel_share, parse_script

FIXTURES = Path(__file__).parent / "fixtures"
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
    assert stack_bucket((PY_FRAME, f"select_rows ({KERNELS})")) == "numpy/memcpy"
    assert stack_bucket((PY_FRAME, "PyUnicode_InternFromString (libpython3.11.so.1.0)")) \
        == "Python overhead"     # not protobuf's FromString
    row = {"kernel: network": 0.1, "kernel: scheduler": 0.05, "numpy/memcpy": 0.85}
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
