"""Hamiltonian neural networks: the symplectic gradient conserves the learnt H (and a gradient field does
not), the field is the true one when H is the true Hamiltonian, the data, semi-implicit Euler's order,
settings and one-line errors, and the experiment's commands end to end on a tiny settings file."""

import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pyode import cli, solve
from pyode.experiments import SettingsError, hnn
from pyode.models import build_model

CONSTANTS = {
    "spring": {"mass": 1.3, "stiffness": 0.7},
    "pendulum": {"mass": 0.8, "gravity": 3.0, "length": 1.2},
}


def _network(kind: str, seed: int = 0):
    """A random float64 MLP of the model `kind` (width 16, two hidden layers)."""
    spec = hnn.resolve({"model": {"kind": kind}, "field": {"width": 16, "depth": 2}}).model_spec()
    network = build_model("mlp_field", spec, key=jax.random.PRNGKey(seed))
    return jax.tree_util.tree_map(lambda a: a.astype(jnp.float64) if hasattr(a, "astype") else a, network)


def test_the_symplectic_gradient_conserves_the_learnt_hamiltonian_and_a_gradient_field_would_not():
    network = _network("hnn")
    y0 = jnp.array([[0.5, -0.3], [-1.0, 0.8], [0.1, 1.2]])
    energy = functools.partial(hnn.learnt_hamiltonian, "hnn", network)
    ts = jnp.linspace(0.0, 5.0, 21)
    field = functools.partial(hnn._model_field, "hnn")
    path = solve(field, y0, ts, args=network, solver="dopri5", rtol=1e-10, atol=1e-10, max_steps=100_000).ys
    scale = float(jnp.max(jnp.abs(energy(path)))) + 1.0
    assert float(jnp.max(jnp.abs(energy(path) - energy(y0)))) < 1e-8 * scale
    assert float(jnp.max(jnp.abs(path - y0))) > 0.1  # the states did move
    # H changes along a flow at the rate grad H . f: zero for the symplectic gradient of either Hamiltonian
    # model, |grad H|^2 > 0 for the gradient itself (J replaced by the identity), which the solve would catch.
    for kind in ("hnn", "separable"):
        network = _network(kind)
        learnt = functools.partial(hnn.learnt_hamiltonian, kind, network)
        gradient = jax.grad(lambda z, learnt=learnt: jnp.sum(learnt(z)))(path)
        rate = jnp.sum(gradient * hnn.time_derivative(kind, network, path), axis=-1)
        squared = jnp.sum(gradient**2, axis=-1)
        assert (
            float(jnp.max(jnp.abs(rate))) < 1e-12 * float(jnp.max(squared)) and float(jnp.min(squared)) > 1e-6
        )


@pytest.mark.parametrize("system", ["spring", "pendulum"])
def test_the_field_is_the_true_one_when_the_hamiltonian_is_the_true_one(system):
    constants = CONSTANTS[system]
    y = jnp.asarray(np.random.default_rng(0).normal(size=(50, 2)))
    field = hnn.symplectic_gradient(lambda z: hnn.hamiltonian(system, constants, z, jnp), y)
    np.testing.assert_allclose(
        field, hnn.true_derivative(system, constants, np.asarray(y)), rtol=1e-13, atol=1e-13
    )


def test_semi_implicit_euler_is_first_order_and_keeps_the_true_energy_in_a_band():
    data = hnn.pendulum(
        trajectories=1, validation_trajectories=1, test_trajectories=1, horizon=4.0, horizon_points=5
    )
    y0, truth = data.splits["test"]["horizon"][:, 0], data.splits["test"]["horizon"]
    energy = functools.partial(hnn._true_energy, "pendulum", tuple(sorted(data.constants.items())))
    errors = [
        np.max(np.abs(hnn.rollout_semi_implicit_euler(energy, None, y0, data.horizon_ts, dt) - truth))
        for dt in (0.02, 0.01, 0.005)
    ]
    slopes = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    np.testing.assert_allclose(slopes, 1.0, atol=0.15)
    ts = np.linspace(0.0, 200.0, 2001)
    long = hnn.rollout_semi_implicit_euler(energy, None, y0, ts, 0.02)
    error = np.abs(data.energy(long) - data.energy(y0)[:, None])[0]
    assert error.max() < 0.05 * data.energy(y0)[0]
    assert error[1000:].max() < 1.5 * error[:100].max()  # a band of O(dt) that does not grow in 10,000 steps


def test_the_data_hold_the_true_system_and_each_split_its_own_stream():
    data = hnn.spring(trajectories=4, validation_trajectories=2, test_trajectories=3, observations=10, seed=3)
    for split, count in (("train", 4), ("validation", 2), ("test", 3)):
        part = data.splits[split]
        assert part["clean"].shape == part["states"].shape == part["derivatives"].shape == (count, 10, 2)
        energies = data.energy(part["clean"])
        assert np.all((energies >= 0.2 - 1e-9) & (energies <= 1.0 + 1e-9))
        np.testing.assert_allclose(
            energies, np.broadcast_to(energies[:, :1], energies.shape), atol=1e-9
        )  # the solver's rtol 1e-10
        np.testing.assert_allclose(
            part["derivatives"], hnn.true_derivative("spring", data.constants, part["clean"])
        )
    noise = np.concatenate([data.splits[s]["states"] - data.splits[s]["clean"] for s in hnn.SPLITS])
    assert 0.07 < noise.std() < 0.13
    np.testing.assert_allclose(data.splits["test"]["horizon"][:, 0], data.splits["test"]["clean"][:, 0])
    other = hnn.spring(
        trajectories=4, validation_trajectories=5, test_trajectories=3, observations=10, seed=3
    )
    for split in ("train", "test"):
        np.testing.assert_array_equal(other.splits[split]["states"], data.splits[split]["states"])


