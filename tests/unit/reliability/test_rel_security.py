"""Security: loopback-only services, Ray token auth kept on, no secrets in the repo, inputs never run as code.

Covered elsewhere (and counted in docs/reliability.md):
- the local Ray of `tokensweep run` listens on loopback only and refuses a wrong token:
  test_rel_concurrency.py; compose ports on 127.0.0.1 and MLflow behind basic auth with credentials
  from the environment: tests/unit/platform/test_platform_files.py::test_compose_stack_structure;
- no password in MLflow params/tags/artifacts, output or Tune's files: test_rel_mlflow_server.py;
- checkpoints with pickled code refused, spec / --set values never executed: test_rel_bad_input.py.

Here too: a trial's error is read from its text, never its pickle; a Tune state tampered with in its
storage and refused by --resume, under a running sweep: tests/e2e/reliability/test_rel_security_tune_state.py.
"""

import ast
import pickle
import re
import subprocess
import types
from pathlib import Path

import psutil
import pytest
import yaml

from helpers import REPO
from rel_helpers import RunsCode
from tokensweep.cli import build_parser
from tokensweep.commands import dashboard
from tokensweep.commands.run import choose_ray_auth, command_line
from tokensweep.tracking.callback import failure_reason
from tokensweep.tracking.store import redact, split_credentials

LOOPBACK = ("127.0.0.1", "::1", "::ffff:127.0.0.1")


# --- services bind to loopback unless the user says otherwise ---------------------------------------------


def _listening(port: int) -> list[str]:
    me = psutil.Process().pid
    return [c.laddr.ip for c in psutil.net_connections("tcp") if c.pid == me and c.status == psutil.CONN_LISTEN and c.laddr.port == port]


@pytest.mark.parametrize("extra, expected", [([], "127.0.0.1"), (["--host", "0.0.0.0"], "0.0.0.0")])
def test_dashboard_serve_binds_loopback_by_default(extra, expected, tmp_path):
    args = build_parser().parse_args(["dashboard", "sweep", "--serve", "--port", "0", *extra])
    server = dashboard.start_server(tmp_path, args.host, args.port)  # what `--serve` starts
    try:
        assert _listening(server.server_address[1]) == [expected]
    finally:
        server.shutdown()
        server.server_close()


