"""Locust users for lootlab: load from many machines (Locust master/worker mode).

One user class per remote variant (``GrpcTlsPooledUser``, ...) and ``HttpNearUser`` for
the HTTP endpoint.  Each user sends the overlay query (``near`` around player positions,
r = 64, seeded) at a constant throughput of ``LOOTLAB_LOCUST_RATE`` requests/s per user,
so the offered load is users x rate whatever the latency (as long as every user keeps up).

    # one machine, headless
    LOOTLAB_TARGET=host:50051 LOOTLAB_CA=ca.pem \\
      locust -f lootlab/locustfile.py --headless -u 50 -r 50 -t 60s GrpcTlsPooledUser
    # many machines: one master ...
    locust -f lootlab/locustfile.py --master --headless --expect-workers 4 -u 200 -r 50 -t 5m
    # ... and on every load machine, one worker per core
    LOOTLAB_TARGET=host:50051 LOOTLAB_CA=ca.pem \\
      locust -f lootlab/locustfile.py --worker --master-host MASTER GrpcTlsPooledUser

Environment: ``LOOTLAB_TARGET`` (gRPC host:port; unset = a loopback server per worker),
``LOOTLAB_CA`` (CA PEM for the TLS variants), ``LOOTLAB_LOCUST_RATE`` (per-user req/s,
default 10), ``LOOTLAB_LOCUST_QUERIES`` (workload size, default 4096),
``LOOTLAB_LOCUST_REPORT`` (master: write requests per worker as JSON there at exit).

Locust keeps response times in whole milliseconds below 100 ms (then 2 significant
digits), so its percentiles cannot show sub-millisecond figures: use ``lootlab bench``
/ ``loadgen.run`` (HDR histograms in ns) for those; Locust is for spreading load.
"""

from __future__ import annotations

import itertools
import json
import os
import time
from collections import defaultdict

from locust import HttpUser, User, constant_throughput, events, task

try:  # grpcio blocks gevent's loop unless told about it (Locust runs users on gevent)
    import grpc.experimental.gevent as _grpc_gevent
    _grpc_gevent.init_gevent()
except ImportError:  # pragma: no cover - grpcio is a dependency
    pass

RATE = float(os.environ.get("LOOTLAB_LOCUST_RATE", "10"))
_QUERIES = None


def _queries():
    """The overlay workload (built on first use: the default index is deterministic, so
    every machine draws the same positions)."""
    global _QUERIES
    if _QUERIES is None:
        from lootlab.targets import default_workload
        n = int(os.environ.get("LOOTLAB_LOCUST_QUERIES", "4096"))
        _QUERIES = default_workload(n).tolist()
    return _QUERIES


class _LootUser(User):
    """Calls ``near`` through one lootlab client and reports each call to Locust."""

    abstract = True
    variant = ""
    wait_time = constant_throughput(RATE)

    def on_start(self) -> None:
        from lootlab.remote.endpoint import Endpoint
        from lootlab.targets import connect
        from lootlab.variants import get
        variant = get(self.variant)
        target = os.environ.get("LOOTLAB_TARGET")
        where = None
        if target and variant.remote:
            where = Endpoint(target, tls=variant.tls, ca=os.environ.get("LOOTLAB_CA") or None)
        self.loot = connect(variant, where)
        queries = _queries()
        start = hash((id(self), time.monotonic_ns())) % len(queries)
        self.queries = itertools.cycle(queries[start:] + queries[:start])

    def on_stop(self) -> None:
        self.loot.close()

    @task
    def near(self) -> None:
        x, y, z, r = next(self.queries)
        t = time.perf_counter()
        exc, n = None, 0
        try:
            n = len(self.loot.near(x, y, z, r))
        except Exception as e:  # noqa: BLE001 - Locust counts it as a failure
            exc = e
        self.environment.events.request.fire(
            request_type=self.variant, name="near", response_time=(time.perf_counter() - t) * 1e3,
            response_length=n, exception=exc, context={})


class GrpcTlsFreshUser(_LootUser):
    variant = "grpc-tls-fresh"


class GrpcTlsResumedUser(_LootUser):
    variant = "grpc-tls-resumed"


class GrpcTlsPooledUser(_LootUser):
    variant = "grpc-tls-pooled"


class GrpcTlsPackedUser(_LootUser):
    variant = "grpc-tls-packed"


class GrpcPlainUser(_LootUser):
    variant = "grpc-plain"


class HttpNearUser(HttpUser):
    """The player-facing HTTP endpoint (``lootlab serve --http``); give ``--host``."""

    wait_time = constant_throughput(RATE)

    def on_start(self) -> None:
        self.queries = itertools.cycle(_queries())

    @task
    def near(self) -> None:
        x, y, z, r = next(self.queries)
        self.client.get("/near", params={"x": x, "y": y, "z": z, "r": r, "limit": 100},
                        name="/near")


# --- master side: requests per worker, so a test (or a person) can see who sent what
_PER_WORKER: dict[str, int] = defaultdict(int)


@events.worker_report.add_listener
def _on_worker_report(client_id: str, data: dict, **_: object) -> None:
    _PER_WORKER[client_id] += int(data.get("stats_total", {}).get("num_requests", 0))


@events.quitting.add_listener
def _on_quitting(environment, **_: object) -> None:
    path = os.environ.get("LOOTLAB_LOCUST_REPORT")
    if not path or environment.runner is None or \
            type(environment.runner).__name__ != "MasterRunner":
        return
    total = environment.stats.total
    with open(path, "w") as f:
        json.dump({"per_worker": dict(_PER_WORKER), "requests": total.num_requests,
                   "failures": total.num_failures}, f)
