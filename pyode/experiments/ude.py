"""Universal differential equations with equation discovery (Rackauckas et al. 2020, the Lotka-Volterra
example of "Universal Differential Equations for Scientific Machine Learning").

Data (`lotka_volterra`): the prey-predator system du/dt = alpha u - beta u v, dv/dt = gamma u v - delta v
with the paper's parameters (1.3, 0.9, 0.8, 1.8) and initial state, solved by SciPy (DOP853, rtol
1e-10) and observed every 0.1 time units; Gaussian noise of 5% of each state's mean over the training
window (the paper's level) on the training window [0, 3] and the validation window (3, 6]; the true states
on the extrapolation window (6, 50], which no choice reads. Models (`MODEL_KINDS`), each an MLP
(`pyode.models.MLPField`) of the state: `ude`, the known linear terms (alpha u, -delta v) plus the network,
which learns the missing interaction terms; `node`, the network alone (a pure neural ODE). Training
(float32): the trajectory from the first noisy observation fitted to the training window (mean squared
error), Adam, then Optax's L-BFGS (`optax.lbfgs`, its zoom line search). Evaluation (float64): PySINDy's
STLSQ on the UDE network's terms along its fitted trajectory (a polynomial library), each threshold's
equation refitted to the training data (SciPy least squares through the solve), the threshold chosen on
the validation window; the same with SINDy on finite differences of the noisy data (the known terms
subtracted); extrapolation of every model to the horizon. docs/ude.md has the choices.
"""

import dataclasses
import functools
import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .. import atomic_write, load_arrays, read_json, save_arrays
from ._common import (
    HISTORY_UNITS,
    filter_jit,
    read_history,
    summarise_history,
    train_run,
    write_history,
    write_metrics,
)
from ._sections import FieldSettings, GeneratedData, SolveSettings, StepTrainSettings
from ._settings import Section, SettingsError, changes_at, data_part, named_entries, option, section_keys

if TYPE_CHECKING:
    import jax

EXPERIMENT = "ude"
DTYPE = np.float32
STATES = ("u", "v")
MODEL_KINDS = ("ude", "node")
PARAMETERS = {"alpha": 1.3, "beta": 0.9, "gamma": 0.8, "delta": 1.8}
"""The paper's Lotka-Volterra parameters (its code, LotkaVolterra/scenario_1.jl)."""
INITIAL_STATE = (0.44249296, 4.6280594)
"""The paper's initial state (its code)."""
KNOWN_TERMS = {"u": ("alpha", 1.0), "v": ("delta", -1.0)}
"""The linear term of each state the UDE is given: (parameter, sign); du/dt = alpha u + ..., dv/dt =
-delta v + ..."""
DEGREES = (2, 3)
"""Degrees of the SINDy polynomial library allowed."""
VALIDATION_SLACK = 0.05
BLOW_UP = 1e4
"""A solution of a discovered equation whose state leaves [-BLOW_UP, BLOW_UP] is ended there (NaN after)."""


# --- the system and its data ----------------------------------------------------------------------


def true_field(y, parameters: dict, xp=np):
    """(du/dt, dv/dt) of the Lotka-Volterra system at states y (..., 2)."""
    u, v = y[..., 0], y[..., 1]
    p = parameters
    return xp.stack([p["alpha"] * u - p["beta"] * u * v, p["gamma"] * u * v - p["delta"] * v], axis=-1)


def true_interaction(y, parameters: dict, xp=np):
    """The terms the UDE's network must learn: (-beta u v, gamma u v) at states y (..., 2)."""
    u, v = y[..., 0], y[..., 1]
    return xp.stack([-parameters["beta"] * u * v, parameters["gamma"] * u * v], axis=-1)


def known_coefficients(parameters: dict, known=tuple(KNOWN_TERMS)) -> np.ndarray:
    """The coefficient of each state's known linear term ([alpha, -delta]; 0 where not `known`)."""
    return np.array(
        [sign * parameters[name] if state in known else 0.0 for state, (name, sign) in KNOWN_TERMS.items()]
    )


def true_support(degree: int) -> dict:
    """The true equation's missing terms in the library of `degree`: {state: {monomial: coefficient}}."""
    del degree  # u v is in every library of degree >= 2
    return {"u": {"u v": -PARAMETERS["beta"]}, "v": {"u v": PARAMETERS["gamma"]}}


def _solve_scipy(field, y0, ts, rtol: float, atol: float) -> np.ndarray:
    """SciPy's DOP853 solution of dy/dt = field(y) from y0 at ts (float64, (time, 2)); rows after a
    failure (a blow-up) are NaN."""
    from scipy.integrate import solve_ivp

    out = np.full((len(ts), len(y0)), np.nan)

    def escaped(t, y):  # a blow-up ends the solve (its remaining rows NaN) instead of crawling on
        return BLOW_UP - np.max(np.abs(y))

    escaped.terminal = True
    solution = solve_ivp(
        lambda t, y: field(y), (ts[0], ts[-1]), np.asarray(y0, float), t_eval=ts, method="DOP853",
        rtol=rtol, atol=atol, events=escaped,
    )  # fmt: skip
    out[: solution.y.shape[1]] = solution.y.T
    return out


