"""Continuous normalising flows on FFJORD's densities in the plane, with RNODE's regularisers.

Data: training and test points of a density (`pyode.data.sample_density`). Model: a CNF
(`pyode.models.CNF`): state and log-density integrated together, the trace exact or
Hutchinson's estimate (`flow.trace`, `flow.probe`), optionally RNODE's kinetic-energy and
Jacobian-Frobenius terms (`flow.kinetic`, `flow.jacobian`). Training: maximum likelihood on
random batches, float32. Evaluation: test negative log-likelihood in nats (exact trace), the
Hutchinson estimate beside it with its Monte-Carlo error, the mass of the learnt density on
a grid, evaluation counts, and three figures (training curves, density beside the data and
samples, an animation of samples carried from the base distribution).
"""

import dataclasses
import functools
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..data import DENSITIES, DensitySamples, check_density_options, sample_density
from ..models import PROBES, TRACES
from ._common import (
    HISTORY_UNITS,
    check_data_is_for,
    filter_jit,
    load_run,
    summarise_history,
    train_new_model,
    write_run_metrics,
)
from ._sections import BatchTrainSettings, FieldSettings, GeneratedData, SolveSettings
from ._settings import (
    Section,
    SettingsError,
    changes_at,
    data_part,
    named_entries,
    option,
    section_keys,
)

if TYPE_CHECKING:
    from ..models import CNF

EXPERIMENT = "cnf"
DTYPE = np.float32
EVALUATION_BATCH = 16384
"""Points per solve in evaluation (the grid is solved in chunks of this size)."""


@dataclasses.dataclass(frozen=True)
class FlowSettings(Section):
    """The flow over [0, `t1`]: `trace` exact or Hutchinson's (with `probe`s); RNODE's weights `kinetic`
    and `jacobian` (both 0: the regularisers are not integrated)."""

    t1: float = option(1.0, above=0)
    trace: str = option("exact", choices=TRACES)
    probe: str = option("rademacher", choices=PROBES)
    kinetic: float = option(0.0, minimum=0)
    jacobian: float = option(0.0, minimum=0)

    @property
    def regularised(self) -> bool:
        return self.kinetic > 0 or self.jacobian > 0


@dataclasses.dataclass(frozen=True)
class EvaluationSettings(Section):
    """`grid` cells per side of the quadrature grid over the data's extent plus `margin`; Hutchinson
    `probes` per test point; `samples` drawn from the flow; `frames` of the animation."""

    grid: int = option(200, minimum=8)
    margin: float = option(2.0, minimum=0)
    probes: int = option(4, minimum=1)
    samples: int = option(5000, minimum=1)
    frames: int = option(30, minimum=2)


@dataclasses.dataclass(frozen=True)
class DataSettings(GeneratedData):
    """Points of a density: its name, generator options (`data`), how many to train and test on, the seed."""

    density: str = option("8gaussians", choices=DENSITIES)
    train_points: int = option(20000, minimum=1)
    test_points: int = option(5000, minimum=1)

    def check_options(self) -> None:
        check_density_options(self.density, self.data)


@dataclasses.dataclass(frozen=True)
class Settings(DataSettings):
    """One flow on one density: the data, the flow, its field, the solve, training and evaluation."""

    flow: FlowSettings = option(FlowSettings())
    field: FieldSettings = option(FieldSettings(width=64, depth=2, activation="tanh", time_input=True))
    solve: SolveSettings = option(SolveSettings(rtol=1e-5, atol=1e-5))
    train: BatchTrainSettings = option(
        BatchTrainSettings(steps=1500, learning_rate=3e-3, schedule="cosine", gradient_clip=1.0)
    )
    evaluation: EvaluationSettings = option(EvaluationSettings())

    def validate(self, where: str) -> "Settings":
        super().validate(where)
        if self.train.batch_size > self.train_points:
            raise SettingsError(
                f"{where}.train.batch_size is {self.train.batch_size}; "
                f"there are {self.train_points} training points"
            )
        return self

    def model_spec(self) -> dict:
        """What `pyode.models.build_model("cnf", ...)` takes to build this run's flow."""
        return {
            "dim": 2,
            **self.field.to_dict(),
            "t1": self.flow.t1,
            "trace": self.flow.trace,
            "probe": self.flow.probe,
            "regularise": self.flow.regularised,
            "solve_options": {**self.solve.options(), "throw": False},
        }


