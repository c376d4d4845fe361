"""``perf script`` text -> collapsed stacks, in the frame format the py-spy views use.

``perf script -F comm,tid,ip,sym,dso`` prints one block per sample: a header line (thread
name and id), then one frame per line, leaf first (``ffffffff81a0 tcp_sendmsg
([kernel.kallsyms])``), then a blank line.  Folding turns each block into a root-first tuple
of frames named as py-spy names native frames, ``name (library)``, so the categorizer, the
frame table and the SVG read both profilers alike, with two differences that make a perf
stack of CPython readable:

- kernel frames are ``name [k]`` (no library): the SVG colours them apart, and searching
  for ``[k]`` lights up every kernel frame and reports their share;
- CPython 3.11 has no perf trampoline (``-X perf`` is 3.12+), so perf sees the interpreter's
  C functions, never Python function names.  A run of the interpreter's call machinery
  (``_PyEval_EvalFrameDefault``, ``_PyObject_Call``, vectorcall wrappers ...) says nothing
  but "Python called something" and differs only in depth, so each run becomes one frame,
  ``[python] (libpython)``; the machinery at the leaf (time interpreting bytecode) is kept
  by name.  The start-up chain above the first interpreter frame (``_start``,
  ``Py_BytesMain``, ``Py_RunMain``) is dropped, so a stack whose root perf's unwinder did
  not reach (a truncated DWARF stack copy) merges with the complete ones.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

Stacks = dict[tuple[str, ...], int]

PY_FRAME = "[python] (libpython)"
KERNEL_TAG = " [k]"

_HEADER = re.compile(r"^(?P<comm>\S.*?)\s+(?P<tid>\d+)(?:/\d+)?\s*(?P<rest>.*)$")
_FRAME = re.compile(r"^\s*(?P<ip>[0-9a-fA-F]+)\s+(?P<sym>.*?)\s*\((?P<dso>[^()]*)\)\s*$")
_SUFFIX = re.compile(r"(\.(constprop|isra|part|cold|lto_priv|localalias)(\.\d+)?)+$|@@?\S+$")
_INTERP_FILE = re.compile(r"^(libpython\d|python\d)")
# the interpreter's call machinery: frames that only pass a call on
_PLUMBING = re.compile(
    r"^(_PyEval_EvalFrameDefault|_PyEval_EvalFrame|_PyEval_Vector|PyEval_EvalCode\w*|"
    r"_PyFunction_Vectorcall|_?PyObject_Vectorcall\w*|_?PyObject_Call\w*|_PyObject_FastCall\w*|"
    r"_PyObject_MakeTpCall|_PyVectorcall_Call|PyVectorcall_Call|method_vectorcall\w*|"
    r"cfunction_call|cfunction_vectorcall\w*|vectorcall_\w+|slot_tp_call|do_call_core|"
    r"_PyObject_Call_Prepend|partial_call|partial_vectorcall|wrapper_call|wrap_\w+|"
    r"method_vectorcall_\w+|thread_run|pythread_wrapper|builtin_exec\w*|run_mod|"
    r"run_eval_code_obj|pyrun_file|_PyRun_\w+|PyRun_\w+|Py_RunMain|Py_BytesMain|"
    r"pymain_\w+|type_call|_PyObject_VectorcallTstate|_PyObject_FastCallDictTstate)$")
# start-up frames above the interpreter's first frame (the main thread's root chain)
_START = re.compile(r"^(_start|__libc_start_call_main|__libc_start_main\w*|main)$")
_HIGH = 0xFFFF800000000000          # x86-64 kernel addresses start here


def short_dso(dso: str) -> str:
    """A library path as py-spy shows one: from ``site-packages/`` or the package's
    directory (``numpy/_core/x.so``, ``lootlab/_kernels...so``), else its base name."""
    for marker in ("site-packages/", "dist-packages/"):
        if marker in dso:
            return dso.split(marker, 1)[1]
    if "/lootlab/" in dso:
        return "lootlab/" + dso.rsplit("/lootlab/", 1)[1]
    return dso.rsplit("/", 1)[-1]


def is_kernel(frame: str) -> bool:
    return frame.endswith(KERNEL_TAG)


def frame_of(ip: str, sym: str, dso: str) -> str | None:
    """One perf frame as a lootlab frame name; ``None`` for perf's end-of-stack marker."""
    address = int(ip, 16)
    if address >= 0xFFFFFFFFFFFFF000:       # the unwinder's "no more frames" (-1)
        return None
    sym = _SUFFIX.sub("", sym.split("+0x", 1)[0]) if sym else "[unknown]"
    kernel = dso.startswith("[kernel") or (address >= _HIGH and dso.startswith("["))
    if kernel:
        return f"{sym}{KERNEL_TAG}"
    if dso in ("[unknown]", ""):
        return "[unknown]" if sym == "[unknown]" else sym
    lib = short_dso(dso)
    if sym == "[unknown]":
        return f"0x{address:x} ({lib})"
    return f"{sym} ({lib})"


def _is_plumbing(frame: str) -> bool:
    name, _, rest = frame.partition(" (")
    return bool(_INTERP_FILE.match(rest) and _PLUMBING.match(name))


def _is_start(frame: str) -> bool:
    name, _, rest = frame.partition(" (")
    return bool(_START.match(name)) and bool(rest.startswith(("libc.so", "python", "ld-linux")))


def tidy(stack: Iterable[str]) -> tuple[str, ...]:
    """Root-first frames with the interpreter's call machinery folded (see the module doc)."""
    frames = list(stack)
    if any(_is_plumbing(f) for f in frames):
        while frames and (_is_start(frames[0]) or frames[0] == "[unknown]"):
            frames.pop(0)
    out: list[str] = []
    for i, frame in enumerate(frames):
        if _is_plumbing(frame) and i < len(frames) - 1:
            if not out or out[-1] != PY_FRAME:
                out.append(PY_FRAME)
            continue
        out.append(frame)
    return tuple(out)


def parse_script(text: str, *, fold: bool = True) -> Stacks:
    """``perf script -F comm,tid,ip,sym,dso`` output -> ``{root-first stack: samples}``.

    Lines that are neither headers nor frames (perf's warnings) are skipped; a sample with
    no frame at all counts as ``("[unknown]",)``.  ``fold=False`` keeps perf's frames as
    they are (no interpreter folding)."""
    out: Counter = Counter()
    frames: list[str] | None = None

    def flush() -> None:
        if frames is None:
            return
        stack = tuple(reversed(frames)) or ("[unknown]",)
        out[tidy(stack) if fold else stack] += 1

    for line in text.splitlines():
        if not line.strip():
            flush()
            frames = None
            continue
        if line[0] in " \t":
            m = _FRAME.match(line)
            if m and frames is not None:
                f = frame_of(m.group("ip"), m.group("sym"), m.group("dso"))
                if f is not None:
                    frames.append(f)
            continue
        if _HEADER.match(line):
            flush()
            frames = []
    flush()
    return dict(out)


def kernel_share(stacks: dict[tuple[str, ...], int]) -> float:
    """Share of samples whose leaf is a kernel frame: CPU time spent in the kernel."""
    total = sum(stacks.values())
    return sum(c for s, c in stacks.items() if s and is_kernel(s[-1])) / total if total else 0.0
