"""The workload process with its measured loop fenced for perf: ``python -m
lootlab.profiling.perfgate <workload options>``.

perf cannot see Python function names in CPython 3.11, so it cannot cut a profile at
``_measured_ops`` the way the py-spy parsers do.  Instead perf starts with its events off
(``--delay=-1``) and this module, which runs ``lootlab.workload``'s own command in the same
process, wraps ``_measured_ops`` so it writes ``enable`` to perf's control FIFO on entry and
``disable`` on exit (waiting for perf's ``ack`` each time): perf then counts and samples the
measured loop only, in every thread of the process, and nothing of the start-up, imports,
warm-up or shutdown.

It also takes the process's ``getrusage`` (all threads) around the loop, so where perf is
absent the counters still have context switches and page faults over the same span.

Environment: ``LOOTLAB_PERF_CTL=ctl_fifo,ack_fifo`` (optional) and ``LOOTLAB_GATE_OUT=path``
(optional: the rusage deltas as JSON).
"""

from __future__ import annotations

import json
import os
import resource
from collections.abc import Callable
from typing import IO, Any

CTL_ENV = "LOOTLAB_PERF_CTL"
OUT_ENV = "LOOTLAB_GATE_OUT"
RUSAGE_FIELDS = ("ru_nvcsw", "ru_nivcsw", "ru_minflt", "ru_majflt", "ru_utime", "ru_stime")


class _Control:
    """perf's control FIFO pair, opened in the order perf opens them (ctl, then ack)."""

    def __init__(self, spec: str) -> None:
        ctl, ack = spec.split(",", 1)
        self.ctl: IO[str] = open(ctl, "w")   # noqa: SIM115 - held for the process's life
        self.ack: IO[str] = open(ack)        # noqa: SIM115

    def send(self, command: str) -> None:
        self.ctl.write(command + "\n")
        self.ctl.flush()
        self.ack.readline()


def _rusage() -> dict[str, float]:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return {f: float(getattr(r, f)) for f in RUSAGE_FIELDS}


def gate(measured: Callable[..., Any], control: _Control | None,
         out: str | None) -> Callable[..., Any]:
    """``measured`` with perf enabled and rusage taken around each call."""
    def gated(*args: Any, **kwargs: Any) -> Any:
        before = _rusage()
        if control is not None:
            control.send("enable")
        try:
            return measured(*args, **kwargs)
        finally:
            if control is not None:
                control.send("disable")
            after = _rusage()
            if out:
                with open(out, "w") as fh:
                    json.dump({k: after[k] - before[k] for k in after}, fh)
    return gated


def main() -> None:
    from .. import workload
    spec = os.environ.get(CTL_ENV)
    workload._measured_ops = gate(workload._measured_ops, _Control(spec) if spec else None,
                                  os.environ.get(OUT_ENV))
    workload.main(prog_name="python -m lootlab.profiling.perfgate")


if __name__ == "__main__":
    main()