def resolve(changes: dict, where: str = "settings") -> Settings:
    """The defaults overlaid with `changes`, checked."""
    return Settings().overlay(changes, where)


def resolve_data(changes: dict, where: str = "settings") -> DataSettings:
    """The data stage's defaults overlaid with `changes` (a run's other settings ignored), checked."""
    return DataSettings().overlay(data_part(changes, Settings, DataSettings), where)


FLOW_KEYS = tuple(f.name for f in dataclasses.fields(FlowSettings))


def plan(section: dict, *, seed: int) -> dict[str, Settings]:
    """Every run of the config's `cnf` section, by name `density/model`, resolved and checked.

    `densities` are entries (name, generator options, `train_points`, `test_points`, an
    optional `train` override); `models` are entries (name, flow settings, an optional
    `train` override and `densities`: the only densities it runs on). `field`, `solve`,
    `train` and `evaluation` change every run's defaults.
    """
    section_keys(
        section, "cnf", required=("densities", "models"), optional=("field", "solve", "train", "evaluation")
    )
    densities = named_entries(section, "densities", "cnf")
    models = named_entries(section, "models", "cnf", keys=(*FLOW_KEYS, "densities", "train"))
    configured = [density["name"] for density in densities]
    for model in models:
        unknown = [name for name in model.get("densities", []) if name not in configured]
        if unknown:
            raise SettingsError(
                f"cnf.models[{model['name']}].densities names {', '.join(unknown)}, which cnf.densities "
                f"does not have; it has {', '.join(configured)}"
            )
    sizes = ("train_points", "test_points")
    runs = {}
    for density in densities:
        for model in models:
            if "densities" in model and density["name"] not in model["densities"]:
                continue
            changes = {
                "seed": seed,
                "density": density["name"],
                "data": {k: v for k, v in density.items() if k not in ("name", "train", *sizes)},
                **{k: density[k] for k in sizes if k in density},
                "flow": {k: model[k] for k in FLOW_KEYS if k in model},
                **{key: section[key] for key in ("field", "solve", "evaluation") if key in section},
                "train": {
                    **changes_at(section, "train", "cnf"),
                    **changes_at(density, "train", f"cnf.densities[{density['name']}]"),
                    **changes_at(model, "train", f"cnf.models[{model['name']}]"),
                },
            }
            name = f"{density['name']}/{model['name']}"
            runs[name] = Settings().overlay(changes, f"cnf[{name}]")
    return runs


def make_data(settings: DataSettings, out: str | Path) -> DensitySamples:
    """Draw the density's training and test points and write them to `out`."""
    samples = sample_density(
        settings.density,
        train_points=settings.train_points,
        test_points=settings.test_points,
        seed=settings.seed,
        **settings.data,
    )
    samples.save(out)
    return samples


def batch_sampler(x_train: np.ndarray, batch_size: int, seed: int):
    """step -> (points, key): a random batch and the key of its Hutchinson probes, both fixed by the step."""
    import jax
    import jax.numpy as jnp

    base = jax.random.PRNGKey(seed)

    def batch_at(step: int):
        index = np.random.default_rng([seed, step]).choice(len(x_train), batch_size, replace=False)
        return jnp.asarray(x_train[index], DTYPE), jax.random.fold_in(base, step)

    return batch_at


def train(data_path: str | Path, settings: Settings, out_dir: str | Path, *, progress: bool = True):
    """Train the flow on the samples at `data_path`; write model.npz and history.jsonl to `out_dir`."""
    from ..models import cnf_loss

    out_dir = Path(out_dir)
    samples = DensitySamples.load(data_path)
    check_data_is_for(data_path, samples.density, settings.density, "points")
    if settings.train.batch_size > len(samples.x_train):
        raise SettingsError(
            f"train.batch_size is {settings.train.batch_size}; {data_path} has {len(samples.x_train)} points"
        )
    spec = settings.model_spec()
    loss = functools.partial(cnf_loss, kinetic=settings.flow.kinetic, jacobian=settings.flow.jacobian)
    train_new_model(
        loss,
        batch_sampler(samples.x_train, settings.train.batch_size, settings.seed),
        settings,
        out_dir,
        experiment=EXPERIMENT,
        kind="cnf",
        spec=spec,
        description=f"train {settings.density}/{out_dir.name}",
        progress=progress,
        data_path=data_path,
    )


