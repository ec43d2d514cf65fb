"""Cluster, KubeRay and Docker files: validated as far as possible without a cloud or a Docker engine."""

import copy
import importlib.metadata
import re
import shutil
import subprocess
import sys
import tomllib

import pytest
import yaml

from helpers import base_env, REPO

CLUSTER = REPO / "platform" / "cluster"
DOCKER = REPO / "docker"
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
VERSION = PYPROJECT["project"]["version"]
RAY_VERSION = importlib.metadata.version("ray")  # pyproject pins ray>=2.60,<2.61


def _load(path):
    return yaml.safe_load(path.read_text())


def _ray_validate(config: dict) -> dict:
    """What `ray up` does before it touches a cloud: fill defaults, then Ray's schema validation."""
    from ray.autoscaler._private.util import prepare_config, validate_config

    prepared = prepare_config(copy.deepcopy(config))
    validate_config(prepared)
    return prepared


def _dockerfile_image_tag() -> str:
    m = re.search(r"^ARG RAY_IMAGE=(\S+)$", (DOCKER / "Dockerfile").read_text(), re.M)
    return m[1]


def _images(obj) -> list[str]:
    found = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k == "image" and isinstance(v, str):
                found.append(v)
            else:
                found += _images(v)
    elif isinstance(obj, list):
        for v in obj:
            found += _images(v)
    return found


@pytest.mark.parametrize("name", ["aws-gpu.yaml", "onprem.yaml"])
def test_cluster_launcher_configs_pass_rays_validator(name):
    config = _load(CLUSTER / name)
    prepared = _ray_validate(config)
    assert prepared["docker"]["image"].startswith("ghcr.io/")
    # a typo is caught by the same validator (the test is not vacuous)
    broken = copy.deepcopy(config)
    broken["max_worker"] = 2
    with pytest.raises(Exception, match="max_worker"):
        _ray_validate(broken)


def test_aws_config_has_gpu_workers_and_a_trial_free_head():
    config = _load(CLUSTER / "aws-gpu.yaml")
    assert config["provider"]["type"] == "aws"
    types = config["available_node_types"]
    assert types[config["head_node_type"]]["resources"] == {"CPU": 0, "GPU": 0}
    workers = [t for name, t in types.items() if name != config["head_node_type"]]
    assert workers and all(t["resources"]["GPU"] >= 1 and t["max_workers"] >= 1 for t in workers)
    starts = " ".join(config["head_start_ray_commands"] + config["worker_start_ray_commands"])
    assert starts.count("RAY_AUTH_MODE=token") == 2
    assert "/home/ray/.ray/auth_token" in config["file_mounts"]


def test_onprem_config_lists_machines():
    config = _load(CLUSTER / "onprem.yaml")
    assert config["provider"]["type"] == "local"
    assert config["provider"]["head_ip"] and len(config["provider"]["worker_ips"]) >= 1
    assert "--gpus all" in config["docker"]["run_options"]


