"""Continuous normalising flows: the densities, the learnt density's mass, exact against Hutchinson traces
within their Monte-Carlo error, torchdiffeq's log-density on the same weights, and the experiment's plan."""

import dataclasses
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pyode import solve
from pyode.crossval import case_from_cnf
from pyode.data import DENSITIES, DensitySamples, sample_density, true_log_density
from pyode.experiments import SettingsError, cnf
from pyode.models import CNFDynamics, load_model, standard_normal_log_density

TIGHT = {"solver": "dopri5", "rtol": 1e-10, "atol": 1e-10, "max_steps": 100_000}
FINE = {**TIGHT, "rtol": 1e-8, "atol": 1e-8}
"""Far below the Monte-Carlo errors the Hutchinson test measures, and the trapezoid rule's."""


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small flow trained for 200 steps on the eight Gaussians (float32), through the experiment."""
    folder = tmp_path_factory.mktemp("cnf")
    settings = cnf.resolve(
        {
            "density": "8gaussians",
            "train_points": 4000,
            "test_points": 500,
            "field": {"width": 24, "depth": 2},
            "train": {"steps": 200, "batch_size": 256, "learning_rate": 1e-2, "checkpoint_every": 200},
        }
    )
    cnf.make_data(settings, folder / "data.npz")
    cnf.train(folder / "data.npz", settings, folder / "run", progress=False)
    model, _ = load_model(folder / "run" / "model.npz")
    return model, DensitySamples.load(folder / "data.npz")


def as_float64(model):
    return jax.tree_util.tree_map(lambda a: a.astype(jnp.float64) if eqx.is_inexact_array(a) else a, model)


def test_densities_are_seeded_and_the_closed_forms_are_densities():
    for name in DENSITIES:
        first, again = sample_density(name, seed=3), sample_density(name, seed=3)
        assert first.x_train.shape == (20000, 2) and first.x_test.shape == (5000, 2)
        np.testing.assert_array_equal(first.x_train, again.x_train)
        assert not np.array_equal(first.x_train, sample_density(name, seed=4).x_train)
    edges = np.linspace(-7, 7, 701)
    centres = 0.5 * (edges[1:] + edges[:-1])
    grid = np.stack([c.ravel() for c in np.meshgrid(centres, centres)], axis=1)
    for name in ("8gaussians", "checkerboard"):
        mass = np.exp(true_log_density(name, grid)).sum() * (edges[1] - edges[0]) ** 2
        assert abs(mass - 1) < 1e-5, name
        points = sample_density(name, seed=0).x_test
        assert np.all(np.isfinite(true_log_density(name, points))), f"{name}: a sample outside its support"
    assert true_log_density("moons", grid[:3]) is None


def test_the_learnt_density_integrates_to_one(trained):
    """Quadrature of exp(log p) on the grid the evaluation uses: within 1% of 1. Without the trace term the
    same flow's "density" (the base density pulled back alone) is not one, so the check can fail."""
    model, samples = trained
    edges = cnf.grid_axes(samples.x_train, 120, 2.0)
    mass, log_p = cnf.density_mass(model, edges)
    assert abs(mass - 1) < 0.01, mass
    centres = 0.5 * (edges[1:] + edges[:-1])
    grid = np.stack([c.ravel() for c in np.meshgrid(centres, centres)], axis=1).astype(np.float32)
    final = solve(
        model.dynamics,
        jnp.concatenate([grid, np.zeros((len(grid), 1), np.float32)], 1),
        t0=0.0,
        t1=1.0,
        **model.solve_options,
    ).final
    without_trace = (
        np.exp(np.asarray(standard_normal_log_density(final[:, :2]))).sum() * (edges[1] - edges[0]) ** 2
    )
    assert abs(without_trace - 1) > 0.05, without_trace
    assert log_p.shape == (120, 120)