def _check_generator(options: dict) -> None:
    for name in ("t_train", "t_validation", "horizon", "dt", "rtol", "atol", *PARAMETERS):
        value = options[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise ValueError(f"{name} must be a positive number, got {value!r}")
    if not options["dt"] < options["t_train"] < options["t_validation"] < options["horizon"]:
        raise ValueError(
            "the windows must follow each other: dt < t_train < t_validation < horizon, got "
            f"{options['dt']}, {options['t_train']}, {options['t_validation']}, {options['horizon']}"
        )
    noise = options["noise"]
    if isinstance(noise, bool) or not isinstance(noise, (int, float)) or noise < 0:
        raise ValueError(f"noise must be a number of at least 0, got {noise!r}")
    u0 = options["u0"]
    if (
        not isinstance(u0, (list, tuple))
        or len(u0) != 2
        or not all(isinstance(x, (int, float)) and not isinstance(x, bool) and x > 0 for x in u0)
    ):
        raise ValueError(f"u0 must be [prey, predator], two positive numbers, got {u0!r}")


@dataclasses.dataclass(frozen=True)
class LotkaVolterraData:
    """Observations every `dt` on [0, horizon]: `clean` (T, 2) the true states, `noisy` the same with noise
    (read on the training and validation windows only). `parameters`, `u0` and the windows' ends."""

    parameters: dict
    u0: tuple
    noise: float
    settings: dict
    ts: np.ndarray
    clean: np.ndarray
    noisy: np.ndarray

    KIND = "ude_data"

    def save(self, path: str | Path) -> None:
        metadata = {
            "kind": self.KIND,
            "parameters": self.parameters,
            "u0": list(self.u0),
            "noise": self.noise,
            "settings": self.settings,
        }
        save_arrays(path, {"ts": self.ts, "clean": self.clean, "noisy": self.noisy}, metadata)

    @classmethod
    def load(cls, path: str | Path) -> "LotkaVolterraData":
        from .. import CorruptFile

        arrays, metadata = load_arrays(path)
        if metadata.get("kind") != cls.KIND:
            raise CorruptFile(f"{path} does not hold Lotka-Volterra data (kind {metadata.get('kind')!r})")
        return cls(
            metadata["parameters"],
            tuple(metadata["u0"]),
            metadata["noise"],
            metadata["settings"],
            arrays["ts"],
            arrays["clean"],
            arrays["noisy"],
        )

    def window(self, name: str) -> np.ndarray:
        """A boolean mask of the times in `train` [0, t_train], `validation` (t_train, t_validation] or
        `extrapolation` (t_validation, horizon]."""
        t_train, t_validation = self.settings["t_train"], self.settings["t_validation"]
        eps = 1e-9 * self.settings["horizon"]
        return {
            "train": self.ts <= t_train + eps,
            "validation": (self.ts > t_train + eps) & (self.ts <= t_validation + eps),
            "extrapolation": self.ts > t_validation + eps,
        }[name]

    def observed(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(times, noisy states) of the training or validation window."""
        mask = self.window(name)
        return self.ts[mask], self.noisy[mask]


def lotka_volterra(
    *,
    u0: tuple = INITIAL_STATE,
    alpha: float = PARAMETERS["alpha"],
    beta: float = PARAMETERS["beta"],
    gamma: float = PARAMETERS["gamma"],
    delta: float = PARAMETERS["delta"],
    t_train: float = 3.0,
    t_validation: float = 6.0,
    horizon: float = 50.0,
    dt: float = 0.1,
    noise: float = 0.05,
    rtol: float = 1e-10,
    atol: float = 1e-12,
    seed: int = 0,
) -> LotkaVolterraData:
    """The Lotka-Volterra system from `u0` observed every `dt` to `horizon` (SciPy DOP853 at `rtol`,
    `atol`); Gaussian noise of sd `noise` times each state's mean over [0, t_train] (the paper's
    `noise_magnitude * mean(X)`) on every observation (the models read it on [0, t_validation] only)."""
    options = {k: v for k, v in locals().items() if k != "seed"}
    _check_generator(options)
    parameters = {name: float(options[name]) for name in PARAMETERS}
    steps = int(round(horizon / dt))
    ts = np.linspace(0.0, steps * dt, steps + 1)
    clean = _solve_scipy(lambda y: true_field(y, parameters), u0, ts, rtol, atol)
    scale = noise * clean[ts <= t_train + 1e-9 * horizon].mean(axis=0)
    noisy = clean + scale * np.random.default_rng(seed).standard_normal(clean.shape)
    options["u0"] = list(u0)
    return LotkaVolterraData(parameters, tuple(u0), float(noise), options, ts, clean, noisy)


def check_data_options(options: dict) -> None:
    """A ValueError naming the problem if `options` cannot make the data (nothing is generated)."""
    import inspect

    parameters = inspect.signature(lotka_volterra).parameters
    allowed = sorted(set(parameters) - {"seed"})
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(
            f"lotka_volterra takes no option {', '.join(unknown)}; it takes {', '.join(allowed)}"
        )
    values = {name: p.default for name, p in parameters.items() if name != "seed"}
    _check_generator({**values, **options})


# --- settings ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class DataSettings(GeneratedData):
    """The data: the generator's options (`data`, see `lotka_volterra`) and the noise's seed."""

    seed: int = option(0, minimum=0)

    def check_options(self) -> None:
        check_data_options(self.data)


@dataclasses.dataclass(frozen=True)
class ModelSettings(Section):
    """`kind`: ude (the known terms of the states in `known` plus the network) or node (the network
    alone; `known` is not read)."""

    name: str = option("ude")
    kind: str = option("ude", choices=MODEL_KINDS)
    known: tuple[str, ...] = option(tuple(KNOWN_TERMS))

    def validate(self, where: str) -> "ModelSettings":
        for state in self.known:
            if state not in STATES:
                raise SettingsError(
                    f"{where}.known names {state!r}, which is no state; the states are {', '.join(STATES)}"
                )
        return self


@dataclasses.dataclass(frozen=True)
class UDETrainSettings(StepTrainSettings):
    """`steps` of Adam (at `learning_rate`), then `lbfgs_steps` of Optax's L-BFGS (`lbfgs_memory` pairs,
    its zoom line search)."""

    lbfgs_steps: int = option(300, minimum=0)
    lbfgs_memory: int = option(10, minimum=1)


@dataclasses.dataclass(frozen=True)
class SindySettings(Section):
    """PySINDy's STLSQ on a polynomial library of `degree` (2 or 3) in (u, v), at each of `thresholds`;
    `ridge` is STLSQ's alpha; the network's terms are sampled at `samples` times along its fitted
    trajectory over the training window; the threshold kept is the sparsest whose refitted equation's
    validation RMSE is within `slack` (a fraction) of the best."""

    degree: int = option(3, minimum=min(DEGREES), maximum=max(DEGREES))
    thresholds: tuple[float, ...] = option((0.02, 0.05, 0.1, 0.2, 0.3, 0.5))
    ridge: float = option(1e-5, minimum=0)
    samples: int = option(61, minimum=10)
    slack: float = option(VALIDATION_SLACK, minimum=0)

    def validate(self, where: str) -> "SindySettings":
        if not self.thresholds:
            raise SettingsError(f"{where}.thresholds must list at least one threshold")
        for index, value in enumerate(self.thresholds):
            if not 0 < value < 10:
                raise SettingsError(
                    f"{where}.thresholds[{index}] is {value!r}; a threshold must be in (0, 10)"
                )
        return self


@dataclasses.dataclass(frozen=True)
class Settings(DataSettings):
    """One model (UDE or pure neural ODE) on the data: the network, its training and solve, the
    validation cadence, and the equation discovery the evaluation runs."""

    model: ModelSettings = option(ModelSettings())
    field: FieldSettings = option(FieldSettings(width=32, depth=2, activation="tanh"))
    train: UDETrainSettings = option(
        UDETrainSettings(steps=300, learning_rate=0.01, checkpoint_every=100, count_every=10**6)
    )
    solve: SolveSettings = option(SolveSettings(solver="tsit5", rtol=1e-6, atol=1e-6, max_steps=4096))
    sindy: SindySettings = option(SindySettings())
    validate_every: int = option(50, minimum=1)
    """Steps between evaluations of the RMSE on the validation window (validation.jsonl)."""

    def validate(self, where: str) -> "Settings":
        super().validate(where)
        if self.field.time_input:
            raise SettingsError(f"{where}.field.time_input: the system is autonomous; set it false")
        return self

    def model_spec(self) -> dict:
        """What `pyode.models.build_model("mlp_field", ...)` takes to build the network."""
        return {"dim": 2, **self.field.to_dict()}

    def known(self) -> tuple[str, ...]:
        """The states whose linear term the model is given."""
        return self.model.known if self.model.kind == "ude" else ()


def resolve(changes: dict, where: str = "settings") -> Settings:
    """The defaults overlaid with `changes`, checked."""
    return Settings().overlay(changes, where)


def resolve_data(changes: dict, where: str = "settings") -> DataSettings:
    """The data stage's defaults overlaid with `changes` (a run's other settings ignored), checked."""
    return DataSettings().overlay(data_part(changes, Settings, DataSettings), where)


SHARED_KEYS = ("data", "field", "train", "solve", "sindy", "validate_every")


def plan(section: dict, *, seed: int) -> dict[str, Settings]:
    """Every run of the config's `ude` section, by model name, resolved and checked.

    `models` entries name a model and its `kind` (and `known`), and may change `field` and `train`; the
    section's other keys (`data`, `field`, `train`, `solve`, `sindy`, `validate_every`) apply to every run.
    """
    section_keys(section, "ude", required=("models",), optional=SHARED_KEYS)
    models = named_entries(section, "models", "ude")
    common = {k: v for k, v in section.items() if k in ("data", "solve", "sindy", "validate_every")}
    runs = {}
    for model in models:
        name = model["name"]
        changes = {
            "seed": seed,
            **common,
            "model": {k: v for k, v in model.items() if k not in ("field", "train")},
            **{
                key: {**changes_at(section, key, "ude"), **changes_at(model, key, f"ude.models[{name}]")}
                for key in ("field", "train")
            },
        }
        runs[name] = resolve(changes, f"ude[{name}]")
    kinds = [settings.model.kind for settings in runs.values()]
    if kinds.count("ude") != 1:
        raise SettingsError(f"ude.models must hold exactly one model of kind ude, got {kinds.count('ude')}")
    return runs


def make_data(settings: DataSettings, out: str | Path) -> LotkaVolterraData:
    """The data set, written to `out`."""
    data = lotka_volterra(**settings.data, seed=settings.seed)
    data.save(out)
    return data


# --- the model and its training ------------------------------------------------------------------


def model_field(t, y, args):
    """The model's (du/dt, dv/dt): `args` = (network, known coefficients (2,)); the known linear terms
    plus the network's output (all of it for a pure neural ODE, whose coefficients are zero)."""
    network, known = args
    return known * y + network(t, y)