def exact(model: "CNF", *, regularise: bool = False) -> "CNF":
    """The same flow with the exact trace (and, with `regularise`, the regularisers integrated)."""
    dynamics = dataclasses.replace(model.dynamics, regularise=regularise)
    return dataclasses.replace(model, dynamics=dynamics, trace="exact")


def hutchinson(model: "CNF", probe: str | None = None) -> "CNF":
    """The same flow with Hutchinson's trace estimate (its own probe kind, or `probe`)."""
    dynamics = dataclasses.replace(model.dynamics, regularise=False)
    return dataclasses.replace(model, dynamics=dynamics, trace="hutchinson", probe=probe or model.probe)


@filter_jit
def _log_density(model: "CNF", x, key):
    log_p, regularisers, solution = model.log_density(x, key=key)
    return log_p, regularisers, solution.nfe_forward, solution.status


def log_density(model: "CNF", x: np.ndarray, *, key=None) -> tuple[np.ndarray, np.ndarray | None, int]:
    """log p(x) in chunks of `EVALUATION_BATCH` points: (log p, regularisers or None, largest NFE of a chunk).

    The last chunk is filled up with the first points again, so that every chunk has one shape.
    A failed solve is an error naming the solver's reason.
    """
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    from .. import status_message

    key = jax.random.PRNGKey(0) if key is None else key
    pieces, regularisers, nfe = [], [], 0
    dtype = jax.tree_util.tree_leaves(eqx.filter(model, eqx.is_inexact_array))[0].dtype
    size = min(EVALUATION_BATCH, len(x))
    padded = np.concatenate([x, x[: -len(x) % size]]) if len(x) % size else x  # one shape, one compilation
    for start in range(0, len(padded), size):
        chunk = jnp.asarray(padded[start : start + size], dtype)
        log_p, extra, chunk_nfe, status = _log_density(model, chunk, jax.random.fold_in(key, start))
        if int(status):
            raise RuntimeError(f"the flow's solve failed: {status_message(int(status))}")
        pieces.append(np.asarray(log_p, np.float64))
        if extra is not None:
            regularisers.append(np.asarray(extra, np.float64))
        nfe = max(nfe, int(chunk_nfe))
    regularisers = np.concatenate(regularisers)[: len(x)] if regularisers else None
    return np.concatenate(pieces)[: len(x)], regularisers, nfe


def grid_axes(x: np.ndarray, cells: int, margin: float) -> np.ndarray:
    """Cell edges of a square grid centred at 0 that covers the points `x` plus `margin` on every side."""
    half = float(np.max(np.abs(x))) + margin
    return np.linspace(-half, half, cells + 1)


def density_mass(model: "CNF", edges: np.ndarray) -> tuple[float, np.ndarray]:
    """The learnt density's integral over the square grid with these cell edges (midpoint rule),
    and log p at the cell centres (cells, cells), rows along the second coordinate."""
    centres = 0.5 * (edges[1:] + edges[:-1])
    gx, gy = np.meshgrid(centres, centres)
    log_p, _, _ = log_density(exact(model), np.stack([gx.ravel(), gy.ravel()], axis=1))
    cell = (edges[1] - edges[0]) ** 2
    return float(np.exp(log_p).sum() * cell), log_p.reshape(gx.shape)


def hutchinson_check(model: "CNF", x: np.ndarray, exact_log_p: np.ndarray, probes: int, seed: int) -> dict:
    """Hutchinson's test NLL beside the exact one: `probes` independent probes per point.

    The estimate's Monte-Carlo error is that of the per-point difference between the mean of
    the probes' estimates and the exact log-density (zero mean, independent across points):
    its standard error is the sample standard deviation of the differences over sqrt(points).
    """
    import jax

    repeated = np.repeat(x, probes, axis=0)
    estimates, _, nfe = log_density(hutchinson(model), repeated, key=jax.random.PRNGKey(seed))
    difference = estimates.reshape(len(x), probes).mean(axis=1) - exact_log_p
    stderr = float(difference.std(ddof=1) / math.sqrt(len(x)))
    mean_difference = float(-difference.mean())
    return {
        "hutchinson_test_nll": float(-np.mean(exact_log_p)) + mean_difference,
        "hutchinson_minus_exact_nll": mean_difference,
        "hutchinson_stderr": stderr,
        "hutchinson_z": mean_difference / stderr if stderr > 0 else math.nan,
        "hutchinson_nfe": nfe,
    }


@filter_jit
def _flow(model: "CNF", z1, ts):
    solution = model.flow(z1, ts)
    return solution.ys, solution.nfe_forward, solution.status


