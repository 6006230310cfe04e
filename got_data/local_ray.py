"""Start a single-machine Ray that nothing outside the machine can reach.

A local run has no reason to be reachable from the network, yet a plain `ray.init()` binds the GCS,
the raylet, every worker's gRPC server and vLLM's own sockets to all interfaces, with Ray's token as
the only guard against code execution on the host. Here every one of them binds to loopback:
- Ray advertises the loopback address as the node IP only when it is not in cluster mode (its
  `RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER` switch, read once at import): we set that switch for the
  processes Ray starts and for this one, which imported Ray already;
- vLLM reads `VLLM_HOST_IP` / `VLLM_LOOPBACK_IP` for the addresses its engines listen on.
Ray's token authentication stays as Ray sets it (on by default): we never turn it off, and refuse to
start a local Ray when the environment does (`RAY_AUTH_MODE` other than `token`). Joining a real
cluster (`--ray-address`) does not come here; `docs/SECURITY.md` says how to secure one.
`tests/security/test_local_ray.py` checks that no listening socket of a local run is on another address.
"""

from __future__ import annotations

import os
from typing import Any

from got_data.errors import LocalRayError

LOOPBACK = "127.0.0.1"
AUTH_MODE_VARIABLE = "RAY_AUTH_MODE"  # Ray's switch: unset (token auth on for a new local cluster), token, disabled
LOOPBACK_ENV = {
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    "VLLM_HOST_IP": LOOPBACK,
    "VLLM_LOOPBACK_IP": LOOPBACK,
}


def start_local_ray(num_cpus: int, object_store_memory: int, **kwargs: Any) -> None:
    """`ray.init` of a new local instance bound to loopback, without the dashboard, with Ray's token
    authentication on; raises LocalRayError when the environment switches it off. Always a new
    instance (`address="local"`): left to itself, `ray.init` joins whatever cluster RAY_ADDRESS or
    the last Ray's /tmp/ray/ray_current_cluster names, a stale or foreign one included."""
    mode = os.environ.get(AUTH_MODE_VARIABLE)
    if mode is not None and mode.strip().lower() != "token":
        raise LocalRayError(f"{AUTH_MODE_VARIABLE}={mode} would start the local Ray without token authentication, "
                            f"which got-data never does (docs/SECURITY.md): unset {AUTH_MODE_VARIABLE}")
    os.environ.update(LOOPBACK_ENV)
    import ray
    from ray._private import ray_constants

    ray_constants.ENABLE_RAY_CLUSTER = False  # this process read the switch at import
    ray.init(address="local", num_cpus=num_cpus, object_store_memory=object_store_memory, include_dashboard=False,
             log_to_driver=kwargs.pop("log_to_driver", False), _node_ip_address=LOOPBACK, **kwargs)