def trajectory(network, known, y0, ts, options: dict):
    """The model's solution from y0 at ts (`pyode.solve`): its states (T, 2) and status."""
    from .. import solve

    solution = solve(model_field, y0, ts, args=(network, known), **options)
    return solution.ys, solution.status


def trajectory_loss(known, options: dict, network, batch) -> tuple["jax.Array", dict]:
    """Mean squared error of the trajectory from the first observation against the observations;
    `batch` = (times (T,), observed states (T, 2))."""
    import jax.numpy as jnp

    ts, observed = batch
    ys, status = trajectory(network, known, observed[0], ts, options)
    mse = jnp.mean((ys - observed) ** 2)
    return mse, {"rmse": jnp.sqrt(mse), "solver_status": status}


class AdamLbfgsStepper:
    """Adam for the first `adam_steps` steps, then Optax's L-BFGS (`optax.lbfgs`): one step of the loop
    is one update of either. The optimiser state holds both states (a checkpoint resumes either phase).
    A step's batch is (phase, data): the phase is chosen by the step alone, as the loop requires."""

    def __init__(self, model, loss_fn, *, learning_rate: float, memory: int):
        import equinox as eqx
        import jax
        import optax

        self._params, self._static = eqx.partition(model, eqx.is_inexact_array)
        static = self._static
        self._adam = optax.adam(learning_rate)
        self._lbfgs = optax.lbfgs(memory_size=memory)

        def value_and_metrics(params, data):
            return loss_fn(eqx.combine(params, static), data)

        def finite(tree):
            leaves = jax.tree_util.tree_leaves(tree)
            return jax.numpy.all(jax.numpy.stack([jax.numpy.all(jax.numpy.isfinite(x)) for x in leaves]))

        def adam(params, opt_state, data):
            adam_state, lbfgs_state = opt_state
            (loss, metrics), grads = jax.value_and_grad(value_and_metrics, has_aux=True)(params, data)
            updates, adam_state = self._adam.update(grads, adam_state, params)
            new = optax.apply_updates(params, updates)
            return new, (adam_state, lbfgs_state), loss, metrics, finite(grads), finite(new)

        def lbfgs(params, opt_state, data):
            adam_state, lbfgs_state = opt_state
            (loss, metrics), grads = jax.value_and_grad(value_and_metrics, has_aux=True)(params, data)

            def value_fn(p):  # the line search's trial points keep the parameters' dtype (float32)
                p = jax.tree_util.tree_map(lambda a, ref: a.astype(ref.dtype), p, params)
                return value_and_metrics(p, data)[0]

            updates, lbfgs_state = self._lbfgs.update(
                grads, lbfgs_state, params, value=loss, grad=grads, value_fn=value_fn
            )
            new = optax.apply_updates(params, updates)
            return new, (adam_state, lbfgs_state), loss, metrics, finite(grads), finite(new)

        self._steps = {"adam": jax.jit(adam), "lbfgs": jax.jit(lbfgs)}

    def init(self):
        return self._params, (self._adam.init(self._params), self._lbfgs.init(self._params))

    def step(self, params, opt_state, batch):
        from .. import status_message
        from ..train import StepResult

        phase, data = batch
        new, new_state, loss, metrics, finite_grads, finite_params = self._steps[phase](
            params, opt_state, data
        )
        loss = float(loss)
        metrics = {name: float(value) for name, value in metrics.items()}
        status = int(metrics.pop("solver_status", 0))
        metrics["lbfgs"] = float(phase == "lbfgs")
        failure = None
        if status:
            failure = f"the solver failed ({status_message(status)})"
        elif not math.isfinite(loss):
            failure = f"the loss became {loss}"
        elif not bool(finite_grads):
            failure = "a gradient became non-finite"
        elif not bool(finite_params):
            failure = "a parameter became non-finite"
        return StepResult(new, new_state, loss, metrics, failure)

    def count(self, params, opt_state, batch):
        return None

    def model(self, params):
        import equinox as eqx

        return eqx.combine(params, self._static)