def sample_flow(model: "CNF", count: int, frames: int, seed: int) -> tuple[np.ndarray, np.ndarray, int]:
    """`count` base points carried from t1 back to 0, saved at `frames` times: (times, states
    (frames, count, 2), NFE). The last frame holds samples of the learnt density."""
    import jax
    import jax.numpy as jnp

    from .. import status_message

    z1 = jax.random.normal(jax.random.PRNGKey(seed), (count, 2), DTYPE)
    ts = jnp.linspace(model.t1, 0.0, frames, dtype=DTYPE)
    ys, nfe, status = _flow(model, z1, ts)
    if int(status):
        raise RuntimeError(f"sampling failed: {status_message(int(status))}")
    return np.asarray(ts), np.asarray(ys, np.float64), int(nfe)


UNITS = {
    **HISTORY_UNITS,
    "test_nll": "nats",
    "train_nll": "nats",
    "true_density_test_nll": "nats",
    "test_nfe": "evaluations",
    "test_kinetic_energy": "",
    "test_jacobian_frobenius": "",
    "hutchinson_test_nll": "nats",
    "hutchinson_minus_exact_nll": "nats",
    "hutchinson_stderr": "nats",
    "hutchinson_z": "standard errors",
    "hutchinson_nfe": "evaluations",
    "density_mass": "",
    "grid_half_width": "",
    "sample_nfe": "evaluations",
    "evaluation_seconds": "s",
}


def evaluate(run_dir: str | Path, data_path: str | Path, out_dir: str | Path, *, run: str) -> dict:
    """Evaluate the flow trained in `run_dir`; write metrics.json, loss.png, density.png and flow.gif."""
    from .. import plots

    tic = time.perf_counter()
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    model, metadata, settings, history = load_run(run_dir, resolve)
    samples = DensitySamples.load(data_path)
    evaluation = settings.evaluation
    test_log_p, _, test_nfe = log_density(exact(model), samples.x_test)
    train_log_p, _, _ = log_density(exact(model), samples.x_train[: len(samples.x_test)])
    _, regularisers, _ = log_density(exact(model, regularise=True), samples.x_test)
    metrics = {
        "test_nll": float(-test_log_p.mean()),
        "train_nll": float(-train_log_p.mean()),
        "test_nfe": test_nfe,
        "test_kinetic_energy": float(regularisers[:, 0].mean()),
        "test_jacobian_frobenius": float(regularisers[:, 1].mean()),
    }
    truth = samples.true_log_density(samples.x_test)
    if truth is not None:
        metrics["true_density_test_nll"] = float(-truth.mean())
    metrics.update(hutchinson_check(model, samples.x_test, test_log_p, evaluation.probes, settings.seed))
    edges = grid_axes(samples.x_train, evaluation.grid, evaluation.margin)
    metrics["density_mass"], grid_log_p = density_mass(model, edges)
    metrics["grid_half_width"] = float(edges[-1])
    times, states, metrics["sample_nfe"] = sample_flow(
        model, evaluation.samples, evaluation.frames, settings.seed
    )
    metrics.update(summarise_history(history))
    metrics["evaluation_seconds"] = time.perf_counter() - tic
    dtype = str(samples.x_train.dtype)
    record = write_run_metrics(
        out_dir, EXPERIMENT, run, metrics, metadata["settings"], units=UNITS, dtype=dtype
    )
    title = f"{run.split('/')[-1]} on {settings.density}"
    plots.cnf_training(history, out_dir / "loss.png", title=title)
    plots.cnf_density(samples.x_test, edges, grid_log_p, states[-1], out_dir / "density.png", title=title)
    plots.cnf_flow_animation(times, states, edges, out_dir / "flow.gif", title=title)
    return record


# The commands this experiment offers (docs/architecture.md, "Adding an experiment").
from ._registry import Experiment, data_command, evaluate_run_command, train_command  # noqa: E402

DECLARATION = Experiment(
    EXPERIMENT,
    commands=(
        data_command(
            EXPERIMENT, make_data, resolve_data, "draw training and test points of a density in the plane"
        ),
        train_command(
            EXPERIMENT,
            train,
            resolve,
            "train a continuous normalising flow by maximum likelihood",
            out="run folder (model.npz, history.jsonl)",
        ),
        evaluate_run_command(
            EXPERIMENT, evaluate, "metrics and figures of a trained flow", run_example="8gaussians/ffjord"
        ),
    ),
)
