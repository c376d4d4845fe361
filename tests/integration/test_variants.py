"""The Variant registry is the one seam: a new variant is one entry plus its client class,
and connect, loadgen.run (spawned workers) and the workload process all reach it through
``lootlab.targets``, which turns a variant and a server into a client factory."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

import lootlab
from lootlab import loadgen, variants
from lootlab.remote.endpoint import Endpoint
from lootlab.targets import client_factory
from lootlab.variants import ResolveError, UnknownVariantError

from _imports import imported
from _remote import same_records, small_index
from _toy_variant import TOY

TESTS = Path(__file__).resolve().parents[1]          # the helper modules (_toy_variant)
PACKAGE = TESTS.parent / "lootlab"


@pytest.fixture()
def toy_registered():
    variants.register(TOY)
    try:
        yield TOY
    finally:
        variants.REGISTRY.unregister(TOY.name)


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    return small_index(tmp_path_factory.mktemp("variants"), n=3_000, seed=5)


def test_variants_mapping_is_derived_from_the_registry(toy_registered):
    assert list(lootlab.VARIANTS) == [v.name for v in variants.REGISTRY]
    assert lootlab.VARIANTS["toy-in-memory"] == TOY.description
    assert lootlab.VARIANTS["grpc-tls-fresh"] == variants.get("grpc-tls-fresh").description
    facts = {v.name: (v.remote, v.tls, v.channel_per_call, v.resumption, v.packed)
             for v in variants.BUILTIN}
    assert facts == {
        "grpc-tls-fresh": (True, True, True, False, False),
        "grpc-tls-resumed": (True, True, True, True, False),
        "grpc-tls-pooled": (True, True, False, False, False),
        "grpc-tls-packed": (True, True, False, False, True),
        "grpc-plain": (True, False, False, False, False),
        "mmap": (False, False, False, False, False)}


def test_a_registered_variant_runs_through_connect(toy_registered, index):
    with lootlab.connect("toy-in-memory", index=index) as toy, \
            lootlab.connect("mmap", index=index) as mm:
        for rec in mm.index.sample(5, seed=2):
            x, y, z = int(rec["x"]), int(rec["y"]), int(rec["z"])
            assert same_records(toy.near(x, y, z, 24), mm.near(x, y, z, 24))
            assert toy.get(x, y, z) == mm.get(x, y, z)


def test_a_registered_variant_runs_under_loadgen_in_spawned_workers(toy_registered, index):
    workload = [[0, 64, 0, 16]] * 64
    res = loadgen.run(client_factory("toy-in-memory"), loadgen.constant(rate=200, duration=1.0),
                      processes=2, warmup=0.0, workload=workload)
    assert res.variant == "toy-in-memory"
    assert res.counts["ok"] == res.requests > 0 and res.counts.get("failed", 0) == 0
    # the factory carried the Variant by value: the workers never had it registered
    assert pickle.loads(pickle.dumps(client_factory("toy-in-memory"))).variant == TOY


def test_a_variant_published_as_an_entry_point_reaches_the_workload_process(tmp_path, index):
    dist = tmp_path / "site" / "lootlab_toy-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: lootlab-toy\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[lootlab.variants]\ntoy-in-memory = _toy_variant:TOY\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path / "site"), str(TESTS)]))
    proc = subprocess.run([sys.executable, "-m", "lootlab.workload", "--variant", "toy-in-memory",
                           "--index", str(index), "--queries", "50", "--warmup", "5"],
                          capture_output=True, text=True, env=env, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["variant"] == "toy-in-memory" and summary["ops"] == 50
    with lootlab.open_index(index) as idx:          # the workload's answers were real
        assert summary["records"] > 0 and summary["records"] <= 50 * len(idx)


def test_unknown_names_and_options_are_named(index):
    with pytest.raises(UnknownVariantError, match="unknown variant 'grpc-udp'.*mmap"):
        client_factory("grpc-udp")
    with pytest.raises(lootlab.LootlabError, match="does not take option.*target"):
        client_factory("mmap", target="127.0.0.1:1")
    with pytest.raises(lootlab.LootlabError, match="speaks TLS.*plaintext"):
        client_factory("grpc-tls-pooled", Endpoint("127.0.0.1:1", tls=False))
    with pytest.raises(ResolveError, match="without target"):
        client_factory("grpc-tls-pooled", ca="/x/ca.pem")


def test_a_local_variant_reads_its_index_whatever_server_an_experiment_hands_it(index):
    """One server is handed to every variant of an experiment; the local one has none."""
    plain = client_factory("mmap", index=str(index))
    assert client_factory("mmap", Endpoint("127.0.0.1:1", tls=False), index=str(index)) == plain
    assert dict(plain.options) == {"index": str(index)} and plain.endpoint is None
    assert plain.server_stats() == {}


def test_an_endpoint_gives_tls_files_only_to_tls_variants():
    ep = Endpoint("127.0.0.1:7", tls=True, ca="/x/ca.pem")
    assert dict(client_factory("grpc-tls-pooled", ep).options) == {"target": "127.0.0.1:7",
                                                             "ca": "/x/ca.pem"}
    assert client_factory("grpc-tls-fresh", ep, timeout=2.0).endpoint == ep
    plain = Endpoint("127.0.0.1:8", tls=False, ca="/x/ca.pem")
    assert dict(client_factory("grpc-plain", plain).options) == {"target": "127.0.0.1:8"}


def test_the_remote_layer_never_imports_the_clients():
    for path in (PACKAGE / "remote").glob("*.py"):
        assert "lootlab.clients" not in imported(path, top_level_only=False), path.name


def test_the_registry_is_plain_data():
    """Naming a variant starts nothing: the registry reaches no server, proxy or client
    (its openers are imported by name when a client is opened)."""
    assert imported(PACKAGE / "variants.py", top_level_only=False) == {"lootlab.errors"}


def test_no_code_outside_the_registry_tests_a_variant_name_by_prefix():
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "variants.py":
            continue
        text = path.read_text()
        for needle in ('startswith("grpc', "startswith('grpc", '!= "mmap"',
                       '!= "grpc-plain"', '== "grpc-plain"'):
            if needle in text:
                offenders.append(f"{path.relative_to(PACKAGE)}: {needle}")
    assert offenders == []


def test_a_factory_records_its_network_and_keeps_the_servers_tls_facts():
    from lootlab.conditions import Network
    ep = Endpoint("localhost:9", tls=True, ca="/x/ca.pem")
    assert client_factory("grpc-tls-pooled", ep).network is None
    slow = client_factory("grpc-tls-pooled", ep, network={"rtt_ms": 3})
    opts = dict(slow.options)
    assert slow.network == Network(rtt_ms=3) and slow.upstream == "localhost:9"
    assert opts["ca"] == "/x/ca.pem" and opts["target"] != "localhost:9"
    assert opts["server_name"] == "localhost"      # the certificate names the server's host
    assert pickle.loads(pickle.dumps(slow)) == slow
    assert dict(slow.with_network(None).options) == dict(
        client_factory("grpc-tls-pooled", ep).options)
