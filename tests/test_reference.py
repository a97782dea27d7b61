"""The backends of the cross-validation: case files, weight layout, orientation, agreement."""

import importlib.util
import itertools
import json
import subprocess
import sys

import jax
import numpy as np
import pytest
from conftest import HANG_GUARD_SECONDS

from pyode.crossval import make_case
from pyode.reference import (
    BACKENDS,
    BackendUnavailable,
    Skipped,
    get_backend,
    julia_unavailable_reason,
    load_case,
    load_result,
    pyode_field,
    run_backend,
    scratch_field,
    torch_field,
)
from pyode.reference._scipy import field_and_jacobians

jax.config.update("jax_enable_x64", True)

PORTABLE = [
    "pyode-checkpoint",
    "pyode-backsolve",
    "torchdiffeq-odeint",
    "torchdiffeq-adjoint",
    "scipy",
    "scratch",
]


def small_case(activation="tanh", time_input=False, tol=1e-10, **spec):
    field = {
        "kind": "mlp",
        "dim": 2,
        "width": 8,
        "depth": 1,
        "activation": activation,
        "time_input": time_input,
    }
    return make_case(
        f"small_{activation}_{time_input}",
        {"field": field, "batch": 3, "times": 4, **spec},
        seed=0,
        rtol=tol,
        atol=tol,
    )


def test_case_files_round_trip(tmp_path):
    case = small_case(time_input=True)
    case.save(tmp_path / "c.npz")
    loaded = load_case(tmp_path / "c.json")
    assert loaded.field == case.field and loaded.solvers == case.solvers
    for name in ("y0", "ts", "cotangent"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(case, name))
    assert list(loaded.params) == ["weight_0", "bias_0", "weight_1", "bias_1"]
    assert loaded.params["weight_0"].shape == (8, 3)  # (out, in), t the last input
    assert loaded.cotangent.shape == (4, 3, 2)  # (time, batch, dim)


def test_case_rejects_inconsistent_layout():
    case = small_case()
    with pytest.raises(ValueError, match="cotangent"):
        type(case)(**{**case.__dict__, "cotangent": case.cotangent[:, :, :1]})
    transposed = dict(case.params, weight_0=case.params["weight_0"].T)
    with pytest.raises(ValueError, match="sizes"):
        type(case)(**{**case.__dict__, "params": transposed})


@pytest.mark.parametrize("activation", ["tanh", "softplus", "elu", "relu", "silu"])
@pytest.mark.parametrize("time_input", [False, True])
def test_every_backend_field_is_the_same_function(activation, time_input):
    """pyode's MLPField, the NumPy field, torch's module and scratch's MLP agree on f(t, y)."""
    import torch

    from pyode.models import MLPField
    from pyode.scratch import ScratchMLP

    case = small_case(activation, time_input)
    t, y = 0.7, case.y0 * 3
    field = pyode_field(case)
    assert isinstance(field, MLPField)
    assert (field.activation, field.time_input) == (activation, time_input)
    expected = np.asarray(field(t, y))
    np.testing.assert_allclose(field_and_jacobians(case, t, y)[0], expected, rtol=1e-13, atol=1e-13)
    module = torch_field(case)
    got = module(torch.tensor(t, dtype=torch.float64), torch.tensor(y)).detach().numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-13, atol=1e-13)
    assert module.calls == 1
    scratch = scratch_field(case)
    assert isinstance(scratch, ScratchMLP)
    assert (scratch.activation, scratch.time_input) == (activation, time_input)
    np.testing.assert_allclose(scratch(t, y), expected, rtol=1e-13, atol=1e-13)


def sonode_case(tol=1e-10):
    field = {"kind": "sonode", "dim": 2, "width": 6, "depth": 1, "activation": "tanh", "time_input": True}
    return make_case(
        "sonode", {"field": field, "batch": 3, "times": 4, "t1": 1.5}, seed=0, rtol=tol, atol=tol
    )


