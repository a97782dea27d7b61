"""Universal differential equations: the UDE's field is the true one when its network is the true missing
terms, SINDy finds exactly the true terms from exact samples, a refit keeps an exact equation, the data,
one-line errors, the solve and gradients against torchdiffeq on the same weights, and the commands end to
end on a tiny settings file."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pyode import cli
from pyode.experiments import SettingsError, ude
from pyode.models import build_model

P = ude.PARAMETERS


def test_the_ude_field_is_the_true_field_when_its_network_is_the_true_missing_terms():
    y = jnp.asarray(np.random.default_rng(0).uniform(0.1, 6.0, size=(40, 2)))
    known = jnp.asarray(ude.known_coefficients(P))

    def network(t, y):
        return ude.true_interaction(y, P, jnp)

    field = ude.model_field(0.0, y, (network, known))
    np.testing.assert_allclose(field, ude.true_field(np.asarray(y), P), rtol=1e-14, atol=1e-14)
    # a pure neural ODE is given no term, and a model told of one state only keeps that one
    np.testing.assert_array_equal(ude.known_coefficients(P, ()), [0.0, 0.0])
    np.testing.assert_array_equal(ude.known_coefficients(P, ("v",)), [0.0, -P["delta"]])


@pytest.mark.parametrize("degree", ude.DEGREES)
def test_sindy_on_exact_samples_of_the_missing_terms_finds_exactly_them(degree):
    states = np.random.default_rng(1).uniform(0.2, 5.0, size=(60, 2))
    coefficients = ude.sindy_fit(states, ude.true_interaction(states, P), degree, 0.1, 1e-8)
    equation = ude.Equation(ude.library_powers(degree), coefficients, ude.known_coefficients(P))
    terms = equation.terms()
    assert terms["u"] == pytest.approx({"u v": -P["beta"]}, rel=1e-9)
    assert terms["v"] == pytest.approx({"u v": P["gamma"]}, rel=1e-9)
    metrics = ude.equation_metrics(equation, degree)
    assert metrics["exact_support"] == 1.0 and metrics["terms"] == 2
    assert metrics["max_coefficient_error"] < 1e-9
    np.testing.assert_allclose(equation(states), ude.true_field(states, P), rtol=1e-9)
    # a spurious term is seen: the support is then not exact, and its size is the error
    coefficients[0, 0] = 0.3
    spoilt = ude.equation_metrics(ude.Equation(equation.powers, coefficients, equation.known), degree)
    assert spoilt["exact_support"] == 0.0 and spoilt["max_coefficient_error"] == pytest.approx(0.3)


def test_the_refit_keeps_the_true_equation_and_corrects_a_perturbed_one():
    data = ude.lotka_volterra(noise=0.0, horizon=8.0)
    ts, observed = data.observed("train")
    powers = ude.library_powers(2)
    truth = np.zeros((2, len(powers)))
    uv = [ude.monomial(p) for p in powers].index("u v")
    truth[:, uv] = [-P["beta"], P["gamma"]]
    perturbed = truth.copy()
    perturbed[:, uv] *= 1.2
    fitted = ude.refit(ude.Equation(powers, perturbed, ude.known_coefficients(P)), ts, observed)
    np.testing.assert_allclose(fitted.coefficients, truth, atol=1e-5)
    path = fitted.solve(data.u0, data.ts)
    assert ude.window_errors(data, path)["extrapolation_rmse"] < 1e-3


def test_the_data_hold_the_true_system_its_windows_and_the_papers_noise_level():
    data = ude.lotka_volterra(seed=2)
    assert len(data.ts) == 501 and data.ts[-1] == pytest.approx(50.0)
    np.testing.assert_allclose(data.clean[0], ude.INITIAL_STATE)
    masks = [data.window(name) for name in ("train", "validation", "extrapolation")]
    assert [int(m.sum()) for m in masks] == [31, 30, 440]
    assert np.all(sum(m.astype(int) for m in masks) == 1)
    # the clean states keep the system's first integral, gamma u - delta ln u + beta v - alpha ln v
    u, v = data.clean[:, 0], data.clean[:, 1]
    invariant = P["gamma"] * u - P["delta"] * np.log(u) + P["beta"] * v - P["alpha"] * np.log(v)
    np.testing.assert_allclose(invariant, invariant[0], rtol=1e-8)
    train = data.window("train")
    relative = (data.noisy - data.clean)[train | data.window("validation")] / data.clean[train].mean(axis=0)
    assert 0.035 < relative.std() < 0.065


def test_settings_and_one_line_errors():
    runs = ude.plan(
        {"train": {"steps": 7}, "models": [{"name": "u", "kind": "ude"}, {"name": "n", "kind": "node"}]},
        seed=3,
    )
    assert set(runs) == {"u", "n"} and runs["u"].train.steps == 7 and runs["n"].seed == 3
    assert runs["u"].known() == ("u", "v") and runs["n"].known() == ()
    for changes, says in (
        ({"sindy": {"degree": 4}}, r"sindy.degree is 4; it must be at most 3"),
        ({"sindy": {"thresholds": [0.1, -1.0]}}, r"sindy.thresholds\[1\] is -1.0; a threshold must be in"),
        ({"sindy": {"thresholds": []}}, r"sindy.thresholds must list at least one threshold"),
        ({"model": {"known": ["u", "w"]}}, r"model.known names 'w', which is no state; the states are u, v"),
        ({"data": {"t_validation": 2.0}}, r"the windows must follow each other"),
        ({"data": {"gama": 0.8}}, r"lotka_volterra takes no option gama"),
    ):
        with pytest.raises(SettingsError, match=says):
            ude.resolve(changes)
    with pytest.raises(SettingsError, match=r"exactly one model of kind ude"):
        ude.plan({"models": [{"name": "n", "kind": "node"}]}, seed=0)


def test_the_ude_solve_and_its_gradients_match_torchdiffeq_on_the_same_weights():
    torch = pytest.importorskip("torch")
    torchdiffeq = pytest.importorskip("torchdiffeq")
    network = build_model(
        "mlp_field", {"dim": 2, "width": 8, "depth": 2, "activation": "tanh"}, key=jax.random.PRNGKey(4)
    )
    network = jax.tree_util.tree_map(lambda a: a.astype(jnp.float64) if hasattr(a, "astype") else a, network)
    known = jnp.asarray(ude.known_coefficients(P))
    y0 = jnp.asarray(ude.INITIAL_STATE)
    ts = jnp.linspace(0.0, 1.0, 6)
    cotangent = np.random.default_rng(5).normal(size=(6, 2))
    options = {"solver": "dopri5", "rtol": 1e-10, "atol": 1e-10, "max_steps": 512}

    def loss(network, y0):
        ys, _ = ude.trajectory(network, known, y0, ts, options)
        return jnp.sum(ys * cotangent), ys

    (value, ys), (g_network, g_y0) = jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(network, y0)

    weights = [
        (
            torch.tensor(np.asarray(layer.weight), requires_grad=True),
            torch.tensor(np.asarray(layer.bias), requires_grad=True),
        )
        for layer in network.layers
    ]
    known_t = torch.tensor(np.asarray(known))

    def field(t, y):
        h = y
        for index, (w, b) in enumerate(weights):
            h = h @ w.T + b
            if index < len(weights) - 1:
                h = torch.tanh(h)
        return known_t * y + h

    y0_t = torch.tensor(np.asarray(y0), requires_grad=True)
    path = torchdiffeq.odeint(
        field, y0_t, torch.tensor(np.asarray(ts)), method="dopri5", rtol=1e-10, atol=1e-10
    )
    (path * torch.tensor(cotangent)).sum().backward()
    np.testing.assert_allclose(ys, path.detach().numpy(), rtol=1e-8, atol=1e-9)
    np.testing.assert_allclose(g_y0, y0_t.grad.numpy(), rtol=1e-7, atol=1e-9)
    for layer, (w, b) in zip(g_network.layers, weights):
        np.testing.assert_allclose(layer.weight, w.grad.numpy(), rtol=1e-7, atol=1e-9)
        np.testing.assert_allclose(layer.bias, b.grad.numpy(), rtol=1e-7, atol=1e-9)
    assert float(value) == pytest.approx(float((path.detach() * torch.tensor(cotangent)).sum()), rel=1e-9)


TINY = {
    "data": {"horizon": 8.0},
    "solve": {"solver": "rk4", "dt": 0.1},  # fixed steps compile faster than an adaptive solve
    "field": {"width": 8, "depth": 1},
    "train": {"steps": 4, "lbfgs_steps": 3, "checkpoint_every": 2, "learning_rate": 0.01},
    "sindy": {"degree": 2, "thresholds": [0.1, 0.3], "samples": 16},
    "validate_every": 2,
}


@pytest.mark.slow  # ~45 s compiling L-BFGS; the fast tier's tiny workflow run goes through the same commands
def test_the_experiment_end_to_end_through_its_commands(tmp_path, capsys):
    (tmp_path / "data.json").write_text(json.dumps(TINY))
    data = str(tmp_path / "d.npz")
    cli.main(["--threads", "1", "ude-data", "--settings", str(tmp_path / "data.json"), "--out", data])
    runs = []
    for kind, lbfgs in (("ude", 3), ("node", 0)):  # L-BFGS compiles slowly: the UDE's run alone takes it
        settings = tmp_path / f"{kind}.json"
        train = {**TINY["train"], "lbfgs_steps": lbfgs}
        settings.write_text(json.dumps({**TINY, "train": train, "model": {"name": kind, "kind": kind}}))
        run = tmp_path / kind
        cli.main(
            ["ude-train", "--data", data, "--settings", str(settings), "--out", str(run), "--no-progress"]
        )
        runs.append(str(run))
        history = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
        assert [r["lbfgs"] for r in history] == [0.0] * 4 + [1.0] * lbfgs
        validation = [json.loads(line) for line in (run / "validation.jsonl").read_text().splitlines()]
        assert [record["step"] for record in validation] == [0, 2, 4, 6, 7][: 3 + lbfgs // 2 + (lbfgs > 0)]
    cli.main(["ude-evaluate", "--data", data, "--runs", *runs, "--out", str(tmp_path / "out")])
    record = json.loads((tmp_path / "out" / "metrics.json").read_text())
    metrics = {entry["run"]: entry["metrics"] for entry in record["runs"]}
    assert set(metrics) == {"ude", "node"}
    assert metrics["ude"]["lbfgs_steps"] == 3 and metrics["node"]["train_steps"] == 4
    for prefix in ("sindy", "data_sindy"):
        assert metrics["ude"][f"{prefix}_exact_support"] in (0.0, 1.0)
        assert metrics["ude"][f"{prefix}_threshold"] in (0.1, 0.3)
    assert record["details"]["true_missing_terms"] == {"u": {"u v": -0.9}, "v": {"u v": 0.8}}
    for name in ("terms.png", "extrapolation.png", "loss.png"):
        assert (tmp_path / "out" / name).stat().st_size > 0, name
    cli.main(["ude-summary", str(tmp_path / "out" / "metrics.json"), "--out", str(tmp_path / "summary.md")])
    summary = (tmp_path / "summary.md").read_text()
    assert "| truth | -0.9000 u v | +0.8000 u v | | |" in summary and "| ude + SINDy |" in summary
    capsys.readouterr()