def test_plan_settings_and_one_line_errors():
    section = {
        "systems": [{"name": "spring", "train": {"steps": 9}}, {"name": "pendulum", "data": {"noise": 0.0}}],
        "models": [
            {"name": "base", "kind": "baseline", "field": {"width": 7}},
            {"name": "hnn", "kind": "hnn"},
        ],
    }
    runs = hnn.plan(section, seed=3)
    assert set(runs) == {"spring/base", "spring/hnn", "pendulum/base", "pendulum/hnn"}
    assert runs["spring/base"].train.steps == 9 and runs["pendulum/hnn"].train.steps == 1500
    assert runs["spring/base"].field.width == 7 and runs["spring/hnn"].field.width == 200
    assert runs["pendulum/hnn"].data == {"noise": 0.0} and runs["pendulum/hnn"].seed == 3
    specs = {kind: hnn.resolve({"model": {"kind": kind}}).model_spec() for kind in hnn.MODEL_KINDS}
    assert [(s["dim"], s["out_dim"]) for s in specs.values()] == [(2, 2), (2, 1), (1, 2)]
    with pytest.raises(SettingsError, match=r"pendulum takes no option gravty; it takes "):
        hnn.resolve({"system": "pendulum", "data": {"gravty": 9.8}})
    with pytest.raises(SettingsError, match=r"would rotate instead of swinging"):
        hnn.resolve({"system": "pendulum", "data": {"energy": [1.0, 12.5]}})
    with pytest.raises(SettingsError, match=r"energy must be \[low, high\] with 0 < low <= high"):
        hnn.resolve({"data": {"energy": [1.0, 0.5]}})
    with pytest.raises(SettingsError, match=r"time_input: the systems are autonomous"):
        hnn.resolve({"field": {"time_input": True}})
    with pytest.raises(SettingsError, match=r"hnn.models: the name\(s\) hnn appear more than once"):
        hnn.plan({**section, "models": section["models"] + [{"name": "hnn", "kind": "separable"}]}, seed=0)
    with pytest.raises(ValueError, match=r"^a Hamiltonian model needs .* an even dimension; got 3$"):
        hnn.resolve({}).model_spec(dim=3)
    with pytest.raises(ValueError, match=r"an even dimension; got 3"):
        hnn.symplectic_gradient(jnp.sum, jnp.ones((4, 3)))


TINY = {
    "system": "spring",
    "data": {
        "trajectories": 3,
        "validation_trajectories": 2,
        "test_trajectories": 2,
        "observations": 8,
        "horizon": 2.0,
        "horizon_points": 11,
    },
    "field": {"width": 8, "depth": 1},
    "train": {"steps": 6, "checkpoint_every": 3, "count_every": 3, "learning_rate": 1e-2},
    "rollout": {"dt": 0.05},
    "validate_every": 2,
}


def test_the_experiment_end_to_end_through_its_commands(tmp_path, capsys):
    """The baseline and the separable HNN (the plain HNN's field and solve are tested above; leaving its
    run out here keeps the fast tier's time)."""
    (tmp_path / "data.json").write_text(json.dumps(TINY))
    data = str(tmp_path / "d.npz")
    cli.main(["--threads", "1", "hnn-data", "--settings", str(tmp_path / "data.json"), "--out", data])
    runs = []
    for kind in ("baseline", "separable"):
        settings = tmp_path / f"{kind}.json"
        settings.write_text(json.dumps({**TINY, "model": {"name": kind, "kind": kind}}))
        run = tmp_path / kind
        cli.main(
            ["hnn-train", "--data", data, "--settings", str(settings), "--out", str(run), "--no-progress"]
        )
        runs.append(str(run))
        validation = [json.loads(line) for line in (run / "validation.jsonl").read_text().splitlines()]
        assert [record["step"] for record in validation] == [0, 2, 4, 6]
    cli.main(["hnn-evaluate", "--data", data, "--runs", *runs, "--out", str(tmp_path / "out")])
    record = json.loads((tmp_path / "out" / "metrics.json").read_text())
    metrics = {entry["run"]: entry["metrics"] for entry in record["runs"]}
    assert set(metrics) == {"spring/baseline", "spring/separable"}
    assert metrics["spring/baseline"]["parameters"] == 2 * 8 + 8 + 8 * 2 + 2
    assert metrics["spring/separable"]["parameters"] == 1 * 8 + 8 + 8 * 2 + 2
    for name, run in metrics.items():
        assert run["test_energy_mse"] >= 0 and run["test_trajectory_mse"] >= 0 and run["train_steps"] == 6, (
            name
        )
        assert run["best_validation_step"] in (0, 2, 4, 6), name
    assert "test_energy_mse_semi_implicit_euler" in metrics["spring/separable"]
    assert "test_energy_mse_semi_implicit_euler" not in metrics["spring/baseline"]
    assert metrics["spring/separable"]["learnt_energy_drift"] < 1e-6
    assert record["details"]["truth_rollouts"]["dopri5"]["energy_mse"] < 1e-14
    for name in ("energy.png", "phase.png", "loss.png"):
        assert (tmp_path / "out" / name).stat().st_size > 0, name
    cli.main(["hnn-summary", str(tmp_path / "out" / "metrics.json"), "--out", str(tmp_path / "summary.md")])
    summary = (tmp_path / "summary.md").read_text()
    assert "| spring | baseline | 42 |" in summary and "| 37 +- 2 | 170 +- 20 |" in summary
    assert "n/a (not separable)" in summary
    capsys.readouterr()
