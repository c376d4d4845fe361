"""Group sampled stacks into the story's buckets: where did the CPU time go?

A sample goes to exactly one bucket, decided by its stack (leaf first):

0. ``kernel: network``, ``kernel: page faults``, ``kernel: scheduler``, ``kernel: other``
   the leaf is a kernel frame (``name [k]``, only in perf profiles: py-spy never sees the
   kernel); the kernel frame nearest the leaf that names a subsystem decides (TCP/IP,
   sockets, skbs, epoll; the page-fault path; the scheduler), else ``kernel: other``;
1. ``idle/wait``  the leaf is a blocking primitive (epoll/poll/select, futex, sleep):
   time waiting, mostly visible only when py-spy ran with ``--idle``;
   ``socket I/O``  the leaf is a socket system call moving data (sendmsg, recvmsg, write...):
   the kernel's loopback TCP work, charged to the caller's thread;
2. the deepest frame that belongs to ``TLS/ssl``, ``protobuf``, ``gRPC core`` or lootlab's C
   kernel: so memcpy inside ``SSL_read`` is TLS, a protobuf decode called from gRPC is
   protobuf, and a copy the C kernel makes is the C kernel's;
   but a bare address (``0x7f3d...``, a library without symbols) met on the way in a
   library that bundles several buckets' code (grpcio's ``cygrpc`` links gRPC core *and*
   BoringSSL, stripped) or in a library no rule knows makes the sample ``unattributed (no
   symbols)``: the data cannot say which, so it is never guessed (a bare ``cygrpc`` frame
   that calls Python code is Cython glue, gRPC's);
3. ``GC``  the cyclic garbage collector (``gc_collect_main`` and friends);
4. ``lootlab C kernel (search + copy)``  the leaf is lootlab's C kernel
   (``lootlab/_kernels.c``: finding the cell runs, decoding and testing every key, copying
   each hit's bytes), or libc code it called;
5. ``numpy + libc copies``  the leaf is native code in numpy or a libc ``mem*`` copy outside
   the C kernel (numpy building and copying result rows, decoding packed fields);
6. ``Python overhead``  the leaf is a Python frame or the interpreter itself;
7. ``other``  any other native code.

Names that cannot contradict: the copy of record bytes (``COPY_PARTS``' ``record copy``) is
a part of the C kernel bucket, never of a bucket called "memcpy".
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

import pandas as pd

KERNEL_BUCKETS = ("kernel: network", "kernel: page faults", "kernel: scheduler", "kernel: other")
C_KERNEL = "lootlab C kernel (search + copy)"
NUMPY = "numpy + libc copies"
UNATTRIBUTED = "unattributed (no symbols)"
BUCKETS = ("TLS/ssl", "gRPC core", "protobuf", "socket I/O", C_KERNEL, NUMPY, "GC",
           "Python overhead", "idle/wait", "other", UNATTRIBUTED, *KERNEL_BUCKETS)
#: Libraries shipped without symbols that link several buckets' code together: a bare address
#: in one may be any of these buckets (short name -> what it holds, the buckets it may hide).
MIXED_LIBRARIES: dict[str, tuple[str, tuple[str, ...]]] = {
    "cygrpc": ("grpcio's cygrpc, which links gRPC core and BoringSSL (TLS) statically",
               ("TLS/ssl", "gRPC core")),
}

_FRAME = re.compile(r"^(?P<name>.*?)(?: \((?P<file>[^()]*)\))?$")

_IDLE = re.compile(
    r"^(epoll_wait|epoll_pwait|__?poll|ppoll|select|pselect6?|__select|nanosleep|"
    r"clock_nanosleep|__GI___clock_nanosleep|__futex_abstimed_wait\w*|futex_wait\w*|"
    r"__lll_lock_wait\w*|pthread_cond_(timed)?wait\w*|__pthread_cond_wait\w*|sem_wait|"
    r"do_futex_wait\w*|accept4?|sleep|wait|time\.sleep|_wait_once|_cv_wait)$")
_SOCKET_IO = re.compile(
    r"^(__libc_)?(sendmsg|sendto|send|sendmmsg|recvmsg|recvfrom|recv|recvmmsg|write|writev|"
    r"read|readv|__write_nocancel|__read_nocancel)$")
_IDLE_PY = re.compile(r"^(sleep|wait|_wait_once|select|poll|_poll|acquire)$")

_TLS = re.compile(
    r"(^|[^a-z])(ssl|SSL_|tls(?!_get_addr)|TLS|tsi_|bssl::|BoringSSL|EVP_|AES_|aes_|gcm_|chacha|"
    r"sha256|SHA256|ECDSA|ecdsa|ec_GFp|x25519|X25519|RSA_|BN_|bn_|CRYPTO_|OPENSSL_|"
    r"libssl|libcrypto)", re.ASCII)
_PROTOBUF = re.compile(r"(google/protobuf|google\._upb|_upb|upb_|protobuf|_pb2\b|_pb2\.py|"
                       r"(^|[.:])(SerializeToString|FromString|ParseFromString|"
                       r"MergeFromString)\b|_message\.)")   # not CPython's PyUnicode_*FromString
_GRPC = re.compile(r"(grpc|cygrpc|_cython/|absl::|gpr_|census|chttp2|hpack|"
                   r"nghttp2)")
_GC = re.compile(r"^(gc_collect\w*|collect|_PyGC_\w*|deduce_unreachable|move_unreachable|"
                 r"subtract_refs|update_refs|visit_\w+|gc_collect_main)$")
_NUMPY_FILE = re.compile(r"(numpy/|_multiarray_umath|_umath|libopenblas|libscipy_openblas)")
_KERNELS_FILE = re.compile(r"(lootlab/_kernels|_kernels(_\w+)?\.cpython)")
_MEMCPY = re.compile(r"^(__)?(memcpy|memmove|memset|mempcpy)\w*$")
_LIBC = re.compile(r"^(libc\.so|libm\.so|ld-linux|libpthread)")
# system helpers whose bare addresses are charged to their caller (glibc's memcpy variants are
# local symbols; the vDSO's clock_gettime has none)
_HELPER = re.compile(r"^(libc\.so|libm\.so|ld-linux|libpthread|libstdc\+\+|libgcc_s|\[vdso\])")
_BARE = re.compile(r"^(0x[0-9a-fA-F]+|\[unknown\])$")
_PY_FILE = re.compile(r"(\.py(:\d+)?$|^<frozen |^<string>)")
_PY_RUNTIME = re.compile(r"(libpython|^python3?(\.\d+)?$)")
_KERNEL_TAG = " [k]"
_K_NETWORK = re.compile(
    r"^(tcp_|__tcp_|ip_|__ip_|ipv6_|ip6_|inet_|inet6_|sock_|__sock_|sk_|__sk_|skb_|__skb_|"
    r"kfree_skb|consume_skb|alloc_skb|__alloc_skb|__sys_sendmsg|__sys_recvmsg|___sys_\w+|"
    r"__sys_sendto|__sys_recvfrom|__x64_sys_(sendmsg|recvmsg|sendto|recvfrom|epoll\w*)|"
    r"sys_(sendmsg|recvmsg)|\w*epoll\w*|ep_\w+|net_rx_action|__netif_\w+|netif_\w+|"
    r"__napi_poll|process_backlog|__dev_queue_xmit|dev_hard_start_xmit|loopback_xmit|"
    r"unix_\w+|udp_\w+|nf_\w+|__inet_\w+|tcp\w*|release_sock|lock_sock\w*)")
_K_FAULT = re.compile(
    r"^(handle_mm_fault|__handle_mm_fault|do_page_fault|exc_page_fault|asm_exc_page_fault|"
    r"do_user_addr_fault|filemap_\w+|do_anonymous_page|do_fault|do_read_fault|"
    r"do_wp_page|wp_page_copy|handle_pte_fault|do_huge_pmd_\w+|__do_fault|"
    r"do_set_pte|finish_fault)$")
_K_SCHED = re.compile(
    r"^(schedule|__schedule|schedule_\w+|finish_task_switch\w*|pick_next_\w+|"
    r"__pick_next_\w+|context_switch|__switch_to\w*|switch_mm\w*|try_to_wake_up|"
    r"ttwu_\w+|enqueue_task\w*|dequeue_task\w*|update_curr\w*|yield_task\w*|"
    r"__x64_sys_sched_yield|do_sched_yield|preempt_schedule\w*|load_balance|"
    r"newidle_balance|set_next_entity|put_prev_\w+)$")


def split_frame(frame: str) -> tuple[str, str]:
    """``"func (file:line)"`` -> ``("func", "file:line")`` (file ``""`` when absent)."""
    m = _FRAME.match(frame)
    return (m.group("name"), m.group("file") or "") if m else (frame, "")


def is_python(frame: str) -> bool:
    return bool(_PY_FILE.search(split_frame(frame)[1]))


def is_kernel(frame: str) -> bool:
    """A kernel frame, as perf profiles name them (``tcp_sendmsg [k]``)."""
    return frame.endswith(_KERNEL_TAG)


def kernel_bucket(stack: Sequence[str]) -> str:
    """The kernel bucket of a stack whose leaf is in the kernel: the kernel frame nearest the
    leaf that names a subsystem decides (a page fault taken inside ``recvmsg`` is a page
    fault; ``finish_task_switch`` under ``epoll_wait`` is the scheduler)."""
    for frame in reversed(stack):
        if not is_kernel(frame):
            break
        name = frame[:-len(_KERNEL_TAG)]
        if _K_FAULT.match(name):
            return "kernel: page faults"
        if _K_SCHED.match(name):
            return "kernel: scheduler"
        if _K_NETWORK.match(name):
            return "kernel: network"
    return "kernel: other"


def library(file: str) -> str:
    """A library's short name: ``grpc/_cython/cygrpc.cpython-311-x86_64-linux-gnu.so`` ->
    ``cygrpc``, ``libc.so.6`` -> ``libc`` (``[unknown]`` when the profiler named none)."""
    base = file.rsplit("/", 1)[-1]
    return "[unknown]" if base in ("", "?") else base.split(".", 1)[0]


def _known_library(file: str) -> bool:
    """A library whose every frame belongs to one bucket (or to its caller), so a bare
    address in it is still attributed."""
    if library(file) in MIXED_LIBRARIES:
        return False
    return bool(_HELPER.search(file) or _NUMPY_FILE.search(file) or _KERNELS_FILE.search(file)
                or _PY_RUNTIME.search(file) or _PROTOBUF.search(file) or _TLS.search(file)
                or _PY_FILE.search(file))


def _unattributed_at(stack: Sequence[str]) -> str | None:
    """The library of the bare address that leaves this sample unattributed, or None: walking
    from the leaf, the first bare address in a library that mixes buckets or that no rule
    knows, met before any frame that names a bucket (and before any Python frame: a bare
    frame calling Python is Cython glue)."""
    for frame in reversed(stack):
        name, file = split_frame(frame)
        if _BARE.match(name):
            if not _known_library(file):
                return library(file) if file else "[unknown]"
            continue
        if _strong(frame) or is_python(frame):
            return None
    return None


def _strong(frame: str) -> str | None:
    name, file = split_frame(frame)
    if _KERNELS_FILE.search(file) or name == COPY_FUNCTION:
        return C_KERNEL          # lootlab's own C code, wherever it runs
    if _PROTOBUF.search(file) or _PROTOBUF.search(name):
        return "protobuf"
    if _TLS.search(name) or _TLS.search(file):
        return "TLS/ssl"
    if _GRPC.search(file) or _GRPC.search(name):
        return "gRPC core"
    return None


def stack_bucket(stack: Sequence[str]) -> str:
    """The bucket of one sample; ``stack`` is root first, leaf last (py-spy's order)."""
    if not stack:
        return "other"
    if is_kernel(stack[-1]):
        return kernel_bucket(stack)
    leaf_name, leaf_file = split_frame(stack[-1])
    if _IDLE.match(leaf_name) or (is_python(stack[-1]) and _IDLE_PY.match(leaf_name)
                                  and leaf_file.startswith(("threading", "selectors", "queue",
                                                            "socket", "time", "<"))):
        return "idle/wait"
    if _SOCKET_IO.match(leaf_name) and _LIBC.search(leaf_file):
        return "socket I/O"
    if _unattributed_at(stack) is not None:
        return UNATTRIBUTED
    for frame in reversed(stack):
        bucket = _strong(frame)
        if bucket:
            return bucket
    if any(_GC.match(split_frame(f)[0]) for f in stack):
        return "GC"
    if _KERNELS_FILE.search(leaf_file) or leaf_name == COPY_FUNCTION:
        return C_KERNEL
    if _LIBC.search(leaf_file) or _MEMCPY.match(leaf_name):
        # libc/libm helpers (glibc's memcpy variants are local symbols that py-spy often
        # shows as bare addresses): charge them to the first caller outside libc
        for frame in reversed(stack[:-1]):
            name, file = split_frame(frame)
            if _LIBC.search(file):
                continue
            if _KERNELS_FILE.search(file) or name == COPY_FUNCTION:
                return C_KERNEL
            if _NUMPY_FILE.search(file) or _MEMCPY.match(name):
                return NUMPY
            break
    if _MEMCPY.match(leaf_name) or _NUMPY_FILE.search(leaf_file):
        return NUMPY
    if is_python(stack[-1]) or _PY_RUNTIME.search(leaf_file) or leaf_name.startswith(("Py", "_Py")):
        return "Python overhead"
    return "other"


def categorize(stacks: Mapping[tuple[str, ...], int]) -> dict[str, int]:
    """Samples per bucket (every bucket present, zero when empty)."""
    out = dict.fromkeys(BUCKETS, 0)
    for stack, count in stacks.items():
        out[stack_bucket(stack)] += count
    return out


def unattributed_libraries(stacks: Mapping[tuple[str, ...], int]) -> dict[str, int]:
    """Samples left unattributed, per library without symbols that holds them."""
    out: dict[str, int] = defaultdict(int)
    for stack, count in stacks.items():
        if stack_bucket(stack) == UNATTRIBUTED:
            out[_unattributed_at(stack) or "[unknown]"] += count
    return dict(out)


def hidden_buckets(stacks: Mapping[tuple[str, ...], int]) -> dict[str, list[str]]:
    """Bucket -> the libraries without symbols that may hide some of its samples here (their
    samples are unattributed): such a bucket's share is a lower bound, and a share of 0 says
    nothing (grpcio's stripped ``cygrpc`` hides TLS)."""
    out: dict[str, list[str]] = {}
    for lib in unattributed_libraries(stacks):
        for bucket in MIXED_LIBRARIES.get(lib, ("", ()))[1]:
            out.setdefault(bucket, []).append(lib)
    return out


def kernel_total(shares_row: Mapping[str, float]) -> float:
    """The kernel's share of one ``bucket_shares`` row (the four kernel buckets summed)."""
    return float(sum(shares_row.get(b, 0.0) for b in KERNEL_BUCKETS))


def bucket_shares(profiles: Iterable, *, work_only: bool = True) -> pd.DataFrame:
    """Share of samples per bucket, one row per profile (``variant`` column), rows sum to 1.

    ``work_only`` keeps only samples under the workload's measured loop (imports and set-up
    of the workload process are left out).  Accepts ``FlameProfile`` objects.  Which of the
    shares a library without symbols may hide: ``attribution_gaps``.
    """
    rows = []
    for p in profiles:
        stacks = p.work_stacks if work_only else p.stacks
        counts = categorize(stacks)
        total = sum(counts.values()) or 1
        row: dict[str, object] = {"variant": p.variant}
        row.update({b: c / total for b, c in counts.items()})
        row["samples"] = sum(counts.values())
        rows.append(row)
    return pd.DataFrame(rows, columns=["variant", *BUCKETS, "samples"])


def attribution_gaps(profiles: Iterable, *,
                     work_only: bool = True) -> dict[str, dict[str, list[str]]]:
    """{variant: ``hidden_buckets``} of the same samples ``bucket_shares`` counts: per
    variant, the buckets whose share a library without symbols may hide."""
    return {p.variant: hidden_buckets(p.work_stacks if work_only else p.stacks)
            for p in profiles}


def top_buckets(shares_row: Mapping[str, float], n: int = 3) -> list[tuple[str, float]]:
    """The ``n`` largest buckets of one ``bucket_shares`` row, largest first."""
    pairs = [(b, float(shares_row[b])) for b in BUCKETS if shares_row.get(b, 0) > 0]
    return sorted(pairs, key=lambda p: -p[1])[:n]


def bucket_of_frames(frames: Iterable[str]) -> dict[str, str]:
    """A bucket label per frame, judged on the frame alone (for frame tables)."""
    out: dict[str, str] = {}
    for f in frames:
        out[f] = stack_bucket((f,))
    return out


def group_counts(stacks: Mapping[tuple[str, ...], int]) -> dict[str, dict[tuple[str, ...], int]]:
    """Stacks split by bucket, for drilling into one bucket."""
    out: dict[str, dict[tuple[str, ...], int]] = defaultdict(dict)
    for stack, count in stacks.items():
        out[stack_bucket(stack)][stack] = count
    return dict(out)


def _copy_leaf(stack: Sequence[str]) -> bool:
    """The leaf is a named ``mem*`` copy, the C kernel's copy function, or a bare libc address
    called straight from numpy's native code (glibc's memcpy variants are local symbols
    py-spy often cannot name)."""
    if not stack:
        return False
    name, file = split_frame(stack[-1])
    if _MEMCPY.match(name) or name == COPY_FUNCTION:
        return True
    if _LIBC.search(file) and name.startswith("0x") and len(stack) > 1:
        _, cfile = split_frame(stack[-2])
        return bool(_NUMPY_FILE.search(cfile)) and not is_python(stack[-2])
    return False


def copy_share(stacks: Mapping[tuple[str, ...], int]) -> float:
    """Share of samples whose leaf is a memory copy (``_copy_leaf``).  An estimate of the
    story's "memcpy" share; of the C kernel's own copy only under the copy-call build."""
    total = sum(stacks.values())
    return sum(c for s, c in stacks.items() if _copy_leaf(s)) / total if total else 0.0


# The copy of one hit's bytes in lootlab/_kernels.c, a frame of its own only in the build with
# LOOTLAB_COPY_CALL (lootlab._kernels_copycall); inlined into select_rows otherwise.
COPY_FUNCTION = "lootlab_copy_record"
COPY_PARTS = ("record copy", "C kernel, rest", "other copies", "numpy", "Python", "OS kernel",
              "other")


def copy_part(stack: Sequence[str]) -> str:
    """The ``COPY_PARTS`` entry of one sample of the mmap read path (root first):

    - ``record copy``: the copy function is on the stack (it calls nothing but a copy, so a
      page fault or ``memcpy`` under it is the copy too);
    - ``C kernel, rest``: any other sample inside lootlab's C kernel (finding the cell runs,
      decoding and testing each key; page faults on the mapping taken there);
    - ``other copies``: a ``mem*`` leaf outside the kernel (numpy copying result rows);
    - ``numpy``, ``Python``: the rest of the ``numpy + libc copies`` and ``Python overhead`` buckets;
    - ``OS kernel``: a kernel leaf outside the C kernel; ``other``: anything else.
    """
    names = [split_frame(f) for f in stack]
    if any(n == COPY_FUNCTION for n, _ in names):
        return "record copy"
    if any(_KERNELS_FILE.search(f) for _, f in names):
        return "C kernel, rest"
    if not stack:
        return "other"
    if is_kernel(stack[-1]):
        return "OS kernel"
    if _copy_leaf(stack):
        return "other copies"
    bucket = stack_bucket(stack)
    return {NUMPY: "numpy", C_KERNEL: "C kernel, rest",
            "Python overhead": "Python"}.get(bucket, "other")


def copy_parts(stacks: Mapping[tuple[str, ...], int]) -> dict[str, int]:
    """Samples per ``COPY_PARTS`` entry (every entry present)."""
    out = dict.fromkeys(COPY_PARTS, 0)
    for stack, count in stacks.items():
        out[copy_part(stack)] += count
    return out
