"""Run a `tokensweep` command on a cluster's head node with `ray submit`.

    ray submit --tmux platform/cluster/aws-gpu.yaml platform/cluster/sweep.py -- \
        run /home/ray/tokensweep/platform/sweeps/paper-table6.toml --address auto \
        --storage s3://YOUR-BUCKET/ray_results --tracking-uri http://YOUR-MLFLOW:5000

`ray submit` uploads this file to the head and runs it with the head's Python, which (in the
tokensweep image) has the project installed; the arguments are those of the `tokensweep` CLI.
"""

import sys

from tokensweep.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
