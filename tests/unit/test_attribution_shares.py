"""CPU buckets say what the samples can say: a bare address in a library shipped without
symbols is "unattributed", a bucket it may hide reads "n/a: no symbols" (never 0 %), and the
copy of record bytes is named as a part of the C kernel bucket, never against a "memcpy"."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from lootlab.profiling import FlameProfile, bucket_shares
from lootlab.profiling.categorize import (
    BUCKETS,
    C_KERNEL,
    COPY_PARTS,
    KERNEL_BUCKETS,
    NUMPY,
    UNATTRIBUTED,
    attribution_gaps,
    categorize,
    copy_part,
    hidden_buckets,
    stack_bucket,
    unattributed_libraries,
)
from lootlab.report import format as fmt
from lootlab.report.shares import NO_SYMBOLS, bucket_table, column_labels, gaps_note

LOOP = ("_run_module_as_main (<frozen runpy>:198)", "_measured_ops (lootlab/workload.py:143)")
CY = "grpc/_cython/cygrpc.cpython-311-x86_64-linux-gnu.so"
CALL = ("GrpcClient._query (lootlab/clients.py:248)",
        "_UnaryUnaryMultiCallable._blocking (grpc/_channel.py:1119)")
BARE_CY = (f"0x7f3de6716a24 ({CY})", f"0x7f3de6716451 ({CY})")
KERNELS = "lootlab/_kernels.cpython-311-x86_64-linux-gnu.so"
NP = "PyArray_NewCopy (numpy/_core/_multiarray_umath.cpython-311-x86_64-linux-gnu.so)"


def test_bare_addresses_in_grpcio_s_stripped_library_are_unattributed_not_grpc_core():
    # grpcio links BoringSSL into cygrpc without symbols: these frames may be TLS or gRPC
    assert stack_bucket(LOOP + CALL + BARE_CY) == UNATTRIBUTED
    assert stack_bucket(LOOP + CALL + BARE_CY + ("malloc (libc.so.6)",)) == UNATTRIBUTED
    assert stack_bucket(LOOP + CALL + BARE_CY[:1] + ("0x7f00 (?)",)) == UNATTRIBUTED
    # named frames still decide: a named TLS function, or a blocking leaf
    assert stack_bucket(LOOP + CALL + BARE_CY + (f"SSL_read ({CY})",)) == "TLS/ssl"
    assert stack_bucket(LOOP + CALL + BARE_CY + ("epoll_wait (libc.so.6)",)) == "idle/wait"
    # a bare cygrpc frame calling Python is Cython glue: gRPC's
    assert stack_bucket(LOOP + CALL + BARE_CY + ("Condition.__enter__ (threading.py:271)",)) \
        == "gRPC core"
    # thread-local storage is not TLS the protocol
    assert stack_bucket(LOOP + CALL + ("__tls_get_addr (ld-linux-x86-64.so.2)",)) == "gRPC core"


def test_a_bucket_a_library_without_symbols_may_hide_reads_na_never_zero():
    fresh = FlameProfile("grpc-tls-fresh", {LOOP + CALL + BARE_CY: 6, LOOP + CALL: 2,
                                            LOOP + (NP,): 2})
    mmap = FlameProfile("mmap", {LOOP + (f"select_rows ({KERNELS})",): 3, LOOP: 1})
    profiles = [fresh, mmap]
    shares = bucket_shares(profiles)
    gaps = attribution_gaps(profiles)
    assert gaps == {"grpc-tls-fresh": {"TLS/ssl": ["cygrpc"], "gRPC core": ["cygrpc"]},
                    "mmap": {}}
    table = bucket_table(shares, gaps).set_index("bucket")
    assert table.loc["TLS/ssl", "grpc-tls-fresh"] == NO_SYMBOLS
    assert table.loc["TLS/ssl", "mmap"] == 0.0                    # no such library: a real 0
    assert table.loc["gRPC core", "grpc-tls-fresh"] == "≥ 20"       # 2 of 10: a lower bound
    assert table.loc[UNATTRIBUTED, "grpc-tls-fresh"] == 60.0
    assert table.loc[C_KERNEL, "mmap"] == 75.0
    # percent in the header, py-spy's table has no kernel rows, the note names the library
    assert column_labels(shares) == {"grpc-tls-fresh": "grpc-tls-fresh (%)", "mmap": "mmap (%)"}
    assert not set(KERNEL_BUCKETS) & set(table.index)
    assert "cygrpc" in gaps_note(gaps) and "BoringSSL" in gaps_note(gaps)
    assert gaps_note({"mmap": {}}) == ""
    # one column per variant and short cells: the table reads at 800 px
    shown = fmt.table(bucket_table(shares, gaps), labels=column_labels(shares)).frame
    assert len(shown.columns) == 1 + len(profiles)
    assert max(len(str(v)) for v in shown.iloc[:, 1:].to_numpy().ravel()) <= len(NO_SYMBOLS)


def test_the_copy_of_record_bytes_is_a_part_of_the_c_kernel_bucket_and_no_bucket_says_memcpy():
    assert not [b for b in BUCKETS if "memcpy" in b]
    copy = LOOP + (f"query_cells ({KERNELS})", f"select_rows ({KERNELS})",
                   f"lootlab_copy_record ({KERNELS})")
    assert stack_bucket(copy) == C_KERNEL and copy_part(copy) == "record copy"
    assert stack_bucket(copy + ("__memmove_avx_unaligned_erms (libc.so.6)",)) == C_KERNEL
    assert stack_bucket(LOOP + (NP, "__memmove_avx_unaligned_erms (libc.so.6)")) == NUMPY


FRAMES = [*LOOP, *CALL, *BARE_CY, f"SSL_read ({CY})", "epoll_wait (libc.so.6)",
          "malloc (libc.so.6)", "0x7fdf332b5fe6 (libc.so.6)",
          "__memmove_avx_unaligned_erms (libc.so.6)", f"select_rows ({KERNELS})",
          f"lootlab_copy_record ({KERNELS})", NP, "near (lootlab/index.py:269)",
          "upb_Message_Get (_message.abi3.so)", "0x7f00 (?)", "exc_page_fault [k]",
          "gc_collect_main (libpython3.11.so.1.0)", "zstd_compress (libzstd.so.1)"]


def _possible(stack: tuple[str, ...]) -> bool:
    """lootlab's C kernel calls nothing but itself, libc's copies and the OS kernel."""
    after = [f for i, f in enumerate(stack) if any(KERNELS in g for g in stack[:i])]
    return all(KERNELS in f or f.startswith(("0x", "__memmove")) and "libc" in f
               or f.endswith("[k]") for f in after)


stacks_st = st.dictionaries(
    st.lists(st.sampled_from(FRAMES), min_size=1, max_size=7).map(tuple).filter(_possible),
    st.integers(1, 50), max_size=25)


@settings(max_examples=300, deadline=None)
@given(stacks_st)
def test_every_sample_lands_once_and_the_gaps_follow_the_unattributed_samples(stacks):
    counts = categorize(stacks)
    assert sum(counts.values()) == sum(stacks.values())
    libs = unattributed_libraries(stacks)
    assert sum(libs.values()) == counts[UNATTRIBUTED]
    hidden = hidden_buckets(stacks)
    assert bool(hidden) == ("cygrpc" in libs)
    for stack in stacks:
        bucket, part = stack_bucket(stack), copy_part(stack)
        assert part in COPY_PARTS
        # the copy parts refine the buckets: the C kernel bucket is the record copy and the rest
        if bucket == C_KERNEL:
            assert part in ("record copy", "C kernel, rest")
        if part == "record copy":
            assert bucket in (C_KERNEL, *KERNEL_BUCKETS)