def _window_batch(data: LotkaVolterraData, name: str, dtype=DTYPE) -> tuple:
    import jax.numpy as jnp

    ts, observed = data.observed(name)
    return jnp.asarray(ts, dtype), jnp.asarray(observed, dtype)


@filter_jit
def _solve_model(network, known, first, ts, options):
    return trajectory(network, known, first, ts, options)


def train(data_path: str | Path, settings: Settings, out_dir: str | Path, *, progress: bool = True):
    """Fit the run's model to the training window at `data_path` (Adam, then L-BFGS; float32); write
    model.npz, history.jsonl and validation.jsonl (the RMSE on the validation window of the trajectory from
    the first observation, every `validate_every` steps) to `out_dir`."""
    import jax
    import jax.numpy as jnp

    from ..models import build_model, save_model

    data = LotkaVolterraData.load(data_path)
    out_dir = Path(out_dir)
    known = jnp.asarray(known_coefficients(data.parameters, settings.known()), DTYPE)
    options = {**settings.solve.options(), "throw": False}
    batch = _window_batch(data, "train")
    loss = functools.partial(trajectory_loss, known, options)
    network = build_model("mlp_field", settings.model_spec(), key=jax.random.PRNGKey(settings.seed))
    stepper = AdamLbfgsStepper(
        network, loss, learning_rate=settings.train.learning_rate, memory=settings.train.lbfgs_memory
    )
    adam_steps, total = settings.train.steps, settings.train.steps + settings.train.lbfgs_steps
    through = np.concatenate([data.ts[data.window("train")], data.ts[data.window("validation")]])
    n_validation = int(data.window("validation").sum())
    validation_ts = jnp.asarray(through, DTYPE)
    validation_observed = np.asarray(data.observed("validation")[1])
    first = batch[1][0]

    def observe(step: int, network) -> dict | None:
        if step % settings.validate_every == 0 or step == total:
            ys, _ = _solve_model(network, known, first, validation_ts, options)
            predicted = np.asarray(ys)[-n_validation:]
            rmse = float(np.sqrt(np.mean((predicted - validation_observed) ** 2)))
            return {"step": step, "validation_rmse": rmse if math.isfinite(rmse) else None}
        return None

    def save_outputs(state, identity: dict) -> None:
        trained = stepper.model(state.params)
        metadata = {"experiment": EXPERIMENT, "settings": settings.to_dict(), "identity": identity}
        save_model(
            out_dir / "model.npz", trained, kind="mlp_field", spec=settings.model_spec(), metadata=metadata
        )
        write_history(out_dir / "validation.jsonl", state.observations)

    train_options = settings.train.options(
        steps=total, description=f"train {settings.model.name}", progress=progress
    )
    return train_run(
        stepper,
        lambda step: ("adam" if step < adam_steps else "lbfgs", batch),
        settings,
        out_dir,
        options=train_options,
        experiment=EXPERIMENT,
        inputs={"data": data_path},
        save_outputs=save_outputs,
        observe=observe,
    )


