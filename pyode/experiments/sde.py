"""Neural SDEs fitted to paths of processes with known coefficients, and the SDE solvers' convergence orders.

Data: exact paths of an Ornstein-Uhlenbeck process and of geometric Brownian motion
(`pyode.data.simulate_paths`), observed every dt. Model: a drift network and a positive
diagonal diffusion network (`pyode.models.NeuralSDE`). Training: the Euler-Maruyama
transition likelihood of the observed steps (float32; README says why). Evaluation: the
learnt drift and diffusion against the truth on the observed states, the held-out transition
likelihood beside the true coefficients', and paths sampled from the fitted SDE with
Diffrax's SDE terms (`pyode.solve_sde`: `MultiTerm(ODETerm, ControlTerm)` on a
`VirtualBrownianTree`) whose marginal means and spreads are set beside the data's (and
beside the true SDE's, sampled the same way, which shows the Monte-Carlo noise).

`convergence` measures the strong and weak orders of Euler-Maruyama and Milstein on
geometric Brownian motion against its exact solution driven by the same Brownian path.
"""

import dataclasses
import functools
import math
import time
from pathlib import Path

import numpy as np

from .. import BROWNIAN_PATHS
from ..data import (
    PROCESS_DEFAULTS,
    Paths,
    check_process_options,
    simulate_paths,
    true_diffusion,
    true_drift,
)
from ..models import ACTIVATION_NAMES
from ._common import (
    HISTORY_UNITS,
    check_data_is_for,
    load_run,
    summarise_history,
    train_model,
    write_metrics,
    write_run_metrics,
)
from ._sections import BatchTrainSettings, GeneratedData
from ._settings import (
    Section,
    SettingsError,
    changes_at,
    data_part,
    named_entries,
    option,
    section_keys,
)

EXPERIMENT = "sde"
DTYPE = np.float32
ITO_SOLVERS = ("euler", "milstein")
"""The solvers of `pyode.SDE_SOLVERS` whose solutions converge to the Ito solution."""


@dataclasses.dataclass(frozen=True)
class NetworkSettings(Section):
    """An MLP of `depth` hidden layers of `width` with `activation` (softplus: it grows linearly outside
    the data's bulk, as GBM's drift and diffusion do, where tanh units saturate)."""

    width: int = option(32, minimum=1)
    depth: int = option(2, minimum=0)
    activation: str = option("softplus", choices=ACTIVATION_NAMES)


@dataclasses.dataclass(frozen=True)
class SimulationSettings(Section):
    """Paths sampled from the fitted and the true SDE: an Ito `solver`, step `dt`, the `brownian` path."""

    solver: str = option("euler", choices=ITO_SOLVERS)
    dt: float = option(0.002, above=0)
    brownian: str = option("virtual_tree", choices=BROWNIAN_PATHS)


@dataclasses.dataclass(frozen=True)
class DataSettings(GeneratedData):
    """Paths of a process: its name, its coefficients and sampling options (`data`), the seed."""

    process: str = option("ou", choices=PROCESS_DEFAULTS)

    def check_options(self) -> None:
        check_process_options(self.process, self.data)


@dataclasses.dataclass(frozen=True)
class Settings(DataSettings):
    """One neural SDE fitted to one process: the data, both networks, training and sampling."""

    drift: NetworkSettings = option(NetworkSettings())
    diffusion: NetworkSettings = option(NetworkSettings())
    train: BatchTrainSettings = option(
        BatchTrainSettings(
            steps=3000, batch_size=4096, learning_rate=1e-2, schedule="cosine", gradient_clip=1.0
        )
    )
    simulation: SimulationSettings = option(SimulationSettings())

    def model_spec(self, centre: float, scale: float) -> dict:
        """What `pyode.models.build_model("neural_sde", ...)` takes, for data of this centre and scale."""
        return {
            "dim": 1,
            "drift_width": self.drift.width,
            "drift_depth": self.drift.depth,
            "diffusion_width": self.diffusion.width,
            "diffusion_depth": self.diffusion.depth,
            "activation": self.drift.activation,
            "centre": centre,
            "scale": scale,
        }

    def validate(self, where: str) -> "Settings":
        super().validate(where)
        if self.drift.activation != self.diffusion.activation:
            raise SettingsError(f"{where}: drift.activation and diffusion.activation must be the same")
        return self


