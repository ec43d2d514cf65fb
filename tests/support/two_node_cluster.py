"""A two-node Ray cluster on this machine whose worker node can be removed on command.

Shared by tests/e2e/platform (trials spread over two nodes) and tests/e2e/reliability (a node lost). Run as a
subprocess: prints `ADDRESS <gcs address>` and `WORKER <node id>` once both 1-CPU nodes are up; a line
`remove` on stdin kills the worker node's processes (raylet, object store, its trial workers) without
a graceful drain - a machine lost - and prints `REMOVED`; end of stdin (or SIGTERM) shuts the rest down.
"""

import os
import shutil
import signal
import sys
import tempfile


def main() -> int:
    from ray.cluster_utils import Cluster

    temp_dir = tempfile.mkdtemp(prefix="ts2n", dir="/tmp")  # short: Ray's socket paths are length-limited
    # Cluster writes the head's address to $RAY_TMPDIR/ray/ray_current_cluster (default: the system temp
    # folder), which fails where that folder does not exist yet and would redirect other people's
    # `ray.init("auto")` to this test cluster where it does: keep the file in this cluster's own folder.
    os.environ["RAY_TMPDIR"] = temp_dir
    os.makedirs(os.path.join(temp_dir, "ray"))
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "num_gpus": 0, "temp_dir": temp_dir, "include_dashboard": False,
                        "include_log_monitor": False},  # as sweep_helpers.RayHead: no test reads workers' output through a driver
    )
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        worker = cluster.add_node(num_cpus=1, num_gpus=0)
        cluster.wait_for_nodes(timeout=120)
        print(f"ADDRESS {cluster.address}", flush=True)
        print(f"HEAD {cluster.head_node.node_id}", flush=True)
        print(f"WORKER {worker.node_id}", flush=True)
        for line in sys.stdin:
            if line.strip() == "remove":
                cluster.remove_node(worker, allow_graceful=False)
                print("REMOVED", flush=True)
    finally:
        cluster.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
