"""A two-node Ray cluster on this machine (ray.cluster_utils.Cluster), for the multi-node test.

Run as a subprocess: prints `ADDRESS <gcs address>` once both nodes are up, then holds the cluster
until stdin closes (or SIGTERM), and shuts exactly these nodes down. Each node has 1 CPU, so two
1-CPU trials can only run at the same time on different nodes.
"""

import shutil
import signal
import sys
import tempfile


def main() -> int:
    from ray.cluster_utils import Cluster

    temp_dir = tempfile.mkdtemp(prefix="ts2n", dir="/tmp")  # short: Ray's socket paths are length-limited
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "num_gpus": 0, "temp_dir": temp_dir, "include_dashboard": False},
    )
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        cluster.add_node(num_cpus=1, num_gpus=0)
        cluster.wait_for_nodes(timeout=120)
        print(f"ADDRESS {cluster.address}", flush=True)
        sys.stdin.read()  # until the test closes our stdin
    finally:
        cluster.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
