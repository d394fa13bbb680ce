# Convergence under chaos: 5 real sidecars (ring, star) behind fault proxies, app writes at 10/s, SIGKILLs and link cuts, then converge within 30 s with every acknowledged write.
import os
import time

import pytest

import faults_db
from chaos_cluster import AppWriter, Chaos, Cluster, check_acknowledged, wait_converged
from conftest import LONG
from sidecar_helpers import wait_until

PEERS = 5
RATE = 10            # app writes a second, all devices together
CONVERGE_S = 30      # the requirement, once faults stop
SEEDS = {"ring": 5101, "star": 5202}


@pytest.mark.parametrize("topology", ["ring", "star"])
def test_five_sidecars_converge_under_chaos(devices, reliability, topology):
    seed = int(os.environ.get("PEERSYNC_SEED", SEEDS[topology]))
    seconds = int(os.environ.get("PEERSYNC_CHAOS_SECONDS", 120 if LONG else 60))
    print(f"seed {seed} (PEERSYNC_SEED), {topology}, {seconds} s")
    cluster = Cluster(devices, PEERS, topology, seed)
    writer = AppWriter(cluster.devs, RATE, seed)
    chaos = Chaos(cluster, seed)
    try:
        for i in range(PEERS):
            cluster.start(i)
        writer.start()
        try:
            chaos.run(seconds)
        finally:
            writer.stop()
        chaos.heal()
        origins = {cluster.devs[w.device].id for w in writer.acks}
        # Measured up to twice the requirement, so a failure says how long it really took.
        took = wait_converged(cluster.devs, origins, timeout=2 * CONVERGE_S)
        proxied = sum(p.stats["connections"] for p in cluster.hub.proxies)
        resets = sum(p.stats["resets"] for p in cluster.hub.proxies)
        deletes = sum(w.op == "delete" for w in writer.acks)
        once = sum(w.key.startswith("o") for w in writer.acks)
        reliability.record(
            "convergence under chaos",
            f"{PEERS} sidecars in a {topology} behind fault proxies; app writes at {RATE}/s (inserts, "
            f"updates, deletes on {writer.shared} shared keys + write-once keys) for {seconds} s while "
            "sidecars are SIGKILLed/restarted and links refused, reset, stalled or cut mid-stream",
            peers=PEERS, topology=topology, seconds=seconds, seed=seed, writes=len(writer.acks),
            write_once=once, deletes=deletes, kills=chaos.kills, link_cuts=chaos.link_cuts,
            cut_modes=" ".join(f"{m}={n}" for m, n in sorted(chaos.modes.items())),
            proxied_connections=proxied, connections_reset=resets,
            converged_in_s=took if took is not None else f"not within {2 * CONVERGE_S}")
        assert proxied > 0 and resets > 0, "no traffic went through the fault proxies"
        assert not writer.failures, f"app writes failed: {writer.failures[:5]}"
        assert chaos.kills >= 5 and chaos.link_cuts >= 5, "the scheduler injected too few faults to mean anything"
        assert took is not None and took <= CONVERGE_S, (
            f"not converged within {CONVERGE_S} s after faults stopped (took {took})\n{cluster.log_tails()}")
        check_acknowledged(cluster.devs, writer.acks)
        for d in cluster.devs:
            faults_db.assert_intact(d.db, d.name)
            assert d.sql("SELECT count(*) FROM sync_conflicts WHERE status = 'pending'")[0][0] == 0
        # Every sidecar's every link is healthy again in its own eyes (no peer left in backoff).
        failing = lambda: {f"{d.name} {k}": v for d in cluster.devs for k, v in d.metrics().items()
                           if k.startswith("peersync_peer_consecutive_failures") and v}
        wait_until(lambda: not failing(), timeout=15, what="no peer failing", every=0.5)
        alarms = cluster.alarms()
        assert not alarms, "\n".join(alarms[:20])
        for i in range(PEERS):
            assert cluster.running(i), f"{cluster.devs[i].name} died:\n{cluster.log_tails()}"
    finally:
        if writer.is_alive():
            writer.halt.set()
        cluster.close()