def _integrated_jacobian(dynamics: CNFDynamics, x):
    """M = integral over [0, 1] of df/dz along each point's path, solved beside the path (float64)."""

    class WithJacobian(eqx.Module):
        field: eqx.Module

        def __call__(self, t, y):
            z = y[:, :2]
            jacobian = jax.vmap(jax.jacfwd(lambda point: self.field(t, point)))(z)
            return jnp.concatenate([self.field(t, z), jacobian.reshape(len(z), 4)], axis=1)

    y0 = jnp.concatenate([x, jnp.zeros((len(x), 4))], axis=1)
    return np.asarray(solve(WithJacobian(dynamics.field), y0, t0=0.0, t1=1.0, **FINE).final[:, 2:]).reshape(
        -1, 2, 2
    )


@pytest.mark.parametrize("probe", ["rademacher", pytest.param("gaussian", marks=pytest.mark.slow)])
def test_exact_and_hutchinson_log_likelihoods_agree_within_their_monte_carlo_error(trained, probe):
    """Per point, the mean of K probes' estimates against the exact log-density, in units of its standard
    error. With the probe fixed along the path the estimate of the integrated trace is e^T M e, M the
    integrated Jacobian, whose variance is known: (M12 + M21)^2 for Rademacher probes, 2 |sym M|_F^2
    for Gaussian ones. The standardised differences must look standard normal."""
    model, samples = trained
    flow = as_float64(model)
    x = jnp.asarray(samples.x_test[:60], jnp.float64)
    probes = 24
    exact, _, _ = cnf.exact(flow).log_density(x, **FINE)
    estimator = dataclasses.replace(cnf.hutchinson(flow), probe=probe)
    repeated = jnp.repeat(x, probes, axis=0)
    estimates, _, _ = estimator.log_density(repeated, key=jax.random.PRNGKey(11), **FINE)
    means = np.asarray(estimates).reshape(len(x), probes).mean(axis=1)
    integrated = _integrated_jacobian(flow.dynamics, x)
    symmetric = 0.5 * (integrated + integrated.transpose(0, 2, 1))
    if probe == "rademacher":
        variance = (integrated[:, 0, 1] + integrated[:, 1, 0]) ** 2
    else:
        variance = 2 * np.sum(symmetric**2, axis=(1, 2))
    z = (means - np.asarray(exact)) / np.sqrt(variance / probes)
    assert np.max(np.abs(z)) < 4.5, np.max(np.abs(z))
    assert abs(np.mean(z)) < 4 / math.sqrt(len(z)), np.mean(z)
    assert 0.5 < np.mean(z**2) < 1.5, np.mean(z**2)  # chi-square / n: sd sqrt(2 / 60) = 0.18


@pytest.mark.slow
def test_the_evaluation_reports_hutchinson_within_its_standard_error(trained):
    model, samples = trained
    exact, _, _ = cnf.log_density(cnf.exact(model), samples.x_test)
    check = cnf.hutchinson_check(model, samples.x_test, exact, probes=4, seed=0)
    assert check["hutchinson_stderr"] > 0 and abs(check["hutchinson_z"]) < 4, check


def test_log_density_agrees_with_torchdiffeq(trained):
    """log p(x) of pyode's flow against torchdiffeq solving the same augmented dynamics (torch's own
    autograd trace) with the same weights: float64, dopri5 at 1e-10."""
    torch = pytest.importorskip("torch")
    torchdiffeq = pytest.importorskip("torchdiffeq")
    from pyode.reference import torch_field

    model, samples = trained
    flow = as_float64(model)
    points = samples.x_test[:8].astype(np.float64)
    ours, _, _ = flow.log_density(jnp.asarray(points), **TIGHT)
    case = case_from_cnf("flow", flow, points, {"times": 2}, seed=0, rtol=1e-10, atol=1e-10)
    field = torch_field(case)
    with torch.no_grad():
        final = torchdiffeq.odeint(
            field, torch.tensor(case.y0), torch.tensor(case.ts), rtol=1e-10, atol=1e-10, method="dopri5"
        )[-1].numpy()
    theirs = -0.5 * np.sum(final[:, :2] ** 2, axis=1) - math.log(2 * math.pi) - final[:, 2]
    np.testing.assert_allclose(np.asarray(ours), theirs, rtol=1e-8, atol=1e-8)
    assert np.std(theirs) > 0.1  # distinct points, distinct densities


