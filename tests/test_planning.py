"""Planning (settings, `plan`, the workflow's parse-time checks) imports no JAX, and the light name
tables it reads agree with the tables that map those names to Diffrax and JAX."""

import subprocess
import sys
from pathlib import Path

import pyode
from pyode import bench
from pyode.experiments import sde
from pyode.models import ACTIVATION_NAMES, ACTIVATIONS

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("jax", "jaxlib", "equinox", "diffrax", "optax", "torch", "matplotlib", "scipy.stats")

PLAN_EVERY_EXPERIMENT = f"""
import sys
sys.path.insert(0, {str(ROOT)!r})
import yaml
import pyode.experiments
from pyode.bench import check_precision_solvers
from pyode.reference import julia_unavailable_reason

config = yaml.safe_load(open({str(ROOT / "config" / "config.yaml")!r}))
for name, experiment in pyode.experiments.EXPERIMENTS.items():
    assert experiment.plan(config[name], seed=config["seed"]), name
pyode.experiments.sde.plan_convergence(config["sde"], seed=config["seed"])
check_precision_solvers(config["bench"]["work_precision"]["solvers"])
print(" ".join(sorted(name for name in {HEAVY!r} if name in sys.modules)))
"""


def test_planning_the_default_config_imports_no_heavy_library():
    done = subprocess.run(
        [sys.executable, "-c", PLAN_EVERY_EXPERIMENT], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "", f"planning imported {done.stdout.strip()}"


def test_solver_names_are_the_solver_table():
    assert pyode.SOLVER_NAMES == tuple(pyode.SOLVERS)
    assert set(pyode.FIXED_STEP_SOLVERS) == {n for n, spec in pyode.SOLVERS.items() if not spec.adaptive}
    assert set(pyode.IMPLICIT_SOLVERS) == {n for n, spec in pyode.SOLVERS.items() if spec.implicit}
    assert bench.library_solvers("pyode") == tuple(n for n, spec in pyode.SOLVERS.items() if spec.adaptive)


def test_activation_names_are_the_activation_table():
    assert ACTIVATION_NAMES == tuple(ACTIVATIONS)


def test_ito_solvers_are_those_converging_to_the_ito_solution():
    assert sde.ITO_SOLVERS == tuple(n for n, spec in pyode.SDE_SOLVERS.items() if spec.calculus == "ito")