def _compose_default(value: str) -> str:
    """What docker compose makes of ${VAR:-default} with VAR unset."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value)


def test_compose_publishes_ports_on_loopback_and_mlflow_needs_a_login():
    compose = yaml.safe_load((REPO / "docker" / "compose.yaml").read_text())
    published = []
    for name, service in compose["services"].items():
        assert service.get("network_mode") != "host", name  # host networking would bypass the bindings
        for port in service.get("ports", []):
            host_ip, host_port, _ = _compose_default(str(port)).rsplit(":", 2)
            assert host_ip == "127.0.0.1", (name, port)
            published.append((name, int(host_port)))
    assert {("mlflow", 5000), ("ray-head", 8265)} <= set(published)
    mlflow = " ".join(compose["services"]["mlflow"]["command"])
    assert "--app-name basic-auth" in mlflow  # every request needs a login
    for key, value in compose["services"]["mlflow"]["environment"].items():
        if any(word in key for word in ("PASSWORD", "USERNAME", "URI")):
            assert ":?" in value, (key, value)  # from the environment, required, never defaulted


def test_cluster_configs_keep_the_ray_dashboard_on_loopback_or_behind_token_auth():
    for name in ("aws-gpu.yaml", "onprem.yaml"):
        config = yaml.safe_load((REPO / "platform" / "cluster" / name).read_text())
        heads = [c for c in config["head_start_ray_commands"] if "ray start --head" in c]
        assert heads, name
        for command in heads:
            assert "--dashboard-host=127.0.0.1" in command, (name, command)  # reached through `ray dashboard` (ssh)
        for command in config["head_start_ray_commands"] + config["worker_start_ray_commands"]:
            if "ray start" in command:
                assert "RAY_AUTH_MODE=token" in command, (name, command)
    kuberay = list(yaml.safe_load_all((REPO / "platform" / "cluster" / "kuberay-rayjob.yaml").read_text()))
    text = yaml.safe_dump_all(kuberay)
    # in Kubernetes the dashboard listens on the pod's address (the job submitter needs it): no Service
    # exposes it outside the cluster, and token auth is on
    assert "LoadBalancer" not in text and "NodePort" not in text
    assert text.count("RAY_AUTH_MODE") >= 2


# --- Ray token authentication is left on ----------------------------------------------------------------------


def test_a_new_local_ray_gets_token_auth_and_loopback_ports():
    env = {}
    choose_ray_auth(None, env)
    assert env == {"RAY_AUTH_MODE": "token", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    env = {"RAY_AUTH_MODE": "disabled", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "1"}  # the user said otherwise
    choose_ray_auth("local", env)
    assert env == {"RAY_AUTH_MODE": "disabled", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "1"}
    for address, env in (("auto", {}), ("10.0.0.1:6379", {}), (None, {"RAY_ADDRESS": "http://127.0.0.1:8265"})):
        before = dict(env)
        choose_ray_auth(address, env)
        assert env == before  # an existing cluster: its own settings


def test_ray_auth_is_never_turned_off_in_project_files():
    pattern = re.compile(r"RAY_AUTH_MODE\W{0,3}(=|:|value:)\s*['\"]?(disabled|off|none)", re.I)
    for path in _repo_files():
        if path.suffix in (".py", ".yaml", ".yml", ".toml", ".sh", ".md", "") or path.name in ("Dockerfile", "run"):
            text = _text(path)
            if text is not None and "tests/" not in str(path.relative_to(REPO)):
                assert not pattern.search(text), path


# --- secrets: none in the repo, none in what a sweep logs --------------------------------------------------------

_KEY = r"\b(?:[\w-]*[_-])?(password|passwd|secret|token|api[_-]?key|access[_-]?key)\b"  # not "supertoken"
SECRET_PATTERNS = {
    "private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    "AWS access key": re.compile(r"\bAKIA[0-9A-Z]{16}\b"),
    "GitHub token": re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}\b"),
    "Slack token": re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}"),
    "quoted secret": re.compile(rf"(?i){_KEY}['\"]?\s*[:=]\s*(['\"])([^'\"\s]{{8,}})\2"),
    "password in a URL": re.compile(r"\b[a-z][a-z0-9+.-]*://[^/\s:@'\"]+:([^/\s@'\"]+)@"),
}
# KEY=value lines of env, ini and YAML files (in Python, `token = page.token` is code)
BARE_SECRET = re.compile(rf"(?im)^[ \t]*[\w-]*?{_KEY}[ \t]*[:=][ \t]*([^\s'\"#]{{8,}})[ \t]*$")
# not secrets: references to the environment, placeholders, paths, and this suite's deliberately fake values
NOT_SECRET = re.compile(r"^(\$|<|\{|~|/|\.)|\$\{|\*|never-logged|^(password|pass|PASSWORD|secret|token)$")


def _repo_files() -> list[Path]:
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return [REPO / f for f in out.stdout.splitlines() if (REPO / f).is_file()]


def _text(path: Path) -> str | None:
    if path.stat().st_size > 2_000_000:
        return None
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return None


def find_secrets(text: str, python: bool = False) -> list[str]:
    patterns = dict(SECRET_PATTERNS) if python else {**SECRET_PATTERNS, "bare secret": BARE_SECRET}
    hits = []
    for name, pattern in patterns.items():
        for m in pattern.finditer(text):
            value = m.group(m.lastindex) if m.lastindex else m.group(0)
            if name in ("quoted secret", "bare secret", "password in a URL") and NOT_SECRET.search(value):
                continue
            hits.append(f"{name}: {m.group(0)[:80]}")
    return hits


def test_the_scanner_finds_what_it_should():
    fake = "Tr0ub4" + "dor3xyz"  # built here, so that this file holds no secret-looking literal itself
    assert find_secrets(f'MLFLOW_TRACKING_PASSWORD = "{fake}"', python=True)
    assert find_secrets(f"POSTGRES_PASSWORD={fake}\n")
    assert find_secrets(f"uri: postgresql://mlflow:{fake}@db:5432/mlflow")
    assert find_secrets("-----BEGIN OPENSSH " + "PRIVATE KEY-----")
    assert not find_secrets("POSTGRES_PASSWORD: ${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD}")
    assert not find_secrets("POSTGRES_PASSWORD=\nRAY_AUTH_TOKEN=\n")
    assert not find_secrets('"auth_token": "~/.ray/auth_token"')
    assert not find_secrets('supertoken": "vit_s_supertoken"') and not find_secrets("token = page.token", python=True)


def test_no_secrets_in_the_repository():
    """Every tracked or not-ignored file (a wider net than test_platform_files.py's docker/cluster scan)."""
    hits = []
    for path in _repo_files():
        text = _text(path)
        if text is not None:
            hits += [f"{path.relative_to(REPO)}: {hit}" for hit in find_secrets(text, python=path.suffix == ".py")]
    assert hits == []


def test_a_secrets_file_for_compose_would_not_be_committed():
    for name in (".env", "docker/.env"):
        out = subprocess.run(["git", "check-ignore", "-q", name], cwd=REPO, timeout=30)
        assert out.returncode == 0, f"{name} is not git-ignored: the compose secrets could be committed"


def test_passwords_in_uris_are_redacted_in_the_command_line_tag():
    args = build_parser().parse_args([
        "run", "s.toml", "--tracking-uri", "https://ann:p%40ss-never-logged@mlflow.example:443",
        "--optuna-storage", "postgresql://optuna:Xy7-never-logged@db/optuna", "--storage", "s3://bucket/ray_results",
    ])  # fmt: skip
    line = command_line(args)
    assert "never-logged" not in line
    assert "https://ann:***@mlflow.example:443" in line and "postgresql://optuna:***@db/optuna" in line
    assert redact("no credentials: http://host:5000/x") == "no credentials: http://host:5000/x"
    assert split_credentials("https://ann:p%40never-logged@h:443/p") == ("https://h:443/p", "ann", "p@never-logged")
    assert split_credentials("http://h:5000") == ("http://h:5000", None, None)


def test_credentials_leave_the_uri_for_mlflows_own_variables():
    from tokensweep.tracking.store import credentials_to_environment as _credentials_to_environment

    env = {}
    assert _credentials_to_environment("http://ann:never-logged@h:5000", env) == "http://h:5000"
    assert env == {"MLFLOW_TRACKING_USERNAME": "ann", "MLFLOW_TRACKING_PASSWORD": "never-logged"}
    env = {"MLFLOW_TRACKING_USERNAME": "bob", "MLFLOW_TRACKING_PASSWORD": "x"}  # MLflow uses these anyway
    assert _credentials_to_environment("http://ann:never-logged@h:5000", env) == "http://h:5000"
    assert env == {"MLFLOW_TRACKING_USERNAME": "bob", "MLFLOW_TRACKING_PASSWORD": "x"}
    env = {}
    assert _credentials_to_environment("sqlite:////tmp/m.db", env) == "sqlite:////tmp/m.db" and env == {}


# --- inputs are data, never code -----------------------------------------------------------------------------------

UNSAFE_CALLS = {"eval", "exec", "compile", "__import__"}
UNSAFE_ATTRS = {("pickle", "load"), ("pickle", "loads"), ("yaml", "load"), ("yaml", "unsafe_load"), ("marshal", "loads")}
ALLOWED = set()  # (file, call) pairs that may unpickle: none (Tune's own restore is guarded by tune_state)


def _calls(path: Path):
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name):
                yield func.id, node
            elif isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
                yield f"{func.value.id}.{func.attr}", node


