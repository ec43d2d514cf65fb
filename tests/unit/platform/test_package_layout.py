"""The platform stays readable: at most 40 modules, and every package's docstring names each of its modules
(a newcomer reads the package's docstring first)."""

import ast

import pytest

from helpers import REPO

TOKENSWEEP = REPO / "platform" / "tokensweep"
PACKAGES = sorted(p.parent for p in TOKENSWEEP.rglob("__init__.py"))
MOST_MODULES = 40  # __init__.py files counted


def test_the_platform_holds_at_most_forty_modules():
    modules = sorted(p.relative_to(TOKENSWEEP).as_posix() for p in TOKENSWEEP.rglob("*.py"))
    assert len(modules) <= MOST_MODULES, f"{len(modules)} modules: {modules}"


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.relative_to(TOKENSWEEP.parent).as_posix())
def test_every_module_is_named_in_its_packages_docstring(package):
    doc = ast.get_docstring(ast.parse((package / "__init__.py").read_text())) or ""
    names = [p.name for p in package.glob("*.py") if p.name != "__init__.py"]
    names += [f"{p.parent.name}/" for p in package.glob("*/__init__.py")]
    assert [n for n in names if n not in doc] == [], f"{package.name}/__init__.py's docstring"
