"""Every shell command the docs show is run here, or listed with the reason it cannot run here.

Where commands come from: the ```bash blocks of README.md and docs/*.md, and the command lines
(`#   command`, indented by three spaces) of the comment headers of platform/sweeps/*.toml,
examples/*/sweep.toml, docker/Dockerfile and docker/compose.yaml. A trailing `# comment` is not part
of a command; a line ending in `\\` continues on the next.

`HOW` says what the test does with each, in the order it runs them:
- RUN: as written, with bash, in a work folder that looks like a checkout (the repository's folders
  linked in; what commands write lands there), the venv's bin first on PATH (as `source
  .venv/bin/activate` gives), Ray token authentication with the test session's token. `tokensweep
  run` honours $RAY_ADDRESS (its documented default when set, as inside `ray job submit`): it is set
  to one Ray head that this test starts the way docs/sweeps.md says (single-machine mode, every port
  on 127.0.0.1), so the sweeps share it instead of starting a local Ray each.
- SERVE: a server command, run as written plus `--port` (its default port may be taken on a shared
  machine; SERVER_PORTS) until it answers over HTTP, then stopped.
- VARIANT: what runs instead, and why (a GPU, ImageNet, a cluster's paths, or minutes of CPU); a
  smoke-sized command runs smaller (fewer steps or epochs) where what it is for survives.
- NOT_HERE: why it cannot run here at all, and which test covers what it does.
A command the docs gain without an entry here fails tests/unit/test_documented_commands.py, and so does
an entry the docs lost; tests/e2e/test_documented_commands_run.py runs them.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path


from helpers import ONE_AT_A_TIME, free_port, REPO

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
HEADERS = [*sorted((REPO / "platform" / "sweeps").glob("*.toml")), *sorted(REPO.glob("examples/*/sweep.toml")),
           REPO / "docker" / "Dockerfile", REPO / "docker" / "compose.yaml"]  # fmt: skip
LINKED = ("platform", "examples", "docker", "scripts", "benchmarks", "trials", "dashboards", "vocab", "tests",
          ".venv", "pyproject.toml", "constraints.txt", "README.md")  # fmt: skip

RUN, SERVE, VARIANT, NOT_HERE = "run", "serve", "variant", "not here"
GPU_CHECK = "needs a GPU (exits 2 with one line without one); tests/unit/benchmarks/test_gpu_check.py runs that exit and --cpu-dry-run"
IMAGENET = "needs your ImageNet-1k copy; tests/unit/trials/test_data.py and test_data_paths.py run it on a generated ImageNet layout"
CLUSTER = "a cluster's machines, paths and hosts"
PLAN_ON_GPU = ("a GPU node and ImageNet-100 for the calibration; tests/platform/test_plan_units.py::"
               "test_paper_table6_on_8_gpus_from_a_calibration_file writes such a file and plans paper-table6 on 8 GPUs from it")  # fmt: skip
SMOKE_DRY = " --smoke --dry-run"
# Smaller runs of the smoke-sized commands, each still doing what its command is for (train, checkpoint,
# resume, sweep, search, record, report): every epoch of a trial at a few steps, every sweep at one epoch
SHORT_TRIAL = " --max-steps-per-epoch 4 --tiny-val-per-class 10"
ONE_EPOCH = " --set trial.epochs=1"
# the sweeps after the first leave out what the first shows (the bench stage, system metrics, trials side by side:
# ~12 CPU-s of a 1-epoch smoke sweep's ~21 on a shared head)
LEAN = f" --set bench.enabled=false --set tracking.system_metrics=false --set {ONE_AT_A_TIME}"
EXAMPLE_SWEEP = ("tests/e2e/platform/test_sweep_shipped.py::test_a_users_embedding_sweeps_beside_the_built_ins runs the example's "
                 "sweep on the local Ray it starts (with --num-cpus 2 --quiet), then its dashboard, and checks both")  # fmt: skip
PAPER = "ImageNet-100 and a GPU per trial for days: validated shrunk to smoke size (--smoke --dry-run, the spec checked whole); tests/e2e/platform/test_sweep_shipped.py runs every shipped spec with --smoke"

# command -> (kind, detail); RUN/SERVE/VARIANT entries run in this order
HOW: dict[str, tuple[str, str]] = {
    # environment lines: run as written (they set a variable for the commands after them)
    "export TOKENSWEEP_DATA=/data/imagenet100": (RUN, ""),
    "export AWS_ENDPOINT_URL=http://minio.internal:9000": (RUN, ""),
    "export AWS_ACCESS_KEY_ID=...": (RUN, ""),
    "export AWS_SECRET_ACCESS_KEY=...": (RUN, ""),
    "export AWS_DEFAULT_REGION=us-east-1": (RUN, ""),
    "export RAY_AUTH_MODE=token": (RUN, ""),
    "source .venv/bin/activate": (RUN, ""),
    "cp docker/env.example .env": (RUN, ""),
    "set -a; . ./.env; set +a": (RUN, ""),
    # one trial, data, models
    "tokensweep trial --smoke": (VARIANT, "tokensweep trial --smoke" + SHORT_TRIAL),
    "tokensweep trial --smoke --checkpoint-dir ckpt/ --epochs 2 --log epochs.jsonl": (
        VARIANT, "tokensweep trial --smoke --checkpoint-dir ckpt/ --epochs 2 --log epochs.jsonl" + SHORT_TRIAL),
    "tokensweep trial --smoke --resume ckpt/ --checkpoint-dir ckpt/ --epochs 4": (
        VARIANT, "tokensweep trial --smoke --resume ckpt/ --checkpoint-dir ckpt/ --epochs 4" + SHORT_TRIAL),
    "tokensweep data tiny --out data/tiny": (RUN, ""),
    "tokensweep bench vit_s_patch vit_s_conv vit_s_supertoken --batch 64 --threads 2 --out bench.csv": (
        VARIANT, "tokensweep bench vit_s_patch vit_s_conv vit_s_supertoken --batch 2 --warmup 0 --steps 1 --threads 2 --out bench.csv",
    ),  # ViT-S at batch 64: ~150 s on 2 cores; the same models, flags and CSV at batch 2
    # sweeps, on the shared head through $RAY_ADDRESS
    "tokensweep run platform/sweeps/smoke.toml": (VARIANT, "tokensweep run platform/sweeps/smoke.toml" + ONE_EPOCH),
    ".venv/bin/tokensweep run platform/sweeps/smoke.toml --resume": (RUN, ""),
    "tokensweep run platform/sweeps/smoke.toml --fresh --set 'sweep.seeds=[0,1,2]'": (
        VARIANT, "tokensweep run platform/sweeps/smoke.toml --fresh --set 'sweep.seeds=[0,1,2]'" + ONE_EPOCH + LEAN),
    "tokensweep bench --sweep smoke": (RUN, ""),  # the sweep just run (LEAN: no bench stage), benched
    "tokensweep run platform/sweeps/smoke.toml --set 'sweep.seeds=[0,1,2]' --dry-run": (RUN, ""),
    # what a sweep costs (docs/sweeps.md): plans here; the budget's refusal and its resume on the smoke sweep just run
    "tokensweep plan platform/sweeps/smoke.toml": (RUN, ""),
    "tokensweep plan platform/sweeps/smoke.toml --json": (RUN, ""),
    "tokensweep run platform/sweeps/smoke.toml --set sweep.budget_hours=0.1 --dry-run": (RUN, ""),
    "tokensweep run platform/sweeps/smoke.toml --resume --set sweep.budget_hours=1": (RUN, ""),
    "tokensweep plan platform/sweeps/smoke.toml --address auto": (RUN, ""),  # auto: $RAY_ADDRESS, the test's head
    "tokensweep plan platform/sweeps/channels-optuna.toml --smoke --set 'search.confirm_seeds=[0,1,2]'": (RUN, ""),
    "tokensweep plan platform/sweeps/paper-table6.toml --gpus 8 --tracking-uri http://MLFLOW-HOST:5000": (
        NOT_HERE, "an MLflow store holding ViT-S runs on a GPU; tests/unit/platform/test_plan_history.py writes such "
        "runs with the sweep's own tracker and plans paper-table6 on 8 GPUs from them"),
    "tokensweep plan platform/sweeps/paper-table6.toml --save-calibration h100.json": (NOT_HERE, PLAN_ON_GPU),
    "tokensweep plan platform/sweeps/paper-table6.toml --gpus 8 --calibration h100.json": (NOT_HERE, PLAN_ON_GPU),
    "tokensweep dashboard SWEEP": (VARIANT, "tokensweep dashboard smoke"),  # SWEEP: a placeholder
    "tokensweep export SWEEP --out runs.parquet": (VARIANT, "tokensweep export smoke --out runs.parquet"),
    "tokensweep dashboard SWEEP --runs runs.parquet": (VARIANT, "tokensweep dashboard smoke --runs runs.parquet"),
    "tokensweep report SWEEP": (VARIANT, "tokensweep report smoke"),
    "tokensweep report smoke": (RUN, ""),
    "tokensweep report SWEEP --format csv --out differences.csv": (
        VARIANT, "tokensweep report smoke --format csv --out differences.csv"),
    "tokensweep report SWEEP --format latex --out report.tex --baseline vit_tiny_conv --adjust holm": (
        VARIANT, "tokensweep report smoke --format latex --out report.tex --baseline vit_tiny_conv --adjust holm"),
    "tokensweep dashboard SWEEP --serve": (SERVE, "tokensweep dashboard smoke --serve"),
    ".venv/bin/mlflow ui --backend-store-uri sqlite:///$PWD/mlflow.db": (SERVE, ""),
    "tokensweep run platform/sweeps/channels-optuna.toml --smoke": (
        VARIANT, "tokensweep run platform/sweeps/channels-optuna.toml --smoke" + ONE_EPOCH
        + " --set tracking.system_metrics=false --set bench.repeats=3 --set bench.steps=3"),  # its bench: the search's objective
    "optuna-dashboard sqlite:///optuna.db": (SERVE, ""),
    "tokensweep run examples/overlap_patch/sweep.toml": (NOT_HERE, EXAMPLE_SWEEP),
    "tokensweep dashboard overlap-patch": (NOT_HERE, EXAMPLE_SWEEP),
    "ray job submit --address http://127.0.0.1:8265 -- tokensweep run $PWD/platform/sweeps/smoke.toml "
    "--tracking-uri sqlite:///$PWD/mlflow.db --storage $PWD/ray_results": (
        VARIANT, "cd job && ray job submit --address $HEAD_DASHBOARD -- tokensweep run $PWD/platform/sweeps/smoke.toml "
        "--tracking-uri sqlite:///$PWD/mlflow.db --storage $PWD/ray_results" + ONE_EPOCH + LEAN,
    ),  # the test's head answers on a free port, not 8265; in a folder of its own (its own smoke sweep)
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 ray start --head --node-ip-address=127.0.0.1 --dashboard-host=127.0.0.1": (
        NOT_HERE, "starts Ray daemons that only `ray stop` ends, which stops every Ray on the machine: this test's "
        "head is this command in the foreground (--block) with free ports (sweep_helpers.RayHead), and the test "
        "checks that all its ports are on 127.0.0.1",
    ),
    ".venv/bin/lint-imports": (VARIANT, "cd $REPO && .venv/bin/lint-imports"),  # reads the checkout's pyproject.toml
    # the paper's sweeps and other ImageNet / GPU sweeps: validated at smoke size
    "tokensweep run platform/sweeps/paper-table6.toml": (VARIANT, "tokensweep run platform/sweeps/paper-table6.toml" + SMOKE_DRY),
    "tokensweep run platform/sweeps/paper-table7.toml": (VARIANT, "tokensweep run platform/sweeps/paper-table7.toml" + SMOKE_DRY),
    "tokensweep run platform/sweeps/paper-table8.toml": (VARIANT, "tokensweep run platform/sweeps/paper-table8.toml" + SMOKE_DRY),
    "tokensweep run platform/sweeps/paper-table7.toml --smoke": (VARIANT, "tokensweep run platform/sweeps/paper-table7.toml" + SMOKE_DRY),
    "tokensweep run platform/sweeps/paper-table7.toml --set trial.epochs=100": (
        VARIANT, "tokensweep run platform/sweeps/paper-table7.toml --set trial.epochs=100" + SMOKE_DRY),
    "tokensweep run platform/sweeps/channels-optuna.toml": (VARIANT, "tokensweep run platform/sweeps/channels-optuna.toml" + SMOKE_DRY),
    "tokensweep run platform/sweeps/paper-table6.toml --data-dir /data/imagenet100": (
        VARIANT, "tokensweep run platform/sweeps/paper-table6.toml" + SMOKE_DRY),  # --smoke keeps a data path: none here
    "tokensweep run platform/sweeps/paper-table7.toml --data-dir /data/imagenet100": (
        VARIANT, "tokensweep run platform/sweeps/paper-table7.toml" + SMOKE_DRY),  # --smoke keeps a data path: none here
    "tokensweep run platform/sweeps/paper-table8.toml --data-dir /data/imagenet100": (
        VARIANT, "tokensweep run platform/sweeps/paper-table8.toml" + SMOKE_DRY),  # --smoke keeps a data path: none here
    "tokensweep run platform/sweeps/channels-optuna.toml --data-dir /data/imagenet100": (
        VARIANT, "tokensweep run platform/sweeps/channels-optuna.toml" + SMOKE_DRY),  # --smoke keeps a data path: none here
    "tokensweep run platform/sweeps/paper-table6.toml --address auto --storage s3://BUCKET/ray_results "
    "--tracking-uri http://MLFLOW-HOST:5000": (
        VARIANT, "tokensweep run platform/sweeps/paper-table6.toml --address auto --storage s3://BUCKET/ray_results "
        "--tracking-uri http://MLFLOW-HOST:5000" + SMOKE_DRY,
    ),  # a cluster, a bucket and a server; tests/e2e/reliability/test_rel_cluster_stack.py runs this form on one machine
    # cannot run here
    "scripts/smoke": (NOT_HERE, "sets up .venv and writes mlflow.db, ray_results/ and dashboard/ into the checkout; "
                      "its commands (tokensweep run platform/sweeps/smoke.toml --fresh, tokensweep dashboard smoke) run here, the sweep at one epoch"),
    "scripts/test": (NOT_HERE, "the whole test suite, this test included (CI runs it)"),
    "scripts/test tests/unit": (NOT_HERE, "the fast test suite, which holds the test that reads this table"),
    ".venv/bin/python -m pytest tests/e2e/reliability": (NOT_HERE, "a test suite (CI runs it)"),
    ".venv/bin/python -m pytest tests/unit/reliability": (NOT_HERE, "a test suite (CI runs it)"),
    "open dashboard/smoke/pareto.html": (NOT_HERE, "opens a desktop browser; tests/e2e/dashboards/test_dashboard_browser.py opens the page in Chromium"),
    "open http://127.0.0.1:5000": (NOT_HERE, "opens a desktop browser on the compose stack's MLflow"),
    "tokensweep export paper-table6 --out runs.parquet": (NOT_HERE, "needs a finished paper-table6 sweep (GPU, ImageNet); its form runs here on the smoke sweep"),
    "tokensweep report paper-table6 --format latex --out table6.tex": (NOT_HERE, "needs a finished paper-table6 sweep (GPU, ImageNet); its form runs here on the smoke sweep"),
    "tokensweep dashboard paper-table6 --serve": (NOT_HERE, "needs a finished paper-table6 sweep (GPU, ImageNet); its form runs here on the smoke sweep"),
    "tokensweep trial --model vit_s_supertoken --dataset imagenet100 --data-dir /data/imagenet100 --cluster-iters 2 "
    "--checkpoint-dir ckpt/": (NOT_HERE, "300 epochs of ViT-S on ImageNet-100; the trial commands above run its code at smoke size"),
    "tokensweep data imagenet100 --source /data/imagenet --dest data/imagenet100": (NOT_HERE, IMAGENET),
    "tokensweep data imagenet100 --source /data/imagenet --dest data/in100-256 --resize 256 --predecode": (NOT_HERE, IMAGENET),
    ".venv/bin/python -m benchmarks all": (NOT_HERE, "~6.5 min of CPU; tests/unit/benchmarks/test_benchmarks_suite.py runs it with --quick"),
    ".venv/bin/python -m benchmarks clustering models": (NOT_HERE, "minutes of CPU; tests/unit/benchmarks/test_benchmarks_suite.py runs them with --quick"),
    ".venv/bin/python -m benchmarks all --quick": (NOT_HERE, "tests/unit/benchmarks/test_benchmarks_suite.py runs it (it writes its results into the checkout)"),
    "PYTHONPATH=. python -m benchmarks gpu": (NOT_HERE, GPU_CHECK),
    "PYTHONPATH=. python -m benchmarks gpu --cpu-dry-run": (NOT_HERE, GPU_CHECK),
    "PYTHONPATH=. python -m benchmarks gpu --only speed": (NOT_HERE, GPU_CHECK),
    "pip install ./examples/overlap_patch": (NOT_HERE, "installs into the environment; tests/unit/trials/test_plugins.py covers the entry point"),
    'pip install "mlflow==3.17.2" "psycopg2-binary>=2.9,<3"': (NOT_HERE, "installs on a server machine; the test extras pin both"),
    "mlflow server --backend-store-uri postgresql+psycopg2://mlflow:PASSWORD@DB-HOST:5432/mlflow --artifacts-destination "
    "s3://BUCKET/mlartifacts --serve-artifacts --host 127.0.0.1 --port 5000": (
        NOT_HERE, "a database host; tests/e2e/reliability/test_rel_cluster_stack.py runs this server on PostgreSQL and a moto S3"),
    "ray get-auth-token --generate": (NOT_HERE, "writes the user's ~/.ray/auth_token; tests use a token of their own"),
    "ray up platform/cluster/aws-gpu.yaml": (NOT_HERE, "AWS; tests/unit/platform/test_platform_files.py validates the YAML with Ray's validator"),
    "ray down platform/cluster/aws-gpu.yaml": (NOT_HERE, "AWS"),
    "ray submit platform/cluster/aws-gpu.yaml platform/cluster/sweep.py -- run /home/ray/tokensweep/platform/sweeps/paper-table6.toml "
    "--address auto --storage s3://BUCKET/ray_results --tracking-uri http://MLFLOW-HOST:5000": (
        NOT_HERE, CLUSTER + "; tests/unit/platform/test_platform_files.py runs platform/cluster/sweep.py"),
    "ray submit --tmux platform/cluster/aws-gpu.yaml platform/cluster/sweep.py -- run /home/ray/tokensweep/platform/sweeps/paper-table6.toml "
    "--address auto --storage s3://BUCKET/ray_results --tracking-uri http://MLFLOW-HOST:5000": (
        NOT_HERE, CLUSTER + "; tests/unit/platform/test_platform_files.py runs platform/cluster/sweep.py"),
    "RAY_AUTH_MODE=token ray job submit --address http://127.0.0.1:8265 --runtime-env-json "
    '\'{"env_vars": {"MLFLOW_TRACKING_URI": "http://MLFLOW-HOST:5000"}}\' -- tokensweep run '
    "/home/ray/tokensweep/platform/sweeps/paper-table8.toml --storage s3://BUCKET/ray_results": (
        NOT_HERE, CLUSTER + " (the image's paths); the job form runs here against this test's head"),
    "ray job submit --address http://127.0.0.1:8265 --runtime-env-json "
    '\'{"env_vars": {"MLFLOW_TRACKING_URI": "http://mlflow.internal:5000"}}\' -- tokensweep run '
    "/home/ray/tokensweep/platform/sweeps/paper-table8.toml --storage s3://BUCKET/ray_results": (
        NOT_HERE, CLUSTER + " (the image's paths); the job form runs here against this test's head"),
    "RAY_AUTH_MODE=token ray job submit --address http://127.0.0.1:8265 -- tokensweep run "
    "/home/ray/tokensweep/platform/sweeps/smoke.toml --storage /mnt/ray_results": (
        NOT_HERE, "the compose stack (Docker, the image's paths); the job form runs here against this test's head"),
    "docker build -f docker/Dockerfile -t tokensweep:0.1.0-ray2.60.0-py311-gpu .": (
        NOT_HERE, "needs Docker and a GPU base image; tests/unit/platform/test_docker_context.py builds the package from its context"),
    "docker compose -f docker/compose.yaml --env-file .env up -d --build": (
        NOT_HERE, "needs Docker; tests/unit/platform/test_platform_files.py checks the stack's structure"),
}

# added to a server command: a free port (the default may be taken on a shared machine); for MLflow one server
# process, not its default 4 (each imports MLflow's server: ~30 s of CPU on 2 cores, and one answers the check)
SERVER_PORTS = {"mlflow ui": "--port {port} --workers 1", "optuna-dashboard": "--port {port}", "tokensweep dashboard": "--port {port}"}
SERVER_PAGES = {"mlflow ui": "/health", "optuna-dashboard": "/api/studies", "tokensweep dashboard": "/pareto.html"}


# --- finding the commands ---------------------------------------------------------------------------


def strip_comment(line: str) -> str:
    """The line without a trailing `# comment` (a # inside quotes, or inside a word, is kept)."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip()
    return line.rstrip()


def join_lines(lines) -> list[str]:
    commands, current = [], ""
    for raw in lines:
        line = strip_comment(raw)
        if line.endswith("\\"):
            current += line[:-1].strip() + " "
            continue
        current = (current + line.strip()).strip()
        if current:
            commands.append(current)
        current = ""
    return commands


def documented() -> dict[str, list[str]]:
    """command -> the files that show it."""
    found: dict[str, list[str]] = {}
    for md in DOCS:
        for block in re.findall(r"```bash\n(.*?)```", md.read_text(), re.S):
            for command in join_lines(block.splitlines()):
                found.setdefault(command, []).append(str(md.relative_to(REPO)))
    for path in HEADERS:
        header = []
        for line in path.read_text().splitlines():
            if not line.startswith("#"):
                break
            if line.startswith("#   "):
                header.append(line[4:])
        for command in join_lines(header):
            found.setdefault(command, []).append(str(path.relative_to(REPO)))
    return found


# --- running them -----------------------------------------------------------------------------------


def work_folder(root: Path) -> Path:
    root.mkdir()
    for name in LINKED:
        os.symlink(REPO / name, root / name)
    return root


def bash(command: str, cwd: Path, env: dict, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def serve(command: str, cwd: Path, env: dict, log: Path, timeout: float = 180) -> str | None:
    """Start a server command with a free port; None once its page answers (then it is stopped), else why not."""
    program = next(p for p in SERVER_PORTS if command.startswith(p) or command.startswith(f".venv/bin/{p}"))
    port = free_port()
    full = f"{command} {SERVER_PORTS[program].format(port=port)}"
    server_env = {**env, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}  # MLflow's job runner: ~20 s, unused here
    with open(log, "w") as out:
        proc = subprocess.Popen(["bash", "-c", f"exec {full}"], cwd=cwd, env=server_env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return f"exited {proc.returncode}: {log.read_text()[-2000:]}"
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}{SERVER_PAGES[program]}", timeout=5).close()
                return None
            except (urllib.error.URLError, OSError):
                time.sleep(0.5)
        return f"no answer within {timeout:.0f} s: {log.read_text()[-2000:]}"
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
                proc.wait(timeout=20)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass


def listening_ips(pid: int) -> set[str]:
    import psutil

    root = psutil.Process(pid)
    pids = {root.pid} | {p.pid for p in root.children(recursive=True)}
    return {c.laddr.ip for c in psutil.net_connections("tcp") if c.status == psutil.CONN_LISTEN and c.pid in pids}


def chatter(command: str, output: str) -> list[str]:
    """Lines a default `tokensweep run` should not print: tracebacks, Python warnings, libraries' log lines."""
    if not command.removeprefix(".venv/bin/").startswith("tokensweep run") or "--dry-run" in command or " -v" in command:
        return []
    pattern = re.compile(r"Traceback|Warning:|^\[[IWE] \d{4}-|^\(\w+ pid=")  # Optuna's log format; Ray's worker prefix
    return [line for line in output.splitlines() if pattern.search(line)]


def run_one(command: str, kind: str, cwd: Path, env: dict, log: Path) -> str | None:
    """Run one command as HOW says; None if it did what it should, else what went wrong."""
    if kind == SERVE:
        return serve(command, cwd, env, log)
    proc = bash(command, cwd, env, timeout=600)
    if proc.returncode != 0:
        return f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    noise = chatter(command, proc.stdout + proc.stderr)
    return "printed what a default run should not:\n" + "\n".join(noise[:20]) if noise else None


