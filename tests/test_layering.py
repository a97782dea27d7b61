"""The package's layers: lower packages import no experiment; no package uses another's private modules."""

import ast
from pathlib import Path

import pytest
import yaml

PACKAGE = Path(__file__).resolve().parents[1] / "pyode"
ROOT = PACKAGE.parent
LOWER = ("models", "data", "plots", "scratch", "reference", "crossval", "bench", "train")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[str]:
    """Absolute names of every module `path` imports (`from X import y` gives X and X.y)."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            found.append(base)
            found += [f"{base}.{alias.name}" for alias in node.names]
    return found


SOURCES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_layers_and_public_names(path):
    module = _module_name(path)
    own_package = _module_name(path.parent / "__init__.py")
    for name in _imports(path):
        if not name.startswith("pyode"):
            continue
        if module.split(".")[1:2] and module.split(".")[1] in LOWER:
            assert not name.startswith(("pyode.experiments", "pyode.cli")), f"{module} imports {name}"
        if module.startswith("pyode.plots"):
            assert name == "pyode" or name.startswith("pyode.plots"), f"plots import {name}"
        parts = name.split(".")
        private = next((i for i, part in enumerate(parts) if part.startswith("_")), None)
        if private is not None:
            owner = ".".join(parts[:private])
            assert owner == own_package, f"{module} imports {name}, private to {owner}"


LAYERS = (
    ("cli",),
    ("experiments",),
    ("crossval", "bench"),
    ("plots",),
    ("reference",),
    ("train",),
    ("models", "data", "scratch"),
    ("pyode",),
)
"""docs/architecture.md's layers, top first; `pyode` is the root modules (solve, counting, files, ...)."""


def _package(module: str) -> str:
    """The layer's name of a module: its subpackage of pyode, `cli`, or `pyode` for the root modules."""
    parts = module.split(".")
    if len(parts) > 1 and (parts[1] == "cli" or (PACKAGE / parts[1]).is_dir()):
        return parts[1]
    return "pyode"


def test_packages_import_only_lower_layers():
    """Every import between pyode's packages points down the layers: no upward arrow, so no cycle."""
    rank = {package: level for level, layer in enumerate(LAYERS) for package in layer}
    for path in SOURCES:
        source = _package(_module_name(path))
        for name in _imports(path):
            target = _package(name) if name.startswith("pyode") else None
            if target is not None and target != source:
                assert rank[target] > rank[source], (
                    f"{_module_name(path)} ({source}) imports {name} ({target})"
                )


def test_scratch_imports_no_autodiff_library():
    for path in (PACKAGE / "scratch").glob("*.py"):
        for name in _imports(path):
            assert name.split(".")[0] not in ("jax", "equinox", "diffrax", "optax", "torch"), (
                f"{path}: {name}"
            )


LIBRARY_MODULES = ("torch", "torchdiffeq", "torchode", "scipy", "juliacall", "juliapkg", "diffrax", "optax")
"""The libraries the benchmarks compare (and pyode's solver and optimiser libraries): their code lives in
`pyode.reference`, one module per library."""
LIBRARY_NAMES = ("pyode.scratch", "pyode.train", "pyode.solve", "pyode.counting", "pyode.SOLVERS")
"""pyode's own solvers, training loop and counters, as a library of the comparison."""


@pytest.mark.parametrize("package", ["bench", "crossval"])
def test_bench_and_crossval_hold_no_library_specific_code(package):
    """They orchestrate, measure and report; each library is looked up by name in `pyode.reference`."""
    for path in (PACKAGE / package).glob("*.py"):
        for name in _imports(path):
            assert name.split(".")[0] not in LIBRARY_MODULES, f"{path.name} imports {name}"
            assert not name.startswith(LIBRARY_NAMES), f"{path.name} imports {name}"


def test_no_experiment_imports_another():
    """What makes an experiment's code digest honest: it hashes the package without the other
    experiments' modules (pyode.code_digest), so none of them may be imported."""
    from pyode import experiment_modules

    experiments = {f"pyode.experiments.{name}" for name in experiment_modules()}
    for name in experiments:
        path = PACKAGE / "experiments" / f"{name.rpartition('.')[2]}.py"
        imported = {module for module in _imports(path) if module in experiments} - {name}
        assert not imported, f"{path.name} imports {', '.join(sorted(imported))}"


def test_schema_names_are_the_registries():
    import pyode
    from pyode import bench, reference, scratch
    from pyode.data import DATA_POLICIES
    from pyode.models import ACTIVATIONS
    from pyode.reference._julia import JULIA_MODES

    schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
    names = {key: set(value["enum"]) for key, value in schema["$defs"].items() if "enum" in value}
    assert names["solver"] == set(pyode.SOLVERS)
    assert names["scratch_solver"] == set(scratch.TABLEAUS)
    assert names["activation"] == set(ACTIVATIONS) == set(scratch.ACTIVATIONS)
    assert names["backend"] == set(reference.BACKENDS)
    assert names["bench_method"] == {f"{lib}-{m}" for lib, methods in bench.METHODS.items() for m in methods}
    assert names["bench_library"] == set(bench.METHODS)
    assert names["work_precision_problem"] == set(bench.PRECISION_PROBLEMS)
    sde_methods = reference.get_library("pyode").sde_methods
    assert names["sde_batch_method"] == set(sde_methods) == set(pyode.SDE_SOLVERS) | {"diffrax-milstein"}
    for library, solvers in bench.PRECISION_SOLVERS.items():
        assert names[f"{library}_precision_solver"] == set(solvers), library
    # YAML reads an unquoted off as false
    assert names["policy"] == set(DATA_POLICIES) | {False} == set(JULIA_MODES) | {False}
    declared = set(pyode.SOLVERS) | set(ACTIVATIONS) | set(DATA_POLICIES)

    def enums(node):
        if isinstance(node, dict):
            if isinstance(node.get("enum"), list):
                yield node["enum"]
            for value in node.values():
                yield from enums(value)
        elif isinstance(node, list):
            for value in node:
                yield from enums(value)

    for enum in enums({k: v for k, v in schema.items() if k != "$defs"}):
        assert not declared & set(enum), f"{enum} restates names that $defs declares"


def test_no_setting_has_its_limits_in_the_schema_too():
    """An experiment's settings classes alone declare types, bounds and names; the schema checks only
    the sections that have no settings classes (and leaves an experiment section to pyode's plan)."""
    from pyode.experiments import EXPERIMENTS

    schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
    assert not set(schema["properties"]) & set(EXPERIMENTS)
    assert set(schema["required"]).isdisjoint(EXPERIMENTS)
    bench_field = schema["properties"]["bench"]["properties"]["field"]  # overlaid on classify's field
    assert set(bench_field) <= {"type", "description"} and bench_field["type"] == "object"
    assert not {"field", "solve", "train"} & set(
        schema["$defs"]
    )  # FieldSettings, SolveSettings, TrainSettings