def test_no_code_execution_from_inputs_in_project_code():
    """Specs are parsed with tomllib, --set values with tomllib (else kept as strings), YAML with safe_load,
    checkpoints with torch.load(weights_only=True); nothing calls eval/exec or unpickles user files."""
    problems = []
    for package in ("platform/tokensweep", "trials", "dashboards"):
        for path in sorted((REPO / package).rglob("*.py")):
            rel = str(path.relative_to(REPO))
            for name, node in _calls(path):
                base, _, attr = name.rpartition(".")
                if (rel, name) in ALLOWED:
                    continue
                if name in UNSAFE_CALLS or (base, attr) in UNSAFE_ATTRS or name in ("cloudpickle.load", "cloudpickle.loads"):
                    problems.append(f"{rel}:{node.lineno}: {name}")
                if name == "torch.load":
                    weights_only = [k for k in node.keywords if k.arg == "weights_only"]
                    if not (weights_only and isinstance(weights_only[0].value, ast.Constant) and weights_only[0].value.value is True):
                        problems.append(f"{rel}:{node.lineno}: torch.load without weights_only=True")
    assert problems == []


# --- what the Tune storage's other writers put there is never run ------------------------------------------------


def test_a_trials_error_is_read_from_its_text_never_its_pickle(tmp_path):
    marker = tmp_path / "ran"
    pickled, text = tmp_path / "error.pkl", tmp_path / "error.txt"
    pickled.write_bytes(pickle.dumps(RunsCode(marker)))
    text.write_text("Failure # 1 (occurred at x)\nray::ImplicitFunc.train()\ntrials.errors.NonFiniteLoss: loss is nan\n")
    trial = types.SimpleNamespace(pickled_error_file=str(pickled), error_file=str(text),
                                  get_pickled_error=lambda: pickle.loads(pickled.read_bytes()), get_error=lambda: None)  # fmt: skip
    assert failure_reason(trial) == "NonFiniteLoss: loss is nan"
    assert not marker.exists()