def test_every_adapter_builds_the_same_second_order_field():
    """dy/dt = (v, MLP(x, v, t)) in pyode, SciPy's hand-written field, torch and scratch."""
    import torch

    from pyode.models import SecondOrderField
    from pyode.scratch import ScratchSecondOrder

    case = sonode_case()
    assert case.y0.shape == (3, 4) and case.field["sizes"] == [5, 6, 2]
    t, y = 0.4, case.y0 * 2
    field, scratch = pyode_field(case), scratch_field(case)
    assert isinstance(field, SecondOrderField) and isinstance(scratch, ScratchSecondOrder)
    expected = np.asarray(field(t, y))
    np.testing.assert_array_equal(expected[:, :2], y[:, 2:])
    np.testing.assert_allclose(field_and_jacobians(case, t, y)[0], expected, rtol=1e-13, atol=1e-13)
    got = torch_field(case)(torch.tensor(t, dtype=torch.float64), torch.tensor(y)).detach().numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(scratch(t, y), expected, rtol=1e-13, atol=1e-13)
    with pytest.raises(
        ValueError, match=r"a field of kind mlp on states of dim 4 needs MLP sizes \[5, \.\.\., 4\]"
    ):
        type(case)(**{**case.__dict__, "field": dict(case.field, kind="mlp")})


def test_backends_agree_on_a_second_order_field():
    case = sonode_case()
    results = [get_backend(name).run(case)[0] for name in PORTABLE]
    assert_all_agree(results, 1e-7)


def test_every_adapter_builds_the_same_van_der_pol():
    import torch

    from pyode.models import VanDerPol
    from pyode.scratch import ScratchVanDerPol

    case = make_case("v", {"field": {"kind": "vdp", "mu": 3.0}, "batch": 2}, seed=0, rtol=1e-8, atol=1e-8)
    t, y = 0.3, case.y0
    field, scratch = pyode_field(case), scratch_field(case)
    assert isinstance(field, VanDerPol) and isinstance(scratch, ScratchVanDerPol) and scratch.mu == 3.0
    expected = np.asarray(field(t, y))
    np.testing.assert_allclose(field_and_jacobians(case, t, y)[0], expected, rtol=1e-13, atol=1e-13)
    got = torch_field(case)(torch.tensor(t, dtype=torch.float64), torch.tensor(y)).detach().numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(scratch(t, y), expected, rtol=1e-13, atol=1e-13)


def cnf_case(activation="tanh", time_input=True, depth=2, tol=1e-10):
    field = {
        "kind": "cnf",
        "dim": 2,
        "width": 6,
        "depth": depth,
        "activation": activation,
        "time_input": time_input,
    }
    return make_case(
        f"cnf_{activation}", {"field": field, "batch": 3, "times": 4}, seed=0, rtol=tol, atol=tol
    )