@dataclasses.dataclass(frozen=True)
class ConvergenceSettings(Section):
    """Geometric Brownian motion dX = mu X dt + sigma X dW from x0 over [0, t1], `paths` Brownian paths
    drawn on 2^`finest` steps; each `solvers` entry at steps 2^-k, k = 2 .. finest - 1. Slopes of
    log error against log step are fitted over k in `strong_fit` (E|X_h - X|) and `weak_fit`
    (|E X_h - E X|, the mean over the same paths)."""

    seed: int = option(42, minimum=0)
    mu: float = option(1.0)
    sigma: float = option(0.6, above=0)
    x0: float = option(1.0, above=0)
    t1: float = option(1.0, above=0)
    paths: int = option(4000, minimum=10)
    finest: int = option(9, minimum=4, maximum=14)
    strong_fit: tuple[int, ...] = option((4, 8))
    weak_fit: tuple[int, ...] = option((2, 6))
    solvers: tuple[str, ...] = option(("euler", "milstein"))

    def validate(self, where: str) -> "ConvergenceSettings":
        for name in ("strong_fit", "weak_fit"):
            low, high = (getattr(self, name) + (None, None))[:2]
            if len(getattr(self, name)) != 2 or not 2 <= low < high < self.finest:
                raise SettingsError(
                    f"{where}.{name} is {list(getattr(self, name))}; "
                    "give [low, high] with 2 <= low < high < finest"
                )
        unknown = [s for s in self.solvers if s not in ITO_SOLVERS]
        if unknown or not self.solvers:
            raise SettingsError(
                f"{where}.solvers is {list(self.solvers)}; choose from {', '.join(ITO_SOLVERS)}"
            )
        return self


def resolve(changes: dict, where: str = "settings") -> Settings:
    """The defaults overlaid with `changes`, checked."""
    return Settings().overlay(changes, where)


def resolve_data(changes: dict, where: str = "settings") -> DataSettings:
    """The data stage's defaults overlaid with `changes` (a run's other settings ignored), checked."""
    return DataSettings().overlay(data_part(changes, Settings, DataSettings), where)


def resolve_convergence(changes: dict, where: str = "settings") -> ConvergenceSettings:
    """The convergence study's defaults overlaid with `changes`, checked."""
    return ConvergenceSettings().overlay(changes, where)


def plan(section: dict, *, seed: int) -> dict[str, Settings]:
    """Every fit of the config's `sde` section, by process name, resolved and checked.

    `processes` are entries (name, `data`: coefficients and sampling, and changes to the
    networks, training and simulation); `drift`, `diffusion`, `train` and `simulation` at
    the top change every fit.
    """
    groups = ("drift", "diffusion", "train", "simulation")
    section_keys(section, "sde", required=("processes",), optional=(*groups, "convergence"))
    shared = {key: changes_at(section, key, "sde") for key in groups if key in section}
    runs = {}
    for entry in named_entries(section, "processes", "sde", keys=("data", *groups)):
        name = entry["name"]
        changes = {"seed": seed, "process": name, **shared}
        for key in entry.keys() - {"name"}:
            changes[key] = {**changes.get(key, {}), **changes_at(entry, key, f"sde.processes[{name}]")}
        runs[name] = Settings().overlay(changes, f"sde[{name}]")
    return runs


def plan_convergence(section: dict, *, seed: int) -> ConvergenceSettings:
    """The convergence study of the config's `sde.convergence` (its defaults without one)."""
    return ConvergenceSettings().overlay({"seed": seed, **section.get("convergence", {})}, "sde.convergence")


def make_data(settings: DataSettings, out: str | Path) -> Paths:
    """Simulate the process's paths exactly and write them to `out`."""
    paths = simulate_paths(settings.process, seed=settings.seed, **settings.data)
    paths.save(out)
    return paths


