"""Start a local Ray the way `got-data annotate` does, serve one request from a tiny vLLM engine, and
print (JSON, last line) every listening inet socket of this process and all its descendants, and whether
Ray's token authentication is on.

Launched in a subprocess by test_local_ray.py: it needs its own Ray instance.
Usage: python local_run_sockets.py MODEL_DIR
"""

from __future__ import annotations

import json
import sys

import psutil


def listening_sockets() -> list[dict]:
    found = []
    me = psutil.Process()
    for proc in [me, *me.children(recursive=True)]:
        try:
            conns = proc.net_connections(kind="inet")
            name = proc.name()
        except psutil.Error:
            continue  # a process that ended while we looked
        found += [{"pid": proc.pid, "name": name, "ip": c.laddr.ip, "port": c.laddr.port}
                  for c in conns if c.status == psutil.CONN_LISTEN]
    return found


def main(model: str) -> None:
    import ray

    from got_data.annotate.launch import init_ray
    from got_data.engines.config import PoolConfig
    from got_data.engines.pool import ModelPool
    from got_data.engines.types import ModelRequest

    init_ray(None, 1)
    from ray._private.authentication.authentication_utils import is_token_auth_enabled

    token_auth = is_token_auth_enabled()
    try:
        pool = ModelPool.start(PoolConfig(role="llm", model=model, max_model_len=512, max_in_flight_per_actor=4))
        answers = pool.generate_many([ModelRequest(id="a", messages=[{"role": "user", "content": "Hi."}], max_tokens=4)])
        sockets = listening_sockets()
        processes = len(psutil.Process().children(recursive=True))
        pool.shutdown()
    finally:
        ray.shutdown()
    print(json.dumps({"answered": sum(a.ok for a in answers), "processes": processes, "sockets": sockets,
                      "token_auth": token_auth}))


if __name__ == "__main__":
    main(sys.argv[1])
