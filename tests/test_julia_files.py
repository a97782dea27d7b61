"""The Julia side, checked without Julia: lint, parse, and agreement with the Python side."""

import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from pyode.crossval import EXPLICIT_SOLVERS, IMPLICIT_SOLVERS
from pyode.reference._case import FIELD_KINDS
from pyode.reference._julia import JULIA_MODULE, SENSEALGS

ROOT = Path(__file__).resolve().parents[1]
JULIA_FILES = sorted((ROOT / "julia").rglob("*.jl"))
PROJECT = tomllib.loads((ROOT / "julia" / "Project.toml").read_text())
JULIAPKG = json.loads((ROOT / "pyode" / "juliapkg.json").read_text())


def test_there_is_julia_to_check():
    assert JULIA_MODULE in JULIA_FILES


def fatou() -> str:
    exe = shutil.which("fatou") or str(Path(sys.executable).with_name("fatou"))
    if not Path(exe).is_file():
        pytest.skip("fatou is not installed (pip install 'pyode[test]')")
    return exe


@pytest.mark.parametrize("path", JULIA_FILES, ids=lambda p: p.name)
def test_julia_file_passes_fatou_lint(path):
    result = subprocess.run([fatou(), "lint", "--no-config", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "clean" in result.stdout + result.stderr


@pytest.mark.parametrize("path", JULIA_FILES, ids=lambda p: p.name)
def test_julia_file_parses_with_tree_sitter(path):
    tree_sitter = pytest.importorskip("tree_sitter")
    tree_sitter_julia = pytest.importorskip("tree_sitter_julia")
    parser = tree_sitter.Parser(tree_sitter.Language(tree_sitter_julia.language()))
    root = parser.parse(path.read_bytes()).root_node
    problems = []
    stack = [root]
    while stack:
        node = stack.pop()
        if node.type == "ERROR" or node.is_missing:
            problems.append(f"{node.type} at line {node.start_point[0] + 1}")
        stack.extend(node.children)
    assert not root.has_error and not problems, problems


def test_every_dependency_has_compat_bounds():
    assert set(PROJECT["deps"]) <= set(PROJECT["compat"])
    assert "julia" in PROJECT["compat"]
    for name in ("DiffEqFlux", "SciMLSensitivity", "OrdinaryDiffEq", "Lux", "ComponentArrays", "Zygote"):
        assert name in PROJECT["deps"], name


def test_juliapkg_lists_the_same_packages_as_the_project():
    packages = JULIAPKG["packages"]
    assert set(packages) == set(PROJECT["deps"])
    for name, entry in packages.items():
        assert entry["uuid"] == PROJECT["deps"][name], name
        assert entry["version"] == PROJECT["compat"][name], name
    assert JULIAPKG["julia"].lstrip("^") == PROJECT["compat"]["julia"]


def test_julia_module_uses_only_declared_packages():
    source = JULIA_MODULE.read_text()
    used = set(re.findall(r"^using (\w+)", source, flags=re.MULTILINE))
    assert used <= set(PROJECT["deps"]), used - set(PROJECT["deps"])


def test_names_the_python_side_passes_exist_in_julia():
    source = JULIA_MODULE.read_text()
    for name in SENSEALGS:
        assert f'name == "{name}"' in source, name
    for solver in (EXPLICIT_SOLVERS["julia"], IMPLICIT_SOLVERS["julia"]):
        assert f'"{solver}" => {solver}' in source, solver
    assert "sensealg = sensealg" in source  # never a default sensealg
    for kind in FIELD_KINDS:
        assert f'"{kind}"' in source, kind
