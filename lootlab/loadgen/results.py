"""What a load run measured: merged HDR histograms, a per-second timeline, achieved vs
offered rate, generator CPU, and a health verdict (``health``).  Saves to and loads from
disk.

Percentiles always come from merged histograms (counts added across processes), never
from averaging each process's percentiles.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from hdrh.histogram import HdrHistogram
from hdrh.log import HistogramLogWriter

from ..errors import LootlabError
from . import hist, limits, uncertainty
from .health import Health
from .runenv import _denum, _jsonable, _num
from .units import pick_unit, plain_number, plural

TABLE_PERCENTILES = (50.0, 90.0, 99.0, 99.9, 99.99, 100.0)
# latency: from the intended send time, less the generator's own provable lateness;
# observed: the same as timed, that error included; queue: the part of the wait before
# sending that the system caused (``summary``)
METRICS = ("latency", "service", "send_lag", "errors", "generator_lag", "observed", "queue")
FORMAT = "lootlab-loadresult/1"


@dataclass(repr=False)
class LoadResult:
    """One run, merged across workers.  Histogram values are integer nanoseconds."""

    variant: str
    schedule: dict[str, Any]
    processes: int
    concurrency: int
    warmup: float
    duration: float
    latency: HdrHistogram
    service: HdrHistogram
    send_lag: HdrHistogram
    errors: HdrHistogram
    generator_lag: HdrHistogram
    intervals: list[HdrHistogram]
    offered_per_s: list[int]
    completed_per_s: list[int]
    counts: dict[str, int]
    offered_rate: float
    achieved_rate: float
    cpu_s: float
    wall_s: float
    busy: list[float]
    health: Health
    worker_requests: list[int] = field(default_factory=list)
    first_error: str = ""
    env: dict[str, Any] = field(default_factory=dict)
    completed_total: int = 0                 # answers over the whole run, warm-up included
    achieved_total_per_s: float = math.nan   # completed_total over the whole run's span
    window: str = "measured"                 # or "warm-up only": nothing else was measured
    split: dict[str, int] = field(default_factory=dict)  # the client's call split (loadgen.split)
    server: dict[str, Any] = field(default_factory=dict)  # the server's CPU: loadgen.serverload
    # the network and CPU limit it ran under, and the cgroup's counters (loadgen.limits)
    conditions: dict[str, Any] = field(default_factory=lambda: limits.conditions(None, None))
    throttle: dict[str, Any] | None = None
    # as timed, the generator's own lateness included, and the system's queue (``summary``);
    # a result built without them (saved before they existed) has latency as observed
    observed: HdrHistogram | None = None
    queue: HdrHistogram | None = None
    # whether ``latency`` has the generator's own lag taken out (not under a CPU limit,
    # nor in results saved before it was)
    lag_subtracted: bool = True

    def __post_init__(self) -> None:
        if self.observed is None:
            self.observed = hist.merge([self.latency])
        if self.queue is None:
            self.queue = hist.new_histogram()

    def __repr__(self) -> str:
        return (f"LoadResult(variant={self.variant!r}, schedule={self.schedule.get('label')!r}, "
                f"requests={self.requests:,}, p50={self.latency_us(50):,.1f} us, "
                f"p99={self.latency_us(99):,.1f} us, valid={self.health.valid})")

    # ---- percentiles ------------------------------------------------------------------
    @property
    def open_loop(self) -> bool:
        return self.schedule.get("kind") != "closed"

    def histogram(self, metric: str = "latency") -> HdrHistogram:
        if metric not in METRICS:
            raise LootlabError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
        return getattr(self, metric)

    def percentile_us(self, p: float, metric: str = "latency") -> float:
        return float(hist.percentiles(self.histogram(metric), [p])[0]) / 1e3

    def latency_us(self, p: float) -> float:
        """Latency at percentile ``p`` in microseconds (open loop: from the intended send)."""
        return self.percentile_us(p, "latency")

    def service_us(self, p: float) -> float:
        return self.percentile_us(p, "service")

    def send_lag_us(self, p: float) -> float:
        return self.percentile_us(p, "send_lag")

    def percentile_ci_us(self, p: float, metric: str = "latency",
                         confidence: float = 0.95) -> tuple[float, float]:
        """(lo, hi) interval of percentile ``p`` in microseconds, from order statistics
        (binomial ranks, distribution-free); (nan, nan) when fewer than 10 samples lie
        above ``p``.  Assumes independent samples, so it understates the real uncertainty."""
        est = uncertainty.estimate(self.histogram(metric), [p], confidence)
        return float(est["ci_low"][0]) / 1e3, float(est["ci_high"][0]) / 1e3

    def latency_ci_us(self, p: float, confidence: float = 0.95) -> tuple[float, float]:
        """95 % (by default) interval of the latency percentile ``p``, in microseconds."""
        return self.percentile_ci_us(p, "latency", confidence)

    def samples(self, metric: str = "latency") -> int:
        """How many values the merged histogram holds (the n behind every percentile)."""
        return int(self.histogram(metric).get_total_count())

    @property
    def requests(self) -> int:
        return int(self.counts.get("measured", 0))

    def lag_bound_us(self, p: float) -> float:
        """The generator's own send error at percentile ``p`` (us): the instrument's
        resolution.  Taken out of ``latency`` (which ``observed`` still holds), except under
        a CPU limit, where it bounds how much the generator can have inflated it."""
        return self.percentile_us(p, "generator_lag") if self.open_loop else 0.0

    def generator_error_us(self, p: float = 99.0) -> float:
        """The generator's own send error at percentile ``p`` (us): a sender free to send
        and still late.  How fine the instrument was in this run."""
        return self.lag_bound_us(p)

    def tail_causes(self) -> list[str]:
        """What the kernel saw during the run that explains a tail, in words (TCP timers,
        CPU starvation: ``loadgen.tails``); empty when nothing notable."""
        from .tails import explain
        return explain(self.env.get("tails"), self.requests)

    @property
    def scheduling(self) -> str:
        """How the senders were scheduled (``loadgen.priority``): "SCHED_FIFO 1", ..."""
        return str(self.env.get("scheduling", ""))

    def split_us(self) -> dict[str, float]:
        """Mean microseconds per answered request of each part of its latency:
        ``send_wait`` (latency minus service time: the wait to be sent, queued behind
        earlier answers or a late generator), then the parts of the call from the client's
        call split (``loadgen.split``; a gRPC client's are client serialize, transport +
        TLS, server queue, server compute, client deserialize), or ``call`` (the whole
        service time) for a client that keeps none.  Means, because means add up to the mean
        latency and percentiles of parts do not."""
        if not self.latency.get_total_count():
            return {}
        service = self.service.get_mean_value() / 1e3
        out = {"send_wait": max(0.0, self.latency.get_mean_value() / 1e3 - service)}
        from .split import means_us

        parts = means_us(self.split)
        return {**out, **parts} if parts else {**out, "call": service}

    @property
    def generator_cpu(self) -> float:
        """Generator CPU in cores (process CPU seconds / wall seconds, summed over workers)."""
        return self.cpu_s / self.wall_s if self.wall_s else math.nan

    # ---- tables -----------------------------------------------------------------------
    def to_frame(self, percentiles=TABLE_PERCENTILES,
                 metrics=("latency", "service", "send_lag"),
                 confidence: float = 0.95) -> pd.DataFrame:
        """Tidy rows: variant, schedule, rate, metric, percentile, latency_us, n, ci_low_us,
        ci_high_us, enough (+ context: rtt_ms, cpu_limit, throttled_periods, throttled_ms).
        Where fewer than 10 samples lie above a percentile, ``enough`` is False and
        latency_us and the interval are NaN (max keeps its value)."""
        rows = []
        conds = limits.frame_fields(self.conditions, self.throttle)
        for metric in metrics:
            est = uncertainty.estimate(self.histogram(metric), list(percentiles), confidence)
            for i, p in enumerate(percentiles):
                rows.append({"variant": self.variant, "schedule": self.schedule.get("kind"),
                             "rate": self.offered_rate, "achieved_rate": self.achieved_rate,
                             "processes": self.processes, "concurrency": self.concurrency,
                             "valid": self.health.valid, "metric": metric,
                             "percentile": float(p), "latency_us": est["value"][i] / 1e3,
                             "n": int(est["n"][i]), "ci_low_us": est["ci_low"][i] / 1e3,
                             "ci_high_us": est["ci_high"][i] / 1e3,
                             "enough": bool(est["enough"][i]), **conds})
        return pd.DataFrame(rows)

    def table(self) -> pd.DataFrame:
        """Percentile x metric, in microseconds (what the CLI prints), with the latency's
        95 % interval (ci_low_us, ci_high_us) and the sample count n; NaN where the tail
        holds fewer than 10 samples."""
        frame = self.to_frame()
        t = frame.pivot(index="percentile", columns="metric", values="latency_us")
        keep = ("latency", "service", "send_lag") if self.open_loop else ("latency",)
        t = t[[m for m in keep if m in t.columns]]
        t.columns = [f"{c}_us" for c in t.columns]
        lat = frame[frame.metric == "latency"].set_index("percentile")
        t.insert(1, "ci_low_us", lat["ci_low_us"])
        t.insert(2, "ci_high_us", lat["ci_high_us"])
        t["n"] = lat["n"]
        t.index = [("max" if p == 100 else f"p{p:g}") for p in t.index]
        return t

    def timeline(self) -> pd.DataFrame:
        """One row per second of the measured window: offered, completed, p50/p99/max."""
        rows = []
        for s, h in enumerate(self.intervals):
            p50, p99, pmax = hist.percentiles(h, [50, 99, 100]) / 1e3
            rows.append({"variant": self.variant, "second": s,
                         "offered": self.offered_per_s[s] if s < len(self.offered_per_s)
                         else np.nan,
                         "completed": self.completed_per_s[s]
                         if s < len(self.completed_per_s) else np.nan,
                         "count": h.get_total_count(), "p50_us": p50, "p99_us": p99,
                         "max_us": pmax})
        return pd.DataFrame(rows)

    def spectrum(self, metric: str = "latency") -> pd.DataFrame:
        """The percentile spectrum: percentile, latency_us, x = 1/(1-p) for plotting, and
        n, ci_low_us, ci_high_us, enough (False in the tail above the last 10 samples,
        where latency_us is the raw value, drawn grey, and the interval NaN)."""
        ps, values = hist.spectrum(self.histogram(metric))
        est = uncertainty.estimate(self.histogram(metric), ps)
        with np.errstate(divide="ignore"):
            x = 1.0 / (1.0 - ps / 100.0)
        return pd.DataFrame({"variant": self.variant, "metric": metric, "percentile": ps,
                             "x": x, "latency_us": values / 1e3, "n": est["n"],
                             "ci_low_us": est["ci_low"] / 1e3,
                             "ci_high_us": est["ci_high"] / 1e3, "enough": est["enough"]})

    def summary(self) -> dict[str, Any]:
        """Scalars for a one-line record (sweeps, reports)."""
        lat = hist.percentiles(self.latency, [50, 90, 99, 99.9, 100]) / 1e3
        return {"variant": self.variant, "schedule": self.schedule.get("kind"),
                "label": self.schedule.get("label"), "rate": self.offered_rate,
                "achieved_rate": self.achieved_rate, "processes": self.processes,
                "concurrency": self.concurrency, "requests": self.requests,
                "p50_us": lat[0], "p90_us": lat[1], "p99_us": lat[2], "p999_us": lat[3],
                "max_us": lat[4], "service_p99_us": self.service_us(99),
                "send_lag_p99_us": self.send_lag_us(99),
                "generator_lag_p99_us": self.percentile_us(99, "generator_lag"),
                "generator_error_p99_us": self.generator_error_us(99),
                "observed_p99_us": self.percentile_us(99, "observed"),
                "queue_p99_us": self.percentile_us(99, "queue"),
                "saturated": bool(self.health.saturated),
                "capacity_per_s": self.health.capacity_per_s,
                "scheduling": self.scheduling,
                "tail_causes": "; ".join(self.tail_causes()),
                "errors": self.counts["failed"],
                "timeouts": self.counts["timeouts"], "unsent": self.counts["unsent"],
                "generator_cpu": self.generator_cpu, "busy_max": max(self.busy, default=0.0),
                "valid": self.health.valid, "bottleneck": self.health.bottleneck,
                "lag_bound_p99_us": self.lag_bound_us(99), "window": self.window,
                "completed_total": self.completed_total,
                "server_cores": self.server.get("cores", math.nan),
                "server_cpu_per_request_us": self.server.get("cpu_per_request_us", math.nan),
                "achieved_total_per_s": self.achieved_total_per_s,
                **limits.frame_fields(self.conditions, self.throttle),
                **uncertainty.summary_fields(self.latency)}

    def describe(self) -> str:
        """What ran, rates, CPU, warm-up, verdict; each line in the time unit that fits it."""
        c = self.counts
        lines = [(f"{self.variant}: {self.schedule.get('label')} for {self.duration:g} s, "
                  f"{plural(self.processes, 'process', 'processes')} x "
                  f"{plural(self.concurrency, 'sender')}")]
        if self.open_loop:
            lag = (self.send_lag_us(99), self.percentile_us(99, "queue"),
                   self.generator_error_us(99))
            unit = pick_unit(lag, log=True)
            lines.append(f"offered {self.offered_rate:,.0f}/s, achieved "
                         f"{self.achieved_rate:,.0f}/s; sent {c['measured']:,} of "
                         f"{c['scheduled']:,} scheduled; send lag p99 {unit.format(lag[0])}: "
                         f"the system's queue {unit.format(lag[1])}, the generator's own "
                         f"error {unit.format(lag[2])} (senders: "
                         f"{self.scheduling or 'default scheduling'})")
        else:
            lines.append(f"closed loop: {c['measured']:,} requests, "
                         f"{self.achieved_rate:,.0f}/s")
        lines.append(f"errors {c['failed']:,}, timeouts {c['timeouts']:,}; warm-up "
                     f"{self.warmup:g} s ({c['warmup_requests']:,} requests) discarded; "
                     f"generator CPU {self.generator_cpu:.2f} cores")
        est = uncertainty.estimate(self.latency, [50.0, 99.0, 99.9])
        lines.append(f"latency (95 % intervals, n={self.samples():,}): "
                     + _estimates_text(est, ["p50", "p99", "p99.9"]))
        split = self.split_us()
        if split:
            unit = pick_unit(list(split.values()), log=True)
            lines.append(f"mean latency split ({unit.name}): " + ", ".join(
                f"{part.replace('_', ' ')} {plain_number(unit.scale(us))}"
                for part, us in split.items()))
        lines.append(limits.describe(self.conditions, self.throttle))
        lines.append(f"health: {self.health}")
        return "\n".join(lines)

    # ---- disk -------------------------------------------------------------------------
    def save(self, directory: str | Path | None = None) -> Path:
        """Write ``summary.json`` (scalars + encoded histograms) and ``latency.hlog`` (the
        per-second latency histograms in HdrHistogram's log format) into ``directory``
        (default: a new folder under ``data/results/loadgen``)."""
        if directory is None:
            from ..paths import results_dir
            stamp = time.strftime("%Y%m%dT%H%M%S")
            directory = results_dir() / "loadgen" / \
                f"{self.variant}-{self.schedule.get('kind')}-{stamp}-{os.getpid()}"
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        doc = {"format": FORMAT, "variant": self.variant, "schedule": _jsonable(self.schedule),
               "processes": self.processes, "concurrency": self.concurrency,
               "warmup": self.warmup, "duration": self.duration,
               "histograms": {m: hist.encode(self.histogram(m)) for m in METRICS},
               "intervals": [hist.encode(h) for h in self.intervals],
               "offered_per_s": list(map(int, self.offered_per_s)),
               "completed_per_s": list(map(int, self.completed_per_s)),
               "counts": self.counts, "offered_rate": _num(self.offered_rate),
               "achieved_rate": _num(self.achieved_rate), "cpu_s": self.cpu_s,
               "wall_s": self.wall_s, "busy": self.busy, "health": self.health.to_dict(),
               "worker_requests": self.worker_requests,
               "first_error": self.first_error, "env": self.env,
               "completed_total": self.completed_total, "window": self.window,
               "achieved_total_per_s": _num(self.achieved_total_per_s),
               "split": self.split, "server": _jsonable(self.server),
               "conditions": self.conditions, "throttle": self.throttle,
               "lag_subtracted": self.lag_subtracted,
               "summary": _jsonable(self.summary())}
        tmp = directory / ".summary.json.tmp"
        tmp.write_text(json.dumps(doc, indent=1))
        os.replace(tmp, directory / "summary.json")
        with open(directory / "latency.hlog", "w") as f:
            log = HistogramLogWriter(f)
            log.output_comment(f"[lootlab loadgen: {self.variant} {self.schedule.get('label')}"
                               f", latency from intended send time, values in ns]")
            log.output_log_format_version()
            log.output_legend()
            for s, h in enumerate(self.intervals):
                if h.get_total_count():
                    log.output_interval_histogram(h, float(s), float(s + 1), 1e6)
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> "LoadResult":
        """A result ``save`` wrote (a run directory holds them: ``experiments.rundir``)."""
        path = Path(directory) / "summary.json"
        try:
            doc = json.loads(path.read_text())
        except FileNotFoundError:
            raise LootlabError(f"{path}: no saved load result here (expected summary.json)") \
                from None
        if doc.get("format") != FORMAT:
            raise LootlabError(f"{path}: not a lootlab load result (format "
                               f"{doc.get('format')!r})")
        # saved before latency and observed were told apart: observed is what was saved
        h = {m: hist.decode(doc["histograms"][m]) for m in METRICS if m in doc["histograms"]}
        return cls(variant=doc["variant"], schedule=doc["schedule"],
                   processes=doc["processes"], concurrency=doc["concurrency"],
                   warmup=doc["warmup"], duration=doc["duration"],
                   intervals=[hist.decode(b) for b in doc["intervals"]],
                   offered_per_s=doc["offered_per_s"], completed_per_s=doc["completed_per_s"],
                   counts=doc["counts"], offered_rate=_denum(doc["offered_rate"]),
                   achieved_rate=_denum(doc["achieved_rate"]), cpu_s=doc["cpu_s"],
                   wall_s=doc["wall_s"], busy=doc["busy"],
                   health=Health.from_dict(doc["health"]),
                   completed_total=doc.get("completed_total", 0),
                   achieved_total_per_s=_denum(doc.get("achieved_total_per_s")),
                   window=doc.get("window", "measured"), split=doc.get("split", {}),
                   server={k: _denum(v) for k, v in doc.get("server", {}).items()},
                   worker_requests=doc.get("worker_requests", []),
                   first_error=doc.get("first_error", ""), env=doc.get("env", {}),
                   conditions={**limits.conditions(None, None), **doc.get("conditions", {})},
                   throttle=doc.get("throttle"),
                   lag_subtracted=bool(doc.get("lag_subtracted", False)), **h)


def _estimates_text(est: dict[str, np.ndarray], labels: list[str]) -> str:
    """'p50 983 us [956, 1,020], p99.9 too few samples (n=400)' from
    ``uncertainty.estimate``, in the one unit that fits the estimates shown."""
    shown = np.asarray(est["enough"], dtype=bool)
    unit = pick_unit(*(est[k][shown] / 1e3 for k in ("value", "ci_low", "ci_high")), log=True)
    v, lo, hi = ([plain_number(unit.scale(x / 1e3)) for x in est[k]]
                 for k in ("value", "ci_low", "ci_high"))
    return ", ".join(f"{label} {v[i]} {unit.name} [{lo[i]}, {hi[i]}]" if shown[i] else
                     f"{label} too few samples (n={int(est['n'][i]):,})"
                     for i, label in enumerate(labels))