@pytest.mark.parametrize("activation", ["tanh", "softplus", "elu", "relu", "silu"])
def test_every_backend_builds_the_same_cnf_dynamics(activation):
    """pyode's CNFDynamics, SciPy's field, torch's module (autograd trace) and scratch's ScratchCNF agree on
    [f(t, z), -tr(df/dz)], and the trace is that of the Jacobian JAX computes."""
    import torch

    from pyode.models import CNFDynamics
    from pyode.scratch import ScratchCNF

    case = cnf_case(activation)
    assert case.y0.shape == (3, 3) and np.all(case.y0[:, 2] == 0)
    t, y = 0.4, case.y0 * 2
    field = pyode_field(case)
    assert isinstance(field, CNFDynamics)
    expected = np.asarray(field(t, y))
    jacobian = jax.vmap(jax.jacfwd(lambda z: field.field(t, z)))(y[:, :2])
    np.testing.assert_allclose(expected[:, 2], -np.trace(jacobian, axis1=1, axis2=2), rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(field_and_jacobians(case, t, y)[0], expected, rtol=1e-13, atol=1e-13)
    got = torch_field(case)(torch.tensor(t, dtype=torch.float64), torch.tensor(y)).detach().numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-13, atol=1e-13)
    scratch = scratch_field(case)
    assert isinstance(scratch, ScratchCNF)
    np.testing.assert_allclose(scratch(t, y), expected, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize(
    "activation",
    [
        "tanh",
        "silu",
        pytest.param("softplus", marks=pytest.mark.slow),
        pytest.param("elu", marks=pytest.mark.slow),
    ],
)
def test_the_hand_written_trace_gradient_is_jax_s(activation):
    """ScratchCNF.vjp (the trace's gradient by hand, second derivatives included) against jax.vjp."""
    case = cnf_case(activation)
    field, scratch = pyode_field(case), scratch_field(case)
    rng = np.random.default_rng(1)
    t, y, a = 0.3, rng.normal(size=(3, 3)), rng.normal(size=(3, 3))
    _, vjp = jax.vjp(lambda tt, yy, ff: ff(tt, yy), jax.numpy.asarray(t), jax.numpy.asarray(y), field)
    grad_t, grad_y, grad_field = vjp(jax.numpy.asarray(a))
    products = scratch.vjp(t, y, a)
    np.testing.assert_allclose(products.y, grad_y, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(products.t, grad_t, rtol=1e-12, atol=1e-13)
    expected = np.concatenate([np.concatenate([np.ravel(w), np.ravel(b)]) for w, b in grad_field.weights()])
    np.testing.assert_allclose(products.theta, expected, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("kind", ["mlp", "vdp", "cnf", "sonode"])
def test_scipy_jacobians_match_finite_differences(kind):
    if kind == "vdp":
        case = make_case("v", {"field": {"kind": "vdp", "mu": 3.0}, "batch": 2}, seed=0, rtol=1e-8, atol=1e-8)
    elif kind == "cnf":
        case = cnf_case("softplus")
    elif kind == "sonode":
        case = sonode_case()
    else:
        case = small_case("softplus", time_input=True)
    t, y, h = 0.3, case.y0, 1e-6
    f, j_y, j_theta = field_and_jacobians(case, t, y)
    for i in range(case.dim):
        step = np.zeros_like(y)
        step[:, i] = h
        column = (field_and_jacobians(case, t, y + step)[0] - field_and_jacobians(case, t, y - step)[0]) / (
            2 * h
        )
        np.testing.assert_allclose(j_y[:, :, i], column, rtol=1e-7, atol=1e-8)
    flat = np.concatenate([v.ravel() for v in case.params.values()])
    for p in range(0, flat.size, max(1, flat.size // 7)):
        shifted = []
        for sign in (1, -1):
            theta = flat.copy()
            theta[p] += sign * h
            pieces = np.split(theta, np.cumsum([v.size for v in case.params.values()])[:-1])
            params = {
                k: piece.reshape(v.shape) for (k, v), piece in zip(case.params.items(), pieces, strict=True)
            }
            shifted.append(field_and_jacobians(type(case)(**{**case.__dict__, "params": params}), t, y)[0])
        np.testing.assert_allclose(
            j_theta[:, :, p], (shifted[0] - shifted[1]) / (2 * h), rtol=1e-7, atol=1e-8
        )


def test_results_and_skips_round_trip(tmp_path):
    case = small_case()
    result = get_backend("scipy").run(case)[0]
    result.save(tmp_path / "r.npz")
    loaded = load_result(tmp_path / "r.npz")
    assert loaded.backend == "scipy" and loaded.nfe_forward == result.nfe_forward
    assert loaded.trajectory.shape == (4, 3, 2) and loaded.grad_y0.shape == (3, 2)
    assert {k: v.shape for k, v in loaded.grad_params.items()} == {k: v.shape for k, v in case.params.items()}
    Skipped("diffeqflux-gauss", "c", "no Julia").save(tmp_path / "s.npz")
    skipped = load_result(tmp_path / "s.npz")
    assert isinstance(skipped, Skipped) and skipped.status == "skipped" and skipped.reason == "no Julia"


def assert_all_agree(results, rtol):
    for a, b in itertools.combinations(results, 2):
        for name in ("trajectory", "grad_y0"):
            x, y = getattr(a, name), getattr(b, name)
            error = np.max(np.abs(x - y)) / np.max(np.abs(y))
            assert error < rtol, f"{a.backend} vs {b.backend}: {name} differs by {error:.2e}"
        for key in a.grad_params:
            x, y = a.grad_params[key], b.grad_params[key]
            error = np.max(np.abs(x - y)) / np.max(np.abs(y))
            assert error < rtol, f"{a.backend} vs {b.backend}: d/d{key} differs by {error:.2e}"


def test_backends_agree_at_tight_tolerance():
    """At rtol = atol = 1e-10 in float64 every backend agrees to 1e-7 relative."""
    case = small_case("tanh")
    results = [get_backend(name).run(case)[0] for name in PORTABLE]
    assert_all_agree(results, 1e-7)
    for result in results:
        assert result.nfe_forward > 0 and result.nfe_backward > 0, result.backend


@pytest.mark.skipif(importlib.util.find_spec("torchode") is None, reason="torchode is not installed")
def test_torchode_agrees_with_pyode_and_torchdiffeq():
    """torchode solves every sample on its own, each with its own time: on a time-dependent field at
    1e-12 its trajectory and gradients agree with pyode's and torchdiffeq's to 1e-7 relative; at 1e-3
    they do not (so the comparison can tell)."""
    case = small_case("tanh", time_input=True, tol=1e-12)
    results = [
        get_backend(name).run(case)[0] for name in ("torchode", "pyode-checkpoint", "torchdiffeq-odeint")
    ]
    assert_all_agree(results, 1e-7)
    torchode = results[0]
    assert torchode.trajectory.shape == (4, 3, 2) and torchode.nfe_forward == torchode.nfe_backward > 0
    loose = get_backend("torchode").run(case, [(1e-3, 1e-3)])[0]
    with pytest.raises(AssertionError, match="differs"):
        assert_all_agree([loose, results[1]], 1e-7)


def test_backends_agree_on_a_cnf_case():
    """The augmented [z, log p] dynamics: four backends, each with its own trace, agree at 1e-10."""
    case = cnf_case("tanh", depth=1)
    names = ["pyode-checkpoint", "torchdiffeq-odeint", "scipy", "scratch"]
    results = [get_backend(name).run(case)[0] for name in names]
    assert_all_agree(results, 1e-7)
    assert results[0].trajectory.shape == (4, 3, 3)


@pytest.mark.slow
def test_every_portable_backend_agrees_on_a_deeper_cnf_case():
    case = cnf_case("softplus", depth=2)
    assert_all_agree([get_backend(name).run(case)[0] for name in PORTABLE], 1e-7)


@pytest.mark.slow
@pytest.mark.parametrize("activation", ["softplus", "tanh"])
def test_backends_agree_on_a_time_dependent_field(activation):
    case = small_case(activation, time_input=True, t1=1.5)
    names = PORTABLE + ["pyode-backsolve-seminorm"]
    assert_all_agree([get_backend(name).run(case)[0] for name in names], 1e-7)


@pytest.mark.slow
def test_backends_agree_on_van_der_pol():
    spec = {"field": {"kind": "vdp", "mu": 2.0}, "batch": 2, "times": 4, "t1": 1.0}
    case = make_case("vdp", spec, seed=0, rtol=1e-10, atol=1e-10)
    names = ["pyode-checkpoint", "torchdiffeq-odeint", "scipy"]
    assert_all_agree([get_backend(name).run(case)[0] for name in names], 1e-7)


def test_julia_is_detected_without_importing_juliacall_and_its_absence_explained(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    for variable in ("PYTHON_JULIACALL_EXE", "PYTHON_JULIAPKG_EXE", "PYTHON_JULIAPKG_PROJECT"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setitem(sys.modules, "juliacall", None)  # importing it would now raise
    reason = julia_unavailable_reason("auto")
    assert reason is not None and reason.startswith("Julia not found")
    assert "julia: off" in julia_unavailable_reason("off")
    with pytest.raises(ValueError, match="julia mode"):
        julia_unavailable_reason("sometimes")


def _fake_julia(folder, version="1.10.4"):
    exe = folder / "julia"
    exe.write_text(f"#!/bin/sh\necho julia version {version}\n")
    exe.chmod(0o755)
    return exe


@pytest.fixture
def no_julia(monkeypatch, tmp_path):
    """An environment where juliacall would find nothing: empty PATH, depots and variables."""
    for variable in ("PYTHON_JULIACALL_EXE", "PYTHON_JULIACALL_PROJECT", "PYTHON_JULIAPKG_EXE"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    monkeypatch.setenv("PYTHON_JULIAPKG_PROJECT", str(tmp_path / "juliapkg"))
    monkeypatch.setenv("JULIAUP_DEPOT_PATH", str(tmp_path / "juliaup-depot"))
    (tmp_path / "bin").mkdir()
    return tmp_path


def test_julia_is_found_as_juliacall_would_find_it(no_julia, monkeypatch):
    from pyode.reference import find_julia

    assert find_julia() is None
    juliaup = no_julia / "bin" / "juliaup"
    juliaup.write_text("#!/bin/sh\n")
    juliaup.chmod(0o755)
    assert "juliaup itself is an installer" in julia_unavailable_reason("require")
    installed = no_julia / "juliaup-depot" / "juliaup" / "julia-1.10.5" / "bin"
    installed.mkdir(parents=True)
    _fake_julia(installed, "1.10.5")
    index = {"InstalledVersions": {"1.10.5+0.x64": {"Path": "julia-1.10.5"}}}
    (no_julia / "juliaup-depot" / "juliaup" / "juliaup.json").write_text(json.dumps(index))
    assert find_julia() == str(installed / "julia")


def test_an_old_julia_is_not_usable(no_julia):
    _fake_julia(no_julia / "bin", "1.9.4")
    reason = julia_unavailable_reason("auto")
    assert "no Julia >= 1.10.3 found" in reason and "Julia 1.9.4" in reason


def test_juliacall_variables_must_come_together_with_the_packages(no_julia, monkeypatch):
    from pyode.reference import find_julia

    exe = _fake_julia(no_julia)
    monkeypatch.setenv("PYTHON_JULIACALL_EXE", str(exe))
    assert "must be set together" in julia_unavailable_reason("auto")
    project = no_julia / "project"
    project.mkdir()
    monkeypatch.setenv("PYTHON_JULIACALL_PROJECT", str(project))
    assert "lacks PythonCall, DiffEqFlux" in julia_unavailable_reason("auto")
    packages = ("PythonCall", "DiffEqFlux", "SciMLSensitivity", "OrdinaryDiffEq", "Lux", "Zygote", "NPZ")
    (project / "Manifest.toml").write_text("".join(f"[[deps.{name}]]\n" for name in packages))
    assert find_julia() == str(exe)


def test_juliapkg_installs_julia_in_its_project(no_julia):
    from pyode.reference import find_julia, juliapkg_project

    assert juliapkg_project() == no_julia / "juliapkg"
    bindir = no_julia / "juliapkg" / "pyjuliapkg" / "install" / "bin"
    bindir.mkdir(parents=True)
    exe = _fake_julia(bindir)
    assert find_julia() == str(exe)


def test_missing_julia_is_skipped_in_auto_and_an_error_in_require(tmp_path, monkeypatch):
    reason = julia_unavailable_reason("auto")
    if reason is None:
        pytest.skip("Julia is installed here")
    monkeypatch.setenv("PYTHON_JULIAPKG_OFFLINE", "yes")
    case = small_case()
    case.save(tmp_path / "c.npz")
    (skipped,) = run_backend("diffeqflux-gauss", tmp_path / "c.npz", [tmp_path / "r.npz"], julia="auto")
    assert isinstance(skipped, Skipped) and skipped.reason == reason
    assert isinstance(load_result(tmp_path / "r.npz"), Skipped)
    with pytest.raises(BackendUnavailable):
        run_backend("diffeqflux-gauss", tmp_path / "c.npz", [tmp_path / "r2.npz"], julia="require")


def test_a_backend_that_breaks_is_reported_as_failed(tmp_path):
    spec = {"field": {"kind": "vdp", "mu": 1.0}, "batch": 1, "times": 3}
    case = make_case("v", spec, seed=0, rtol=1e-3, atol=1e-3)
    case = type(case)(**{**case.__dict__, "solvers": dict(case.solvers, scipy="NoSuchMethod")})
    case.save(tmp_path / "v.npz")
    (failed,) = run_backend("scipy", tmp_path / "v.npz", [tmp_path / "r.npz"])
    assert failed.status == "failed" and failed.reason.startswith("ValueError")


def test_registry_names_every_backend():
    assert set(PORTABLE) < set(BACKENDS)
    assert {n for n in BACKENDS if n.startswith("diffeqflux")} == {
        "diffeqflux-interpolating",
        "diffeqflux-quadrature",
        "diffeqflux-backsolve",
        "diffeqflux-gauss",
    }
    with pytest.raises(ValueError, match="unknown backend"):
        get_backend("matlab")


@pytest.mark.julia
@pytest.mark.parametrize("sensealg", ["interpolating", "quadrature", "backsolve", "gauss"])
def test_diffeqflux_agrees_with_scipy(sensealg, tmp_path):
    """Each DiffEqFlux backend in its own process (juliacall never shares one with torch)."""
    reason = julia_unavailable_reason("auto")
    if reason is not None:
        pytest.skip(reason)
    cases = (small_case("tanh"), small_case("softplus", time_input=True), small_case("silu"), sonode_case())
    for case in cases:
        case.save(tmp_path / f"{case.name}.npz")
        out = tmp_path / f"{case.name}-{sensealg}.npz"
        command = [
            sys.executable,
            "-m",
            "pyode.reference",
            f"diffeqflux-{sensealg}",
            str(tmp_path / f"{case.name}.npz"),
        ]
        subprocess.run(command + [str(out), "--julia", "require"], check=True, timeout=HANG_GUARD_SECONDS)
        result = load_result(out)
        assert not isinstance(result, Skipped), result.reason
        assert_all_agree([result, get_backend("scipy").run(case)[0]], 1e-7)