@pytest.mark.slow
def test_rnode_terms_are_the_integrals_they_name(trained):
    """The regularised state's kinetic energy and Jacobian norm against a trapezoid rule along the path."""
    model, samples = trained
    flow = as_float64(cnf.exact(model, regularise=True))
    x = jnp.asarray(samples.x_test[:3], jnp.float64)
    _, regularisers, _ = flow.log_density(x, **FINE)
    ts = jnp.linspace(0.0, 1.0, 401)
    path = solve(flow.dynamics.field, x, ts, **FINE).ys
    field = flow.dynamics.field
    velocity = jax.vmap(lambda t, z: field(t, z))(ts, path)
    jacobians = jax.vmap(lambda t, z: jax.vmap(jax.jacfwd(lambda p: field(t, p)))(z))(ts, path)
    kinetic = np.trapezoid(np.sum(np.asarray(velocity) ** 2, axis=-1), dx=1 / 400, axis=0)
    frobenius = np.trapezoid(np.sum(np.asarray(jacobians) ** 2, axis=(-1, -2)), dx=1 / 400, axis=0)
    np.testing.assert_allclose(np.asarray(regularisers[:, 0]), kinetic, rtol=1e-4)
    np.testing.assert_allclose(np.asarray(regularisers[:, 1]), frobenius, rtol=1e-4)


def test_plans_restrict_models_to_their_densities_and_name_bad_settings():
    section = {
        "densities": [{"name": "8gaussians"}, {"name": "moons", "noise": 0.05, "train": {"steps": 7}}],
        "models": [
            {"name": "ffjord"},
            {"name": "rnode", "kinetic": 0.1, "jacobian": 0.1, "densities": ["moons"]},
        ],
    }
    runs = cnf.plan(section, seed=3)
    assert set(runs) == {"8gaussians/ffjord", "moons/ffjord", "moons/rnode"}
    assert runs["moons/rnode"].flow.regularised and not runs["moons/ffjord"].flow.regularised
    assert runs["moons/ffjord"].data == {"noise": 0.05} and runs["moons/ffjord"].train.steps == 7
    with pytest.raises(SettingsError, match="takes no option noise"):
        checkerboard = {"name": "checkerboard", "noise": 0.1}
        cnf.plan({**section, "densities": [{"name": "moons"}, checkerboard]}, seed=0)
    for densities in (["pinwheel"], ["moons", "pinwheel"]):  # the first planned nothing at all
        with pytest.raises(
            SettingsError,
            match=r"^cnf.models\[rnode\].densities names pinwheel, which cnf.densities does not have; "
            r"it has 8gaussians, moons$",
        ):
            cnf.plan({**section, "models": [{"name": "rnode", "densities": densities}]}, seed=0)
    with pytest.raises(SettingsError, match="flow.trace is 'hutchinsn'; choose one of exact, hutchinson"):
        cnf.resolve({"flow": {"trace": "hutchinsn"}})
    with pytest.raises(SettingsError, match="batch_size is 512; there are 100 training points"):
        cnf.resolve({"train_points": 100, "train": {"batch_size": 512}})


def test_samples_of_a_density_know_its_true_log_density(tmp_path):
    """The evaluation scores a flow against `DensitySamples.true_log_density`, kept through a file."""
    samples = sample_density("8gaussians", train_points=16, test_points=8, seed=3)
    samples.save(tmp_path / "s.npz")
    loaded = DensitySamples.load(tmp_path / "s.npz")
    expected = true_log_density("8gaussians", samples.x_test)
    assert np.array_equal(loaded.true_log_density(loaded.x_test), expected)