def transitions(xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every observed step of paths (path, time, dim) as pairs (x0, x1), each (steps, dim)."""
    dim = xs.shape[-1]
    return xs[:, :-1].reshape(-1, dim), xs[:, 1:].reshape(-1, dim)


def train(data_path: str | Path, settings: Settings, out_dir: str | Path, *, progress: bool = True):
    """Fit the neural SDE to the training paths at `data_path`; write model.npz and history.jsonl."""
    import jax
    import jax.numpy as jnp

    from ..models import build_model, transition_nll

    out_dir = Path(out_dir)
    paths = Paths.load(data_path)
    check_data_is_for(data_path, paths.process, settings.process, "paths")
    x0, x1 = transitions(paths.train)
    if settings.train.batch_size > len(x0):
        raise SettingsError(
            f"train.batch_size is {settings.train.batch_size}; {data_path} has {len(x0)} transitions"
        )
    dt = float(paths.ts[1] - paths.ts[0])
    spec = settings.model_spec(float(paths.train.mean()), float(paths.train.std()))
    model = build_model("neural_sde", spec, key=jax.random.PRNGKey(settings.seed))
    batch_size, seed = settings.train.batch_size, settings.seed

    def batch_at(step: int):
        index = np.random.default_rng([seed, step]).choice(len(x0), batch_size, replace=False)
        return jnp.asarray(x0[index], DTYPE), jnp.asarray(x1[index], DTYPE), jnp.asarray(dt, DTYPE)

    options = settings.train.options(
        steps=settings.train.steps, description=f"train sde/{settings.process}", progress=progress
    )
    train_model(
        model,
        transition_nll,
        batch_at,
        settings,
        out_dir,
        experiment=EXPERIMENT,
        kind="neural_sde",
        spec=spec,
        options=options,
        data_path=data_path,
    )


def relative_error(learnt: np.ndarray, truth: np.ndarray) -> float:
    """sqrt(mean (learnt - truth)^2) / sqrt(mean truth^2): the relative L2 error over the points given."""
    return float(np.sqrt(np.mean((learnt - truth) ** 2) / np.mean(truth**2)))


def coefficients(model, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The model's drift and diffusion at states `x` (n, 1), as float64 NumPy arrays."""
    import jax
    import jax.numpy as jnp

    states = jnp.asarray(x, DTYPE)
    drift, diffusion = jax.jit(lambda m, s: (m.drift(0.0, s), m.diffusion(0.0, s)))(model, states)
    return np.asarray(drift, np.float64), np.asarray(diffusion, np.float64)


def sample_paths(drift, diffusion, x0: np.ndarray, ts: np.ndarray, simulation: SimulationSettings, seed: int):
    """One path per starting point `x0` (n, dim), saved at `ts`, on Brownian paths fixed by `seed`:
    array (n, time, dim). `drift` and `diffusion` take (t, y, args)."""
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    from .. import brownian_path, solve_sde, status_message

    times = jnp.asarray(ts, DTYPE)
    max_steps = int(math.ceil(float(ts[-1] - ts[0]) / simulation.dt)) + 2

    def one(y0, key):
        path = brownian_path(
            simulation.brownian, float(ts[0]), float(ts[-1]), y0.shape, key=key, dt=simulation.dt, dtype=DTYPE
        )
        solution = solve_sde(
            drift,
            diffusion,
            y0,
            times,
            brownian=path,
            dt=simulation.dt,
            solver=simulation.solver,
            max_steps=max_steps,
        )
        return solution.ys, solution.status

    keys = jax.random.split(jax.random.PRNGKey(seed), len(x0))
    ys, status = eqx.filter_jit(jax.vmap(one))(jnp.asarray(x0, DTYPE), keys)
    if int(jnp.max(status)):
        raise RuntimeError(f"sampling failed: {status_message(int(jnp.max(status)))}")
    return np.asarray(ys, np.float64)


def marginal_errors(sampled: np.ndarray, data: np.ndarray, prefix: str) -> dict[str, float]:
    """How far sampled paths' marginals are from the data's, both (path, time, 1): the largest
    difference of means and of standard deviations over time (t > 0), each over the data's
    standard deviation at that time, and the 1-Wasserstein distance at the last time over the
    data's standard deviation there."""
    from scipy.stats import wasserstein_distance

    spread = data[:, 1:, 0].std(axis=0)
    mean_gap = np.abs(sampled[:, 1:, 0].mean(axis=0) - data[:, 1:, 0].mean(axis=0)) / spread
    std_gap = np.abs(sampled[:, 1:, 0].std(axis=0) - spread) / spread
    final = wasserstein_distance(sampled[:, -1, 0], data[:, -1, 0]) / spread[-1]
    return {
        f"{prefix}marginal_mean_error": float(mean_gap.max()),
        f"{prefix}marginal_std_error": float(std_gap.max()),
        f"{prefix}final_wasserstein": float(final),
    }


UNITS = {
    **HISTORY_UNITS,
    "drift_error": "fraction",
    "diffusion_error": "fraction",
    "test_nll": "nats per transition",
    "true_coefficients_test_nll": "nats per transition",
    "marginal_mean_error": "data std",
    "marginal_std_error": "fraction",
    "final_wasserstein": "data std",
    "truth_marginal_mean_error": "data std",
    "truth_marginal_std_error": "fraction",
    "truth_final_wasserstein": "data std",
    "evaluation_seconds": "s",
}


def evaluate(run_dir: str | Path, data_path: str | Path, out_dir: str | Path) -> dict:
    """Evaluate the neural SDE fitted in `run_dir`; write metrics.json, loss.png, coefficients.png,
    paths.png and marginals.png to `out_dir`."""
    import jax.numpy as jnp

    from .. import plots
    from ..models import transition_nll

    tic = time.perf_counter()
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    model, metadata, settings, history = load_run(run_dir, resolve)
    paths = Paths.load(data_path)
    states, _ = transitions(paths.train)
    drift, diffusion = coefficients(model, states)
    metrics = {
        "drift_error": relative_error(drift, paths.drift(states)),
        "diffusion_error": relative_error(diffusion, paths.diffusion(states)),
    }
    dt = float(paths.ts[1] - paths.ts[0])
    x0, x1 = (jnp.asarray(a, DTYPE) for a in transitions(paths.test))
    metrics["test_nll"] = float(transition_nll(model, (x0, x1, dt))[0])
    truth = _true_sde_class()(paths.process, paths.options)
    metrics["true_coefficients_test_nll"] = float(transition_nll(truth, (x0, x1, dt))[0])
    seed, simulation = settings.seed, settings.simulation
    fitted = sample_paths(model.drift, model.diffusion, paths.xs[:, 0], paths.ts, simulation, seed)
    true = sample_paths(truth.drift, truth.diffusion, paths.xs[:, 0], paths.ts, simulation, seed)
    metrics.update(marginal_errors(fitted, paths.xs, ""))
    metrics.update(marginal_errors(true, paths.xs, "truth_"))
    metrics.update(summarise_history(history))
    metrics["evaluation_seconds"] = time.perf_counter() - tic
    record = write_run_metrics(
        out_dir,
        EXPERIMENT,
        paths.process,
        metrics,
        metadata["settings"],
        units=UNITS,
        details={"process": paths.process, "options": paths.options},
        dtype=f"data {paths.xs.dtype}, training {jnp.dtype(DTYPE).name}",
    )
    title = {"ou": "Ornstein-Uhlenbeck", "gbm": "geometric Brownian motion"}[paths.process]
    low, high = np.quantile(states, [0.005, 0.995])
    grid = np.linspace(low, high, 200)[:, None]
    learnt = coefficients(model, grid)
    exact = (paths.drift(grid), paths.diffusion(grid))
    plots.sde_training(history, out_dir / "loss.png", title=title)
    plots.sde_coefficients(grid[:, 0], learnt, exact, states[:, 0], out_dir / "coefficients.png", title=title)
    plots.sde_paths(paths.ts, paths.xs[..., 0], fitted[..., 0], out_dir / "paths.png", title=title)
    moments = paths.moments(paths.xs[:, 0, 0])
    plots.sde_marginals(
        paths.ts,
        paths.xs[..., 0],
        fitted[..., 0],
        true[..., 0],
        moments,
        out_dir / "marginals.png",
        title=title,
    )
    return record


@functools.cache
def _true_sde_class() -> type:
    """The Equinox module of a process's own drift and diffusion, with the neural SDE's interface."""
    import equinox as eqx

    class TrueSDE(eqx.Module):
        process: str = eqx.field(static=True)
        options: dict = eqx.field(static=True)

        def drift(self, t, y, args=None):
            return true_drift(self.process, y, **self.options)

        def diffusion(self, t, y, args=None):
            return true_diffusion(self.process, y, **self.options)

    return TrueSDE


def convergence(settings: ConvergenceSettings) -> tuple[dict, dict]:
    """Strong and weak errors of each solver at steps 2^-k against GBM's exact solution on the same
    Brownian paths (float64 if JAX's 64-bit mode is on): (metrics by run `gbm/<solver>`, details)."""
    import jax.numpy as jnp

    dtype = jnp.result_type(float)
    rng = np.random.default_rng(settings.seed)
    n = 2**settings.finest
    grid = np.linspace(0.0, settings.t1, n + 1)
    increments = rng.standard_normal((settings.paths, n, 1)) * math.sqrt(settings.t1 / n)
    ws = np.concatenate([np.zeros((settings.paths, 1, 1)), np.cumsum(increments, axis=1)], axis=1)
    mu, sigma, x0 = settings.mu, settings.sigma, settings.x0
    exact = x0 * np.exp((mu - 0.5 * sigma**2) * settings.t1 + sigma * ws[:, -1, 0])
    ks = np.arange(2, settings.finest)
    metrics, details = {}, {"steps": (2.0**-ks).tolist()}
    for solver in settings.solvers:
        strong, weak = [], []
        finals = _gbm_finals(jnp.asarray(grid, dtype), mu, sigma, x0, solver)
        for k in ks:
            difference = np.asarray(finals(jnp.asarray(ws, dtype), 2.0**-k), np.float64) - exact
            strong.append(float(np.abs(difference).mean()))
            weak.append(float(abs(difference.mean())))
        details[solver] = {"strong": strong, "weak": weak}
        metrics[f"gbm/{solver}"] = {
            "strong_order": _slope(ks, strong, settings.strong_fit),
            "weak_order": _slope(ks, weak, settings.weak_fit),
            "strong_error_finest": strong[-1],
            "weak_error_finest": weak[-1],
        }
    return metrics, details


def _slope(ks: np.ndarray, errors: list[float], fit: tuple[int, int]) -> float:
    chosen = (ks >= fit[0]) & (ks <= fit[1])
    return float(np.polyfit(np.log(2.0 ** -ks[chosen]), np.log(np.asarray(errors)[chosen]), 1)[0])


def _gbm_finals(grid, mu: float, sigma: float, x0: float, solver: str):
    """(ws, dt) -> X(t1) of GBM by `solver` at step `dt` on each Brownian path of `ws` (path, time, 1),
    given on `grid`: compiled once, for every step."""
    import jax
    import jax.numpy as jnp

    from .. import GridBrownianPath, solve_sde

    steps = len(grid)  # a bound on the steps: dt is one of the grid's coarsenings

    def one(w, dt):
        solution = solve_sde(
            lambda t, y, args: mu * y,
            lambda t, y, args: sigma * y,
            jnp.full((1,), x0, grid.dtype),
            grid[jnp.array([0, -1])],
            brownian=GridBrownianPath(grid, w),
            dt=dt,
            solver=solver,
            max_steps=steps,
        )
        return solution.ys[-1, 0]

    return jax.jit(jax.vmap(one, in_axes=(0, None)))


CONVERGENCE_UNITS = {
    "strong_order": "",
    "weak_order": "",
    "strong_error_finest": "state units",
    "weak_error_finest": "state units",
}


def evaluate_convergence(settings: ConvergenceSettings, out_dir: str | Path) -> dict:
    """Measure the convergence orders; write metrics.json and convergence.png to `out_dir`."""
    import jax.numpy as jnp

    from .. import plots

    out_dir = Path(out_dir)
    metrics, details = convergence(settings)
    record = write_metrics(
        out_dir / "metrics.json",
        experiment=EXPERIMENT,
        runs=metrics,
        settings={run: settings.to_dict() for run in metrics},
        units=CONVERGENCE_UNITS,
        details=details,
        dtype=jnp.dtype(jnp.result_type(float)).name,
    )
    plots.sde_convergence(
        details, {run.split("/")[1]: m for run, m in metrics.items()}, out_dir / "convergence.png"
    )
    return record


# The commands this experiment offers (docs/architecture.md, "Adding an experiment").
from ._registry import (  # noqa: E402
    Command,
    Experiment,
    data_command,
    evaluate_run_command,
    print_metrics,
    settings_of,
    train_command,
)


def _convergence_command(args) -> None:
    import jax

    jax.config.update("jax_enable_x64", True)  # a solver against an exact solution: float64
    print_metrics(evaluate_convergence(settings_of(resolve_convergence, args), args.out))


DECLARATION = Experiment(
    EXPERIMENT,
    commands=(
        data_command(
            EXPERIMENT, make_data, resolve_data, "exact paths of a process with known drift and diffusion"
        ),
        train_command(
            EXPERIMENT,
            train,
            resolve,
            "fit a neural SDE by its Euler-Maruyama transition likelihood",
            out="run folder (model.npz, history.jsonl)",
        ),
        evaluate_run_command(EXPERIMENT, evaluate, "metrics and figures of a fitted neural SDE"),
        Command(
            "sde-convergence",
            _convergence_command,
            "strong and weak orders of the SDE solvers on geometric Brownian motion (float64)",
            settings="changes to the convergence study's defaults "
            "(pyode.experiments.sde.ConvergenceSettings)",
            out="folder for metrics.json and convergence.png",
        ),
    ),
)