# --- equation discovery --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Equation:
    """A polynomial field: du/dt = known[0] u + sum_k coefficients[0, k] theta_k(u, v), dv/dt likewise;
    theta_k = u^powers[k, 0] v^powers[k, 1] (PySINDy's library order)."""

    powers: np.ndarray
    coefficients: np.ndarray
    known: np.ndarray

    def library(self, y: np.ndarray) -> np.ndarray:
        y = np.asarray(y, np.float64)
        return np.prod(y[..., None, :] ** self.powers, axis=-1)

    def __call__(self, y: np.ndarray) -> np.ndarray:
        return self.known * y + self.library(y) @ self.coefficients.T

    def solve(self, y0, ts, rtol: float = 1e-10, atol: float = 1e-10) -> np.ndarray:
        """SciPy's solution from y0 at ts; NaN after a blow-up."""
        with np.errstate(all="ignore"):
            return _solve_scipy(self, y0, ts, rtol, atol)

    def terms(self) -> dict:
        """{state: {monomial: coefficient}} of the nonzero library terms."""
        return {
            state: {
                monomial(power): float(c) for power, c in zip(self.powers, self.coefficients[i]) if c != 0
            }
            for i, state in enumerate(STATES)
        }

    def support(self) -> np.ndarray:
        return self.coefficients != 0


def monomial(power) -> str:
    """'1', 'u', 'u v', 'u^2 v', ... of a row of powers."""
    parts = [name if p == 1 else f"{name}^{int(p)}" for name, p in zip(STATES, power) if p]
    return " ".join(parts) or "1"


def library_powers(degree: int) -> np.ndarray:
    """The powers of PySINDy's PolynomialLibrary(degree) in (u, v), in its order."""
    import pysindy as ps

    library = ps.PolynomialLibrary(degree=degree)
    library.fit(np.ones((3, 2)))
    return np.asarray(library.powers_)


