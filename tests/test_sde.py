"""SDE solves and neural SDEs: convergence orders against an exact solution on the same Brownian paths,
Diffrax against torchsde on the same increments (paths and gradients, pathwise and adjoint), recovery of
known drift and diffusion, and the experiment's settings."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import pyode
from pyode.data import simulate_paths, true_moments
from pyode.experiments import SettingsError, sde
from pyode.models import make_neural_sde

RECOVERY_BOUNDS = {"ou": (0.10, 0.03), "gbm": (0.10, 0.05)}
"""(drift, diffusion) relative L2 errors the default fits must stay under (README, "Neural SDEs")."""


def test_strong_and_weak_orders_of_euler_maruyama_and_milstein():
    """GBM in float64 against its exact solution driven by the same 3000 Brownian paths: slopes of the
    errors against the step over the default fit ranges. Euler-Maruyama: strong 1/2, weak 1; Milstein:
    strong 1, weak 1."""
    metrics, details = sde.convergence(sde.resolve_convergence({"paths": 3000}))
    euler, milstein = metrics["gbm/euler"], metrics["gbm/milstein"]
    assert 0.4 < euler["strong_order"] < 0.65, euler
    assert 0.85 < milstein["strong_order"] < 1.15, milstein
    assert 0.8 < euler["weak_order"] < 1.2 and 0.8 < milstein["weak_order"] < 1.2, (euler, milstein)
    assert details["milstein"]["strong"][-1] < details["euler"]["strong"][-1] / 5


def test_grid_brownian_paths_hand_a_fixed_step_solve_the_given_increments():
    grid = jnp.linspace(0.0, 1.0, 9)
    ws = jnp.cumsum(jnp.concatenate([jnp.zeros((1, 2)), jax.random.normal(jax.random.PRNGKey(0), (8, 2))]), 0)
    path = pyode.GridBrownianPath(grid, ws)
    np.testing.assert_allclose(path.evaluate(grid[3], grid[4]), ws[4] - ws[3], rtol=0, atol=1e-15)
    solution = pyode.solve_sde(
        lambda t, y, a: jnp.zeros_like(y),
        lambda t, y, a: jnp.ones_like(y),
        jnp.zeros(2),
        grid,
        brownian=path,
        dt=0.125,
    )
    np.testing.assert_allclose(solution.ys, ws, rtol=0, atol=1e-14)  # dy = dW
    for solver in ("euler", "euler_heun"):
        with pytest.raises(
            ValueError, match="stochastic adjoint .* needs a Stratonovich solver .*heun, midpoint"
        ):
            pyode.check_sde_options(solver, "backsolve")


class _Problem:
    """A neural SDE with diagonal noise on 3 paths in float64: a drift MLP 2 -> 8 -> 2 and a diffusion
    whose i-th entry is an MLP 1 -> 8 -> 1 of y_i alone (diagonal noise in torchsde's sense, which its
    Milstein step assumes), the loss sum(cotangent * ys), Brownian increments on 40 steps over [0, 1]."""

    def __init__(self):
        rng = np.random.default_rng(0)
        drift_shapes = [(8, 2), (8,), (2, 8), (2,)]
        diffusion_shapes = [(2, 8), (2, 8), (2, 8), (2,)]
        self.params = [rng.normal(size=s) / np.sqrt(s[-1]) for s in drift_shapes + diffusion_shapes]
        self.y0 = rng.normal(size=(3, 2))
        self.steps, self.dt = 40, 1.0 / 40
        self.grid = np.linspace(0.0, 1.0, self.steps + 1)
        increments = rng.normal(size=(self.steps, 3, 2)) * np.sqrt(self.dt)
        self.ws = np.concatenate([np.zeros((1, 3, 2)), np.cumsum(increments, axis=0)])
        self.ts = self.grid[::8]
        self.cotangent = rng.normal(size=(len(self.ts), 3, 2))

    def diffrax(self, solver: str, adjoint: str):
        def drift(t, y, p):
            return jnp.tanh(y @ p[0].T + p[1]) @ p[2].T + p[3]

        def diffusion(t, y, p):
            return jax.nn.sigmoid(jnp.sum(jnp.tanh(y[..., None] * p[4] + p[5]) * p[6], axis=-1) + p[7])

        path = pyode.GridBrownianPath(jnp.asarray(self.grid), jnp.asarray(self.ws))

        def loss(params, y0):
            ys = pyode.solve_sde(
                drift,
                diffusion,
                y0,
                self.ts,
                brownian=path,
                dt=self.dt,
                solver=solver,
                adjoint=adjoint,
                args=params,
            ).ys
            return jnp.sum(self.cotangent * ys), ys

        params = [jnp.asarray(p) for p in self.params]
        (_, ys), grads = jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(params, jnp.asarray(self.y0))
        return np.asarray(ys), [np.asarray(g) for g in grads[0]], np.asarray(grads[1])

    def torchsde(self, method: str, calculus: str, adjoint: bool):
        torch = pytest.importorskip("torch")
        torchsde = pytest.importorskip("torchsde")
        grid, ws = self.grid, torch.tensor(self.ws)

        class GivenIncrements(torchsde.BaseBrownian):
            """The same Brownian values on the same grid, asked for at grid times only."""

            def __call__(self, ta, tb=None, return_U=False, return_A=False):
                index = lambda t: int(np.argmin(np.abs(grid - float(t))))  # noqa: E731
                assert all(abs(grid[index(t)] - float(t)) < 1e-12 for t in (ta, tb) if t is not None)
                return ws[index(ta)] if tb is None else ws[index(tb)] - ws[index(ta)]

            def __repr__(self):
                return "GivenIncrements()"

            dtype, device, shape, levy_area_approximation = torch.float64, torch.device("cpu"), (3, 2), "none"

        class SDE(torch.nn.Module):
            noise_type, sde_type = "diagonal", calculus

            def __init__(self, params):
                super().__init__()
                self.p = torch.nn.ParameterList([torch.nn.Parameter(torch.tensor(a)) for a in params])

            def f(self, t, y):
                return torch.tanh(y @ self.p[0].T + self.p[1]) @ self.p[2].T + self.p[3]

            def g(self, t, y):
                hidden = torch.tanh(y[..., None] * self.p[4] + self.p[5])
                return torch.sigmoid(torch.sum(hidden * self.p[6], dim=-1) + self.p[7])

        module, y0 = SDE(self.params), torch.tensor(self.y0, requires_grad=True)
        options = dict(bm=GivenIncrements(), method=method, dt=self.dt)
        if adjoint:
            ys = torchsde.sdeint_adjoint(module, y0, torch.tensor(self.ts), adjoint_method=method, **options)
        else:
            ys = torchsde.sdeint(module, y0, torch.tensor(self.ts), **options)
        torch.sum(torch.tensor(self.cotangent) * ys).backward()
        return ys.detach().numpy(), [p.grad.numpy() for p in module.p], y0.grad.numpy()


def _relative(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))) / np.max(np.abs(np.asarray(b))))


@pytest.mark.parametrize(
    "solver, method, calculus, adjoint",
    [
        ("euler", "euler", "ito", False),
        ("milstein", "milstein", "ito", False),
        ("midpoint", "midpoint", "stratonovich", False),
        pytest.param("euler_heun", "euler_heun", "stratonovich", False, marks=pytest.mark.slow),
        pytest.param("heun", "heun", "stratonovich", False, marks=pytest.mark.slow),
        ("midpoint", "midpoint", "stratonovich", True),
        pytest.param("heun", "heun", "stratonovich", True, marks=pytest.mark.slow),
    ],
    ids=["euler", "milstein", "euler-heun", "midpoint", "heun", "midpoint-adjoint", "heun-adjoint"],
)
def test_diffrax_and_torchsde_agree_on_the_same_increments(solver, method, calculus, adjoint):
    """Paths, dL/dy0 and dL/dtheta to round-off in float64 at a fixed step: pathwise backprop against
    torchsde's sdeint, and the stochastic adjoint (Diffrax's BacksolveAdjoint) against its sdeint_adjoint."""
    problem = _Problem()
    ys, grad_params, grad_y0 = problem.diffrax(solver, "backsolve" if adjoint else "checkpoint")
    theirs = problem.torchsde(method, calculus, adjoint)
    assert _relative(ys, theirs[0]) < 1e-13
    assert _relative(grad_y0, theirs[2]) < 1e-12
    assert max(_relative(mine, other) for mine, other in zip(grad_params, theirs[1])) < 1e-12
    assert np.max(np.abs(grad_y0)) > 0.1  # gradients that mean something


def _mixing_sde(dim: int):
    """A drift and a diagonal diffusion acting on each path (row) alone, the diffusion's i-th entry a
    function of the whole path (so Milstein's within-path Jacobian is full), float64."""
    rng = np.random.default_rng(3)
    params = [
        jnp.asarray(rng.normal(size=s) / np.sqrt(s[-1])) for s in [(8, dim), (dim, 8), (8, dim), (dim, 8)]
    ]

    def drift(t, y, p):
        return jnp.tanh(y @ p[0].T) @ p[1].T

    def diffusion(t, y, p):
        return jax.nn.softplus(jnp.tanh(y @ p[2].T) @ p[3].T)

    return drift, diffusion, params


@pytest.mark.parametrize("solver", ["euler", "milstein"])
def test_a_batch_solved_at_once_equals_each_path_solved_alone(solver):
    """Paths of a batch (5 paths of 2 coordinates) on a Virtual Brownian tree drawn for the batch, against
    each path solved alone (under vmap) on its own slice of the same increments; the gradients too."""
    drift, diffusion, params = _mixing_sde(2)
    y0 = jnp.asarray(np.random.default_rng(4).normal(size=(5, 2)))
    grid = np.linspace(0.0, 1.0, 17)
    tree = pyode.brownian_path("virtual_tree", 0.0, 1.0, (5, 2), key=jax.random.PRNGKey(7), dt=1 / 16)
    ws = jax.vmap(tree.evaluate)(jnp.asarray(grid)).reshape(len(grid), 5, 2)
    ts = grid[::4]

    def solve(y0, ws, p):
        path = pyode.GridBrownianPath(jnp.asarray(grid), ws)
        return pyode.solve_sde(drift, diffusion, y0, ts, brownian=path, dt=1 / 16, solver=solver, args=p).ys

    def loss(p, y0, ws):
        return jnp.sum(jnp.sin(solve(y0, ws, p)))

    batch = jax.jit(solve)(y0, ws, params)
    on_tree = pyode.solve_sde(drift, diffusion, y0, ts, brownian=tree, dt=1 / 16, solver=solver, args=params)
    np.testing.assert_allclose(on_tree.ys, batch, rtol=1e-12, atol=1e-12)  # the tree's own increments
    alone = jax.jit(jax.vmap(solve, in_axes=(0, 1, None), out_axes=1))(y0, ws, params)
    np.testing.assert_allclose(batch, alone, rtol=1e-13, atol=1e-14)
    grads = jax.jit(jax.grad(loss))(params, y0, ws)
    each = jax.jit(jax.vmap(jax.grad(loss), in_axes=(None, 0, 1)))(params, y0, ws)
    for mine, theirs in zip(grads, each):
        np.testing.assert_allclose(mine, theirs.sum(axis=0), rtol=1e-12, atol=1e-13)
    assert float(jnp.max(jnp.abs(batch[-1] - y0))) > 0.1  # paths that moved


def test_milstein_on_a_batch_takes_diffrax_itomilstein_step():
    """pyode's Milstein is Diffrax's ItoMilstein computed per path: the same paths to round-off on a batch
    small enough for Diffrax's (its cost is cubic in paths x coordinates)."""
    import diffrax
    import lineax

    drift, diffusion, params = _mixing_sde(2)
    y0 = jnp.asarray(np.random.default_rng(5).normal(size=(4, 2)))
    tree = pyode.brownian_path("virtual_tree", 0.0, 1.0, (4, 2), key=jax.random.PRNGKey(8), dt=1 / 32)
    ts = np.linspace(0.0, 1.0, 5)
    mine = pyode.solve_sde(drift, diffusion, y0, ts, brownian=tree, dt=1 / 32, solver="milstein", args=params)
    terms = diffrax.MultiTerm(
        diffrax.ODETerm(lambda t, y, p: drift(t, y.reshape(4, 2), p).reshape(-1)),
        diffrax.ControlTerm(
            lambda t, y, p: lineax.DiagonalLinearOperator(diffusion(t, y.reshape(4, 2), p).reshape(-1)), tree
        ),
    )
    theirs = diffrax.diffeqsolve(
        terms,
        diffrax.ItoMilstein(),
        0.0,
        1.0,
        1 / 32,
        y0.reshape(-1),
        args=params,
        saveat=diffrax.SaveAt(ts=ts),
    )
    np.testing.assert_allclose(mine.ys, theirs.ys.reshape(len(ts), 4, 2), rtol=1e-13, atol=1e-14)


def _largest_array(jaxpr) -> int:
    """The most elements of any value a jaxpr (and every jaxpr inside it) computes."""
    largest = 0
    for eqn in jaxpr.eqns:
        for var in eqn.outvars:
            largest = max(largest, int(np.prod(getattr(var.aval, "shape", ()))))
        for param in eqn.params.values():
            for inner in param if isinstance(param, (list, tuple)) else [param]:
                inner = getattr(inner, "jaxpr", inner)  # a closed jaxpr's
                if hasattr(inner, "eqns"):
                    largest = max(largest, _largest_array(inner))
    return largest


@pytest.mark.parametrize("solver", sorted(pyode.SDE_SOLVERS))
def test_a_batch_of_400_paths_builds_no_array_quadratic_in_the_paths(solver):
    """Diffrax's ItoMilstein on 400 one-dimensional paths built a 400^3 array (4000 paths asked for
    512 GB): no solver may build even a 400^2 one; and Milstein on the batch runs."""
    model = make_neural_sde(1, drift_width=8, diffusion_width=8, key=jax.random.PRNGKey(0))
    y0 = jnp.linspace(-1.0, 1.0, 400)[:, None]
    ts = np.linspace(0.0, 1.0, 3)

    def sample(y0, key):
        return model.sample(y0, ts, key=key, dt=1 / 16, solver=solver).ys

    jaxpr = jax.make_jaxpr(sample)(y0, jax.random.PRNGKey(1))
    assert _largest_array(jaxpr.jaxpr) < 400**2
    if solver == "milstein":
        ys = jax.jit(sample)(y0, jax.random.PRNGKey(1))
        assert ys.shape == (3, 400, 1) and bool(jnp.all(jnp.isfinite(ys)))


def _fit(process: str, tmp_path, changes: dict) -> dict:
    settings = sde.resolve({"process": process, **changes})
    sde.make_data(settings, tmp_path / "data.npz")
    sde.train(tmp_path / "data.npz", settings, tmp_path / "run", progress=False)
    model, _ = pyode.models.load_model(tmp_path / "run" / "model.npz")
    paths = pyode.data.Paths.load(tmp_path / "data.npz")
    states, _ = sde.transitions(paths.train)
    drift, diffusion = sde.coefficients(model, states)
    return {
        "drift_error": sde.relative_error(drift, paths.drift(states)),
        "diffusion_error": sde.relative_error(diffusion, paths.diffusion(states)),
    }


def test_a_short_fit_recovers_the_ornstein_uhlenbeck_coefficients(tmp_path):
    """A quarter of the default budget (100 paths, 800 steps) already recovers drift and diffusion to
    20% and 3%; a constant diffusion and a zero drift would be 100% off."""
    errors = _fit("ou", tmp_path, {"data": {"paths": 100}, "train": {"steps": 800, "batch_size": 2048}})
    assert errors["drift_error"] < 0.20 and errors["diffusion_error"] < 0.03, errors


@pytest.mark.slow
@pytest.mark.parametrize("process", ["ou", "gbm"])
def test_the_default_fits_recover_drift_and_diffusion_within_the_stated_error(process, tmp_path):
    """The workflow's default fit of each process (same settings, same seed 42), against the bounds the
    README states."""
    errors = _fit(process, tmp_path, {})
    drift_bound, diffusion_bound = RECOVERY_BOUNDS[process]
    assert errors["drift_error"] < drift_bound and errors["diffusion_error"] < diffusion_bound, errors


def test_neural_sde_samples_under_jit_and_vmap_equal_the_eager_ones():
    """Concrete save times closed over need no max_steps under jit, nor with the keys vmapped inside
    jit; traced save times need it and the error says what to pass."""
    model = make_neural_sde(2, drift_width=4, diffusion_width=4, key=jax.random.PRNGKey(0))
    ts = np.linspace(0.0, 1.0, 5)
    y0 = jnp.array([0.3, -0.2])
    keys = jax.random.split(jax.random.PRNGKey(1), 2)

    def sample(key, ts=ts, **max_steps):
        return model.sample(y0, ts, key=key, dt=0.125, **max_steps).ys

    eager = np.stack([sample(key) for key in keys])
    np.testing.assert_allclose(jax.jit(sample)(keys[0]), eager[0], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(jax.jit(jax.vmap(sample))(keys), eager, rtol=1e-12, atol=1e-14)
    with pytest.raises(ValueError, match=r"are traced .* pass max_steps=N with N at least ceil"):
        jax.jit(lambda ts: sample(keys[0], ts))(ts)
    traced = jax.jit(lambda ts: sample(keys[0], ts, max_steps=9))(ts)
    np.testing.assert_allclose(traced, eager[0], rtol=1e-12, atol=1e-14)


def test_exact_paths_have_the_exact_moments():
    """The simulated paths' mean and spread match the closed-form moments within their sampling error."""
    for process in ("ou", "gbm"):
        paths = simulate_paths(process, seed=1, paths=3000, test_paths=1, t1=1.0, dt=0.1)
        mean, std = true_moments(process, paths.xs[:, 0, 0], paths.ts)
        sample = paths.xs[..., 0]
        np.testing.assert_allclose(sample.mean(axis=0), mean, atol=4 * std.max() / np.sqrt(3000))
        np.testing.assert_allclose(sample.std(axis=0)[1:], std[1:], rtol=0.08)


def test_settings_name_what_cannot_run():
    with pytest.raises(SettingsError, match="simulation.solver is 'heun'; choose one of euler, milstein"):
        sde.resolve({"simulation": {"solver": "heun"}})
    with pytest.raises(SettingsError, match="takes no option theta"):
        sde.resolve({"process": "gbm", "data": {"theta": 1.0}})
    with pytest.raises(SettingsError, match="strong_fit is \\[4, 12\\]"):
        sde.resolve_convergence({"strong_fit": [4, 12]})
    runs = sde.plan(
        {"processes": [{"name": "ou", "train": {"steps": 5}}], "train": {"batch_size": 64}}, seed=1
    )
    assert runs["ou"].train.steps == 5 and runs["ou"].train.batch_size == 64 and runs["ou"].seed == 1