def test_kuberay_rayjob_manifest():
    job = _load(CLUSTER / "kuberay-rayjob.yaml")
    assert job["apiVersion"] == "ray.io/v1" and job["kind"] == "RayJob"
    spec = job["spec"]
    entry = spec["entrypoint"].split()
    assert entry[:2] == ["tokensweep", "run"]
    sweep = entry[2].replace("/home/ray/tokensweep/", "")
    assert (REPO / sweep).is_file(), sweep
    assert "--storage" in entry and entry[entry.index("--storage") + 1].startswith("s3://")
    assert spec["shutdownAfterJobFinishes"] is True
    cluster = spec["rayClusterSpec"]
    assert cluster["rayVersion"] == RAY_VERSION
    head = cluster["headGroupSpec"]
    assert head["rayStartParams"]["num-cpus"] == "0"
    worker = cluster["workerGroupSpecs"][0]
    container = worker["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    env = {e["name"]: e for e in container["env"]}
    assert env["RAY_AUTH_MODE"]["value"] == "token"
    assert "secretKeyRef" in env["RAY_AUTH_TOKEN"]["valueFrom"]
    assert "secretKeyRef" in env["MLFLOW_TRACKING_PASSWORD"]["valueFrom"]


def test_every_deployment_uses_the_same_pinned_image():
    images = set()
    for name in ("aws-gpu.yaml", "onprem.yaml", "kuberay-rayjob.yaml"):
        images.update(_images(_load(CLUSTER / name)))
    assert len(images) == 1, images
    (image,) = images
    assert not image.endswith(":latest") and ":" in image
    tag = image.rsplit(":", 1)[1]
    base = _dockerfile_image_tag()  # rayproject/ray:2.60.0-py311-gpu
    assert base == f"rayproject/ray:{RAY_VERSION}-py311-gpu"
    assert tag == f"{VERSION}-ray{base.split(':')[1]}", (tag, base)
    compose = _load(DOCKER / "compose.yaml")
    assert compose["services"]["ray-head"]["image"] == f"tokensweep:{tag}"


def test_dockerfile_installs_cuda_torch_and_the_project():
    text = (DOCKER / "Dockerfile").read_text()
    torch_pin = next(d for d in PYPROJECT["project"]["dependencies"] if d.startswith("torch"))
    assert torch_pin == "torch==2.13.0"
    assert re.search(r"^ARG TORCH_VERSION=2\.13\.0$", text, re.M)
    assert re.search(r"^ARG TORCH_INDEX_URL=https://download\.pytorch\.org/whl/cu\d+$", text, re.M)
    assert 'pip install --no-cache-dir "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX_URL}"' in text
    assert "pip install --no-cache-dir -c constraints.txt ." in text
    assert "ray-ml" not in text.replace("rayproject/ray-ml is discontinued", "")
    ignore = [line for line in (DOCKER / "Dockerfile.dockerignore").read_text().splitlines() if line and not line.startswith("#")]
    assert ignore[0] == "**" and "!platform/**" in ignore


def test_compose_stack_structure():
    compose = _load(DOCKER / "compose.yaml")
    services = compose["services"]
    assert {"postgres", "mlflow", "ray-head", "ray-gpu-worker"} <= set(services)
    # every published port on loopback unless TOKENSWEEP_BIND opts in
    for name, svc in services.items():
        for port in svc.get("ports", []):
            assert port.startswith("${TOKENSWEEP_BIND:-127.0.0.1}:"), (name, port)
    assert "ports" not in services["postgres"]
    # MLflow: PostgreSQL backend, artifact volume, basic auth with credentials from the environment
    mlflow = services["mlflow"]
    command = " ".join(mlflow["command"])
    assert "--app-name basic-auth" in command and "--artifacts-destination /mlflow/artifacts" in command
    assert mlflow["environment"]["MLFLOW_BACKEND_STORE_URI"].startswith("postgresql+psycopg2://mlflow:${POSTGRES_PASSWORD:?")
    assert any(v.startswith("mlartifacts:") for v in mlflow["volumes"])
    for key in ("MLFLOW_AUTH_ADMIN_USERNAME", "MLFLOW_AUTH_ADMIN_PASSWORD"):
        assert mlflow["environment"][key].startswith("${"), key
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD:?")
    # Ray: GPU worker, token auth from the environment, shared Tune storage
    worker = services["ray-gpu-worker"]
    assert worker["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    assert worker["environment"]["RAY_AUTH_MODE"] == "token"
    assert worker["environment"]["RAY_AUTH_TOKEN"].startswith("${RAY_AUTH_TOKEN:?")
    assert "ray_results:/mnt/ray_results" in worker["volumes"] and "ray_results:/mnt/ray_results" in services["ray-head"]["volumes"]
    auth_ini = (DOCKER / "mlflow-auth.ini").read_text()
    assert "admin_password" not in auth_ini.replace("MLFLOW_AUTH_ADMIN_PASSWORD", "")


def test_no_secrets_in_repo_files():
    texts = [p.read_text() for p in list(DOCKER.iterdir()) + list(CLUSTER.iterdir()) if p.is_file()]
    for text in texts:
        assert not re.search(r"(?i)(password|secret|token)\s*[:=]\s*['\"]?[A-Za-z0-9]{12,}", text)


def _compose_cli() -> list[str] | None:
    for cmd in (["docker", "compose"], ["docker-compose"]):
        if shutil.which(cmd[0]) is None:
            continue
        try:
            out = subprocess.run(cmd + ["version"], capture_output=True, text=True, timeout=20)
        except (OSError, subprocess.SubprocessError):
            continue
        if out.returncode == 0 and re.search(r"v?2\.\d+", out.stdout):
            return cmd
    return None


def test_docker_compose_config_validates():
    """`docker compose config` validates the file against the compose spec (no engine needed)."""
    cli = _compose_cli()
    if cli is None:
        pytest.skip("no Docker Compose v2 CLI here (structure is checked by test_compose_stack_structure)")
    env = base_env(POSTGRES_PASSWORD="p", MLFLOW_ADMIN_USER="u", MLFLOW_ADMIN_PASSWORD="pw", RAY_AUTH_TOKEN="t")
    out = subprocess.run(cli + ["-f", str(DOCKER / "compose.yaml"), "config", "--quiet"], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    missing = base_env()
    out = subprocess.run(cli + ["-f", str(DOCKER / "compose.yaml"), "config", "--quiet"], env=missing, capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "required variable" in out.stderr  # secrets are never defaulted


def test_ray_submit_script_runs_the_cli(tmp_path):
    """What `ray submit` runs on the head: the CLI with the arguments after `--` (here a dry run)."""
    script = CLUSTER / "sweep.py"
    ok = subprocess.run([sys.executable, str(script), "run", str(REPO / "platform/sweeps/smoke.toml"), "--dry-run"],
                        cwd=tmp_path, env=base_env(), capture_output=True, text=True, timeout=120)  # fmt: skip
    assert ok.returncode == 0 and "sweep 'smoke': grid, smoke, 4 trial(s)" in ok.stdout, ok.stderr
    bad = subprocess.run([sys.executable, str(script), "run", "missing.toml"], cwd=tmp_path, env=base_env(),
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