def sindy_fit(
    states: np.ndarray, targets: np.ndarray, degree: int, threshold: float, ridge: float
) -> np.ndarray:
    """PySINDy's STLSQ of `targets` (N, 2) on the polynomial library of `states` (N, 2): the coefficients
    (2, terms) in `library_powers(degree)`'s order."""
    import warnings

    import pysindy as ps

    model = ps.SINDy(
        optimizer=ps.STLSQ(threshold=threshold, alpha=ridge),
        feature_library=ps.PolynomialLibrary(degree=degree),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # STLSQ warns when a threshold removes every term
        model.fit(np.asarray(states, np.float64), t=1.0, x_dot=np.asarray(targets, np.float64))
    return np.asarray(model.coefficients(), np.float64)


def refit(equation: Equation, ts: np.ndarray, observed: np.ndarray) -> Equation:
    """The equation's nonzero coefficients refitted to the observed trajectory (SciPy's least squares
    through the solve from the first observation); its support kept."""
    from scipy.optimize import least_squares

    support = equation.support()
    if not support.any():
        return equation

    def with_values(values):
        coefficients = np.zeros_like(equation.coefficients)
        coefficients[support] = values
        return Equation(equation.powers, coefficients, equation.known)

    def residual(values):
        path = with_values(values).solve(observed[0], ts, rtol=1e-8, atol=1e-8)
        return np.nan_to_num((path - observed).ravel(), nan=1e3, posinf=1e3, neginf=-1e3)

    result = least_squares(
        residual, equation.coefficients[support], method="trf", x_scale="jac", max_nfev=100
    )
    return with_values(result.x)


def _rmse(predicted: np.ndarray, target: np.ndarray) -> float:
    value = float(np.sqrt(np.mean((np.asarray(predicted, np.float64) - target) ** 2)))
    return value if math.isfinite(value) else math.inf


def discover(
    data: LotkaVolterraData, states: np.ndarray, targets: np.ndarray, known: np.ndarray, sindy: SindySettings
) -> tuple[Equation, list[dict]]:
    """SINDy of `targets` on `states` at every threshold, each equation refitted to the training window and
    scored by the RMSE of its solution from the first observation on the validation window; the equation
    kept is the sparsest within `sindy.slack` of the best validation RMSE (ties: the lower RMSE). Returns it
    and every threshold's record."""
    powers = library_powers(sindy.degree)
    ts_train, observed = data.observed("train")
    through = data.ts[data.window("train") | data.window("validation")]
    validation = data.observed("validation")[1]
    candidates = []
    for threshold in sindy.thresholds:
        coefficients = sindy_fit(states, targets, sindy.degree, threshold, sindy.ridge)
        fitted = refit(Equation(powers, coefficients, known), ts_train, observed)
        path = fitted.solve(observed[0], through)
        candidates.append(
            {
                "threshold": threshold,
                "terms": int(fitted.support().sum()),
                "validation_rmse": _rmse(path[-len(validation) :], validation),
                "train_rmse": _rmse(path[: len(ts_train)], observed),
                "equation": fitted,
            }
        )
    best = min(c["validation_rmse"] for c in candidates)
    good = [c for c in candidates if c["validation_rmse"] <= (1 + sindy.slack) * best]
    chosen = min(good, key=lambda c: (c["terms"], c["validation_rmse"]))
    records = [
        {
            **{k: v for k, v in c.items() if k != "equation"},
            "chosen": c is chosen,
            "equation": c["equation"].terms(),
        }
        for c in candidates
    ]
    return chosen["equation"], records


def equation_metrics(equation: Equation, degree: int) -> dict:
    """How the discovered missing terms compare with the truth: whether the support is exactly the true
    one, the largest coefficient error (spurious terms count at their size), and beta, gamma estimated."""
    truth = true_support(degree)
    found = equation.terms()
    exact = all(set(found[state]) == set(truth[state]) for state in STATES)
    errors = []
    for state in STATES:
        for term in set(found[state]) | set(truth[state]):
            errors.append(abs(found[state].get(term, 0.0) - truth[state].get(term, 0.0)))
    beta, gamma = -found["u"].get("u v", 0.0), found["v"].get("u v", 0.0)
    return {
        "exact_support": float(exact),
        "terms": sum(len(found[state]) for state in STATES),
        "max_coefficient_error": float(max(errors)),
        "beta": beta,
        "gamma": gamma,
        "beta_relative_error": abs(beta - PARAMETERS["beta"]) / PARAMETERS["beta"],
        "gamma_relative_error": abs(gamma - PARAMETERS["gamma"]) / PARAMETERS["gamma"],
    }


# --- evaluation ----------------------------------------------------------------------------------


def _float64(tree):
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    return jax.tree_util.tree_map(lambda a: a.astype(jnp.float64) if eqx.is_inexact_array(a) else a, tree)


ROLLOUT_OPTIONS = {"solver": "dopri5", "rtol": 1e-9, "atol": 1e-9, "max_steps": 100_000, "throw": False}


def network_rollout(network, known: np.ndarray, y0, ts: np.ndarray) -> np.ndarray:
    """The trained model's solution from y0 at ts (float64, dopri5 at 1e-9); NaN after a failed solve."""
    import jax.numpy as jnp

    ys, status = _solve_model(
        network, jnp.asarray(known), jnp.asarray(y0, jnp.float64), jnp.asarray(ts), ROLLOUT_OPTIONS
    )
    ys = np.array(ys, np.float64)
    ys[~np.isfinite(ys).all(axis=-1).cumprod().astype(bool)] = np.nan
    if int(status):
        ys[~np.isfinite(ys)] = np.nan
    return ys


def window_errors(data: LotkaVolterraData, path: np.ndarray) -> dict:
    """RMSE of a solution from the true initial state at every observation time: against the noisy
    observations on the training and validation windows, the true states on the extrapolation window."""
    metrics = {}
    for name in ("train", "validation"):
        mask = data.window(name)
        metrics[f"{name}_rmse"] = _rmse(path[mask], data.noisy[mask])
    mask = data.window("extrapolation")
    metrics["extrapolation_rmse"] = _rmse(path[mask], data.clean[mask])
    return metrics


def read_validation(path: str | Path) -> list[dict]:
    import json

    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def evaluate(data_path: str | Path, run_dirs: list[str | Path], out_dir: str | Path) -> dict:
    """The UDE, its equation discovered by SINDy, the pure neural ODE(s) and SINDy on the data (float64):
    metrics.json, terms.png, extrapolation.png and loss.png in `out_dir`."""
    import jax
    import jax.numpy as jnp

    from ..models import load_model

    jax.config.update("jax_enable_x64", True)
    out_dir = Path(out_dir)
    data = LotkaVolterraData.load(data_path)
    y0 = np.asarray(data.u0, np.float64)
    metrics, settings, paths, histories, validations = {}, {}, {}, {}, {}
    ude_run = None
    for run_dir in map(Path, run_dirs):
        network, metadata = load_model(run_dir / "model.npz")
        run_settings = resolve(metadata["settings"])
        name = run_settings.model.name
        network = _float64(network)
        known = known_coefficients(data.parameters, run_settings.known())
        history = read_history(run_dir / "history.jsonl")
        histories[name], validations[name] = history, read_validation(run_dir / "validation.jsonl")
        paths[name] = network_rollout(network, known, y0, data.ts)
        metrics[name] = {**window_errors(data, paths[name]), **summarise_history(history)}
        metrics[name]["lbfgs_steps"] = sum(1 for r in history if r.get("lbfgs"))
        settings[name] = metadata["settings"]
        if run_settings.model.kind == "ude":
            ude_run = (name, network, known, run_settings)
    if ude_run is None:
        raise SettingsError(
            f"{EXPERIMENT}-evaluate needs a run of kind ude among {[str(r) for r in run_dirs]}"
        )
    name, network, known, run_settings = ude_run
    sindy = run_settings.sindy
    ts_train, observed = data.observed("train")
    dense = np.linspace(ts_train[0], ts_train[-1], sindy.samples)
    fitted = network_rollout(network, known, observed[0], dense)
    learnt = np.asarray(network(0.0, jnp.asarray(fitted)))
    truth_terms = true_interaction(fitted, data.parameters)
    metrics[name]["interaction_rmse"] = _rmse(learnt, truth_terms)
    discovered, ude_records = discover(data, fitted, learnt, known, sindy)

    # SINDy on the data: smoothed finite differences of the noisy training observations, the known terms
    # subtracted, the same library, thresholds, refit and choice.
    import pysindy as ps

    derivative = np.asarray(ps.SmoothedFiniteDifference()(observed, ts_train))
    direct, direct_records = discover(data, observed, derivative - known * observed, known, sindy)
    for prefix, label, equation, records in (
        ("sindy", f"{name} + SINDy", discovered, ude_records),
        ("data_sindy", "SINDy on the data", direct, direct_records),
    ):
        paths[label] = equation.solve(y0, data.ts)
        chosen = next(r for r in records if r["chosen"])
        found = {
            **window_errors(data, paths[label]),
            **equation_metrics(equation, sindy.degree),
            "threshold": chosen["threshold"],
        }
        metrics[name].update({f"{prefix}_{key}": value for key, value in found.items()})
    truth = {state: dict(terms) for state, terms in true_support(sindy.degree).items()}
    record = write_metrics(
        out_dir / "metrics.json",
        experiment=EXPERIMENT,
        runs=metrics,
        settings=settings,
        units=UNITS,
        details={
            "parameters": data.parameters,
            "u0": list(data.u0),
            "noise": data.noise,
            "data_settings": data.settings,
            "true_missing_terms": truth,
            "ude_run": name,
            "discovered": {"sindy": discovered.terms(), "data_sindy": direct.terms()},
            "thresholds": {"sindy": ude_records, "data_sindy": direct_records},
            "validation_curves": validations,
            "degree": sindy.degree,
        },
        dtype="data float64; training float32; evaluation, SINDy and rollouts float64",
    )
    _figures(data, fitted, learnt, truth_terms, dense, discovered, paths, histories, out_dir)
    return record


EQUATION_UNITS = {
    "train_rmse": "state units",
    "validation_rmse": "state units",
    "extrapolation_rmse": "state units",
    "exact_support": "1 if the missing terms found are exactly the true ones, else 0",
    "terms": "terms",
    "max_coefficient_error": "coefficient units",
    "beta": "",
    "gamma": "",
    "beta_relative_error": "",
    "gamma_relative_error": "",
    "threshold": "",
}
"""The metrics of a discovered equation; the UDE's run holds them prefixed `sindy_` (SINDy on its
network's terms) and `data_sindy_` (SINDy on the noisy data's finite differences)."""
UNITS = {
    **HISTORY_UNITS,
    "train_rmse": "state units",
    "validation_rmse": "state units",
    "extrapolation_rmse": "state units",
    "interaction_rmse": "state units / time",
    "lbfgs_steps": "steps",
    **{f"{prefix}_{key}": unit for prefix in ("sindy", "data_sindy") for key, unit in EQUATION_UNITS.items()},
}


def _figures(data, fitted, learnt, truth_terms, dense, discovered, paths, histories, out_dir: Path) -> None:
    from .. import plots

    plots.ude_terms(
        dense,
        {
            "true": truth_terms,
            "network": learnt,
            "discovered (SINDy)": discovered.library(fitted) @ discovered.coefficients.T,
        },
        out_dir / "terms.png",
        title="Missing terms along the UDE's fitted trajectory (training window)",
    )
    windows = {
        name: float(data.settings[key])
        for name, key in (("training", "t_train"), ("validation", "t_validation"))
    }
    plots.ude_extrapolation(
        data.ts, data.clean, data.observed("train"), data.observed("validation"), paths, windows,
        out_dir / "extrapolation.png", title=f"From the true initial state to t = {data.ts[-1]:g}",
    )  # fmt: skip
    plots.ude_training(histories, out_dir / "loss.png", title="Training: Adam, then L-BFGS")


def summarise(record: dict, out: str | Path) -> str:
    """summary.md: the discovered equations beside the true one, and every model's errors."""
    details = record["details"]
    p = details["parameters"]
    lines = [
        "# Universal differential equation and equation discovery: Lotka-Volterra",
        "",
        f"True system: du/dt = {p['alpha']:g} u - {p['beta']:g} u v, "
        f"dv/dt = {p['gamma']:g} u v - {p['delta']:g} v "
        f"(known to the UDE: {p['alpha']:g} u and -{p['delta']:g} v).",
        "",
        "| model | du/dt, missing terms | dv/dt, missing terms | exact terms | extrapolation RMSE |",
        "|---|---|---|---|---|",
        "| truth | "
        + " | ".join(_terms_text(details["true_missing_terms"][state]) for state in STATES)
        + " | | |",
    ]
    runs = {entry["run"]: entry["metrics"] for entry in record["runs"]}
    ude_run = details["ude_run"]
    m = runs[ude_run]
    labels = {"sindy": f"{ude_run} + SINDy", "data_sindy": "SINDy on the data"}
    for prefix, equation in details["discovered"].items():
        lines.append(
            f"| {labels[prefix]} | "
            + " | ".join(_terms_text(equation[state]) for state in STATES)
            + f" | {'yes' if m[f'{prefix}_exact_support'] else 'no'} "
            + f"| {_number(m[f'{prefix}_extrapolation_rmse'])} |"
        )
    window = details["data_settings"]
    lines += [
        "",
        f"Windows: training [0, {window['t_train']:g}], validation ({window['t_train']:g}, "
        f"{window['t_validation']:g}], extrapolation ({window['t_validation']:g}, {window['horizon']:g}]; "
        f"noise {details['noise']:g} x each state's mean. RMSE against the noisy observations (training, "
        "validation) and the true states (extrapolation), every model solved from the true initial state.",
        "",
        "| model | training RMSE | validation RMSE | extrapolation RMSE | training (s) |",
        "|---|---|---|---|---|",
    ]
    rows = [
        (f"{label} (network)" if label == ude_run else label, metrics, "") for label, metrics in runs.items()
    ]
    rows += [(labels[prefix], m, f"{prefix}_") for prefix in details["discovered"]]
    for label, metrics, prefix in rows:
        seconds = metrics.get("train_seconds") if not prefix else None
        lines.append(
            f"| {label} | {_number(metrics[prefix + 'train_rmse'])} "
            f"| {_number(metrics[prefix + 'validation_rmse'])} "
            f"| {_number(metrics[prefix + 'extrapolation_rmse'])} "
            f"| {'' if seconds is None else f'{seconds:.1f}'} |"
        )
    text = "\n".join(lines) + "\n"
    atomic_write(out, text)
    return text


def _terms_text(terms: dict) -> str:
    if not terms:
        return "(none)"
    return " ".join(f"{c:+.4f} {t}" if t != "1" else f"{c:+.4f}" for t, c in terms.items())


def _number(value) -> str:
    return "diverged" if value is None else f"{value:.4g}"


# The commands this experiment offers (docs/architecture.md, "Adding an experiment").
from ._registry import (  # noqa: E402
    Command,
    Experiment,
    argument,
    data_command,
    evaluate_runs_command,
    train_command,
)


def _summary_command(args) -> None:
    print(summarise(read_json(args.metrics), args.out), end="")


DECLARATION = Experiment(
    EXPERIMENT,
    commands=(
        data_command(EXPERIMENT, make_data, resolve_data, "noisy Lotka-Volterra observations"),
        train_command(
            EXPERIMENT,
            train,
            resolve,
            "fit a UDE (known terms + network) or a pure neural ODE to the training window",
            out="run folder (model.npz, history.jsonl, validation.jsonl)",
        ),
        evaluate_runs_command(
            EXPERIMENT, evaluate, "equation discovery by SINDy, baselines, extrapolation and figures"
        ),
        Command(
            "ude-summary",
            _summary_command,
            "the discovered equations beside the true one, and every model's errors",
            (argument("metrics", help="metrics.json written by ude-evaluate"),),
            out="summary.md to write",
        ),
    ),
)
