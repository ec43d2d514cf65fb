"""docker/Dockerfile without Docker: its build context (what Dockerfile.dockerignore lets through) holds
every package the project installs, the package builds from exactly that context, and the install is
pinned: constraints.txt goes in and fixes every dependency at a version pyproject.toml allows."""

import re
import shutil
import subprocess
import sys
import tomllib
import zipfile

from packaging.requirements import Requirement

from helpers import REPO
DOCKERFILE = (REPO / "docker" / "Dockerfile").read_text()
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def _pattern(rule: str) -> re.Pattern:
    """A .dockerignore pattern as a regex over a relative path ('**' any depth, '*' within a name)."""
    out, i = "", 0
    while i < len(rule):
        if rule.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif rule.startswith("**", i):
            out, i = out + ".*", i + 2
        elif rule[i] == "*":
            out, i = out + "[^/]*", i + 1
        else:
            out, i = out + re.escape(rule[i]), i + 1
    return re.compile(out + "(?:/.*)?$")


def build_context() -> list[str]:
    """The tracked files the build sees: the last rule that matches a path decides (as Docker does)."""
    rules = [line.strip() for line in (REPO / "docker" / "Dockerfile.dockerignore").read_text().splitlines()]
    rules = [(r.startswith("!"), _pattern(r.lstrip("!"))) for r in rules if r and not r.startswith("#")]
    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    kept = []
    for path in files:
        included = True
        for include, pattern in rules:
            if pattern.match(path):
                included = include
        if included:
            kept.append(path)
    return kept


def copied_sources() -> list[str]:
    sources = []
    for line in DOCKERFILE.splitlines():
        if line.startswith("COPY "):
            parts = [p for p in line.split()[1:] if not p.startswith("--")]
            sources += parts[:-1]
    return sources


def test_the_context_and_the_copies_hold_every_installed_package():
    context = build_context()
    copied = copied_sources()
    for package in ("vocab", "trials", "dashboards", "platform"):  # pyproject's packages (tokensweep in platform/)
        assert any(p.startswith(f"{package}/") for p in context), package
        assert package in copied, (package, copied)
    for top in ("pyproject.toml", "README.md", "constraints.txt"):
        assert top in context and top in copied, top
    assert not any(p.startswith(("tests/", ".ci/", "benchmarks/")) for p in context)  # nothing the image does not need


def test_the_package_builds_from_exactly_the_context(tmp_path):
    ctx = tmp_path / "context"
    for path in build_context():
        (ctx / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / path, ctx / path)
    out = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet", "-w", str(tmp_path / "dist"), str(ctx)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("tokensweep-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in ("vocab/__init__.py", "trials/config.py", "trials/data/imagenet100.txt", "dashboards/build.py", "tokensweep/cli.py"):
        assert needed in names, needed


def test_the_image_installs_every_dependency_at_its_pin():
    assert re.search(r"^RUN pip install --no-cache-dir -c constraints\.txt \. ", DOCKERFILE, re.M)
    pins = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==")
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version.strip()
    for dep in PYPROJECT["project"]["dependencies"]:
        req = Requirement(dep)
        name = re.sub(r"[-_.]+", "-", req.name).lower()
        assert name in pins, f"{req.name} has no pin in constraints.txt"
        assert req.specifier.contains(pins[name], prereleases=True), (dep, pins[name])
    ray_tag = re.search(r"^ARG RAY_IMAGE=rayproject/ray:(\d+\.\d+\.\d+)-", DOCKERFILE, re.M)[1]
    assert pins["ray"] == ray_tag  # the base image's Ray is the pinned one: pip keeps it
