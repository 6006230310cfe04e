"""Run an `llm` pool over a simulated two-node Ray cluster, kill the engine on the node without the
driver and run again; print a JSON summary on the last line.

Launched in a subprocess by test_cluster.py because it needs its own Ray instance.
Usage: python two_node_cluster.py MODEL_DIR
"""

from __future__ import annotations

import json
import sys
import time


def main(model: str) -> None:
    import ray
    from ray.cluster_utils import Cluster

    from got_data.engines.config import PoolConfig
    from got_data.engines.pool import ModelPool
    from got_data.engines.types import ModelRequest

    node_args = {"num_cpus": 1, "object_store_memory": 150 * 1024**2}
    cluster = Cluster(initialize_head=True, head_node_args={**node_args, "include_dashboard": False})
    cluster.add_node(**node_args)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False)
    try:
        pool = ModelPool.start(PoolConfig(role="llm", model=model, num_actors=2, max_model_len=512,
                                          max_in_flight_per_actor=16))
        requests = [ModelRequest(id=f"c{i}", messages=[{"role": "user", "content": f"Say {i}."}], max_tokens=8)
                    for i in range(64)]
        responses = pool.generate_many(requests)
        stats = pool.stats()
        # The engine on the node without the driver dies; the next requests go to the survivor or wait for
        # the replacement, which can only start where a CPU came free: on that same other node.
        driver_node = ray.get_runtime_context().get_node_id()
        [victim] = [slot for slot, row in zip(pool.actors(), stats["actors"]) if row["node_id"] != driver_node]
        ray.kill(victim, no_restart=True)
        again = pool.generate_many([ModelRequest(id=f"d{i}", messages=[{"role": "user", "content": f"Say {i}."}],
                                                 max_tokens=8) for i in range(64)])
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not all(a["live"] for a in pool.stats()["actors"]):
            time.sleep(0.5)
        after = pool.stats()
        pool.shutdown()
        summary = {
            "cluster_nodes": len([n for n in ray.nodes() if n["Alive"]]),
            "actor_nodes": [a["node_id"] for a in stats["actors"]],
            "completed_per_actor": [a["completed"] for a in stats["actors"]],
            "ids": [r.id for r in responses],
            "ok": sum(r.ok for r in responses),
            "driver_node": driver_node,
            "after_kill_ok": sum(r.ok for r in again),
            "nodes_after_replacement": [a["node_id"] for a in after["actors"]],
            "live_after_replacement": [a["live"] for a in after["actors"]],
            "restarts": [a["restarts"] for a in after["actors"]],
        }
    finally:
        ray.shutdown()
        cluster.shutdown()
    print(json.dumps(summary))


if __name__ == "__main__":
    main(sys.argv[1])
