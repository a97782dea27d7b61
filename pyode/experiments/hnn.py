"""Hamiltonian neural networks (Greydanus, Dzamba & Yosinski, NeurIPS 2019) against a neural ODE field.

Systems (`SYSTEMS`): the paper's ideal mass-spring, H = k q^2 / 2 + p^2 / (2 m) with k = m = 1, and
ideal pendulum, H = 2 m g l (1 - cos q) + l^2 p^2 / (2 m) with m = l = 1, g = 3 (its Equations 4
and 5). Data: trajectories from initial states of uniformly drawn energy, solved by SciPy at rtol
1e-10 (float64), their states observed with Gaussian noise (sd 0.1), the targets the true time
derivatives at the noise-free states; train, validation and test trajectories, and long true
rollouts from the validation and test initial states. Models (`MODEL_KINDS`), each an MLP
(`pyode.models.MLPField`): `baseline` outputs (dq/dt, dp/dt) directly; `hnn` outputs a scalar
H_theta(q, p) whose symplectic gradient (dH/dp, -dH/dq) is the field; `separable` is an HNN whose
Hamiltonian is T(p) + V(q) (one MLP of one coordinate with two outputs, V = h(q)[0], T = h(p)[1]), the
form Diffrax's symplectic solver can integrate. Training (float32, full batch): mean squared error
of the predicted time derivatives. Evaluation (float64): derivative errors on every split, and
rollouts from the validation and test initial states with dopri5 (`pyode.solve`) and, for separable
Hamiltonians (the true ones, `separable`), Diffrax's semi-implicit Euler: trajectory and energy
errors against the true rollouts, energy drift and phase portraits. docs/hnn.md has the choices.
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
    check_data_is_for,
    filter_jit,
    read_history,
    summarise_history,
    train_new_model,
    write_history,
    write_metrics,
)
from ._sections import FieldSettings, GeneratedData, StepTrainSettings
from ._settings import Section, SettingsError, changes_at, data_part, named_entries, option, section_keys

if TYPE_CHECKING:
    import jax

EXPERIMENT = "hnn"
DTYPE = np.float32
SPLITS = ("train", "validation", "test")
ROLLOUT_SPLITS = ("validation", "test")
MODEL_KINDS = ("baseline", "hnn", "separable")
SEPARABLE_KINDS = ("separable",)
"""Models whose Hamiltonian is T(p) + V(q): Diffrax's semi-implicit Euler integrates them."""
MODEL_LABELS = {"baseline": "baseline", "hnn": "hnn", "separable": "separable"}
CONSTANTS = {
    "spring": {"mass": 1.0, "stiffness": 1.0},
    "pendulum": {"mass": 1.0, "gravity": 3.0, "length": 1.0},
}
"""Each system's physical constants and their defaults (the paper's: k = m = 1; m = l = 1, g = 3)."""
ENERGIES = {"spring": (0.2, 1.0), "pendulum": (1.3, 2.3)}
"""The ranges of the initial states' energies (the paper's, section 3)."""
OBSERVATIONS = {"spring": 30, "pendulum": 45}
"""Observations per trajectory on [0, t1]: the paper's 30 (mass-spring); 45 in its code (pendulum)."""
PAPER_TABLE_1 = {
    "spring": {"baseline": (37, 2, 170, 20), "hnn": (36, 2, 0.38, 0.1)},
    "pendulum": {"baseline": (35, 2, 42, 10), "hnn": (36, 2, 25, 5)},
}
"""Greydanus et al. (2019), Table 1, x 1e-3: (test loss, its +-, energy MSE, its +-)."""


# --- the systems: Hamiltonians, true fields, data -----------------------------------------------


def hamiltonian(system: str, constants: dict, y, xp=np):
    """The true Hamiltonian of `system` at states y (..., 2) = (q, p); `xp` is numpy or jax.numpy."""
    q, p = y[..., 0], y[..., 1]
    if system == "spring":
        return constants["stiffness"] * q**2 / 2 + p**2 / (2 * constants["mass"])
    m, g, length = constants["mass"], constants["gravity"], constants["length"]
    return 2 * m * g * length * (1 - xp.cos(q)) + length**2 * p**2 / (2 * m)


def true_derivative(system: str, constants: dict, y, xp=np):
    """(dq/dt, dp/dt) = (dH/dp, -dH/dq) of the true Hamiltonian at states y (..., 2)."""
    q, p = y[..., 0], y[..., 1]
    if system == "spring":
        return xp.stack([p / constants["mass"], -constants["stiffness"] * q], axis=-1)
    m, g, length = constants["mass"], constants["gravity"], constants["length"]
    return xp.stack([length**2 * p / m, -2 * m * g * length * xp.sin(q)], axis=-1)


def _check_generator(system: str, constants: dict, options: dict) -> None:
    """A ValueError naming the first option that cannot make `system`'s data."""
    counts = ("trajectories", "validation_trajectories", "test_trajectories")
    for name in counts:
        if isinstance(options[name], bool) or not isinstance(options[name], int) or options[name] < 1:
            raise ValueError(f"{name} must be a whole number of at least 1, got {options[name]!r}")
    for name in ("observations", "horizon_points"):
        if isinstance(options[name], bool) or not isinstance(options[name], int) or options[name] < 2:
            raise ValueError(f"{name} must be a whole number of at least 2, got {options[name]!r}")
    for name in ("t1", "horizon", "rtol", "atol", *constants):
        value = options[name] if name in options else constants[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise ValueError(f"{name} must be a positive number, got {value!r}")
    if (
        isinstance(options["noise"], bool)
        or not isinstance(options["noise"], (int, float))
        or options["noise"] < 0
    ):
        raise ValueError(f"noise must be a number of at least 0, got {options['noise']!r}")
    energy = options["energy"]
    if (
        not isinstance(energy, (list, tuple))
        or len(energy) != 2
        or not all(isinstance(e, (int, float)) and not isinstance(e, bool) for e in energy)
        or not 0 < energy[0] <= energy[1]
    ):
        raise ValueError(f"energy must be [low, high] with 0 < low <= high, got {energy!r}")
    if system == "pendulum":
        top = 4 * constants["mass"] * constants["gravity"] * constants["length"]
        if energy[1] >= top:
            raise ValueError(
                f"energy {list(energy)} reaches the top of the swing, H = 4 m g l = {top:g}: the pendulum "
                "would rotate instead of swinging; keep the energies below it"
            )


def _on_level_set(system: str, constants: dict, energy: float, angle: float) -> np.ndarray:
    """The state of energy `energy` in direction `angle` from the origin of the (q, p) plane: the first
    crossing of that level along the ray (bracketed on a grid, then Brent's method)."""
    from scipy.optimize import brentq

    direction = np.array([np.cos(angle), np.sin(angle)])

    def excess(radius: float) -> float:
        return float(hamiltonian(system, constants, radius * direction)) - energy

    reach = 1.0
    while excess(reach) < 0:
        reach *= 2
    radii = np.linspace(0.0, reach, 257)
    above = int(np.argmax([excess(r) >= 0 for r in radii]))
    return brentq(excess, radii[above - 1], radii[above], xtol=1e-14, rtol=1e-14) * direction


def _solve_true(system: str, constants: dict, y0: np.ndarray, ts: np.ndarray, rtol: float, atol: float):
    """SciPy's DOP853 solution of the true system from y0 at times ts (float64, (time, 2))."""
    from scipy.integrate import solve_ivp

    solution = solve_ivp(
        lambda t, y: true_derivative(system, constants, y),
        (ts[0], ts[-1]),
        y0,
        t_eval=ts,
        method="DOP853",
        rtol=rtol,
        atol=atol,
    )
    if not solution.success:
        raise RuntimeError(f"SciPy could not solve the {system} from {y0}: {solution.message}")
    return solution.y.T


@dataclasses.dataclass(frozen=True)
class HamiltonianData:
    """One system's data set.

    `ts` (T,): the observation times of every trajectory; `splits[name]` for train, validation and
    test holds `clean` (N, T, 2), the true states; `states`, the same with noise, the models' inputs;
    `derivatives`, the true (dq/dt, dp/dt) at the clean states, the targets; and for validation and
    test `horizon` (N, R, 2), the true rollout from each initial state at `horizon_ts` (R,).
    """

    system: str
    constants: dict
    noise: float
    settings: dict
    ts: np.ndarray
    horizon_ts: np.ndarray
    splits: dict

    KIND = "hnn_data"
    ARRAYS = ("clean", "states", "derivatives", "horizon")

    def save(self, path: str | Path) -> None:
        arrays = {"ts": self.ts, "horizon_ts": self.horizon_ts}
        for split, parts in self.splits.items():
            arrays.update({f"{split}_{name}": value for name, value in parts.items()})
        metadata = {
            "kind": self.KIND,
            "system": self.system,
            "constants": self.constants,
            "noise": self.noise,
            "settings": self.settings,
        }
        save_arrays(path, arrays, metadata)

    @classmethod
    def load(cls, path: str | Path) -> "HamiltonianData":
        from .. import CorruptFile

        arrays, metadata = load_arrays(path)
        if metadata.get("kind") != cls.KIND:
            raise CorruptFile(f"{path} does not hold a Hamiltonian data set (kind {metadata.get('kind')!r})")
        splits = {
            split: {name: arrays[f"{split}_{name}"] for name in cls.ARRAYS if f"{split}_{name}" in arrays}
            for split in SPLITS
        }
        return cls(
            metadata["system"],
            metadata["constants"],
            metadata["noise"],
            metadata["settings"],
            arrays["ts"],
            arrays["horizon_ts"],
            splits,
        )

    def energy(self, y):
        """The true Hamiltonian at states y (NumPy)."""
        return hamiltonian(self.system, self.constants, y)


def _generate(system: str, constants: dict, options: dict, seed: int) -> HamiltonianData:
    """The data set of `system` (`options` checked first): each split drawn from its own stream of the
    seed, so that changing one split's size leaves the others as they were."""
    _check_generator(system, constants, options)
    ts = np.linspace(0.0, options["t1"], options["observations"])
    horizon_ts = np.linspace(0.0, options["horizon"], options["horizon_points"])
    low, high = options["energy"]
    streams = np.random.SeedSequence(seed).spawn(len(SPLITS))
    splits = {}
    for split, stream in zip(SPLITS, streams):
        rng = np.random.default_rng(stream)
        count = options["trajectories" if split == "train" else f"{split}_trajectories"]
        clean, noisy, horizon = [], [], []
        for _ in range(count):
            y0 = _on_level_set(system, constants, rng.uniform(low, high), rng.uniform(0.0, 2 * np.pi))
            path = _solve_true(system, constants, y0, ts, options["rtol"], options["atol"])
            clean.append(path)
            noisy.append(path + options["noise"] * rng.standard_normal(path.shape))
            if split in ROLLOUT_SPLITS:
                horizon.append(
                    _solve_true(system, constants, y0, horizon_ts, options["rtol"], options["atol"])
                )
        clean = np.stack(clean)
        splits[split] = {
            "clean": clean,
            "states": np.stack(noisy),
            "derivatives": true_derivative(system, constants, clean),
            **({"horizon": np.stack(horizon)} if horizon else {}),
        }
    return HamiltonianData(system, constants, float(options["noise"]), options, ts, horizon_ts, splits)


def spring(
    *,
    trajectories: int = 25,
    validation_trajectories: int = 10,
    test_trajectories: int = 25,
    t1: float = 3.0,
    observations: int = OBSERVATIONS["spring"],
    noise: float = 0.1,
    energy: tuple = ENERGIES["spring"],
    horizon: float = 20.0,
    horizon_points: int = 201,
    rtol: float = 1e-10,
    atol: float = 1e-12,
    mass: float = CONSTANTS["spring"]["mass"],
    stiffness: float = CONSTANTS["spring"]["stiffness"],
    seed: int = 0,
) -> HamiltonianData:
    """The ideal mass-spring, H = k q^2 / 2 + p^2 / (2 m): `trajectories` (train), validation and test
    trajectories of `observations` times on [0, t1], each from a state of energy uniform in `energy`,
    its states observed with Gaussian `noise`; true rollouts to `horizon` at `horizon_points` times from
    the validation and test initial states. SciPy (DOP853) at `rtol`, `atol`."""
    options = {k: v for k, v in locals().items() if k not in ("mass", "stiffness", "seed")}
    return _generate("spring", {"mass": mass, "stiffness": stiffness}, options, seed)


def pendulum(
    *,
    trajectories: int = 25,
    validation_trajectories: int = 10,
    test_trajectories: int = 25,
    t1: float = 3.0,
    observations: int = OBSERVATIONS["pendulum"],
    noise: float = 0.1,
    energy: tuple = ENERGIES["pendulum"],
    horizon: float = 20.0,
    horizon_points: int = 201,
    rtol: float = 1e-10,
    atol: float = 1e-12,
    mass: float = CONSTANTS["pendulum"]["mass"],
    gravity: float = CONSTANTS["pendulum"]["gravity"],
    length: float = CONSTANTS["pendulum"]["length"],
    seed: int = 0,
) -> HamiltonianData:
    """The ideal pendulum, H = 2 m g l (1 - cos q) + l^2 p^2 / (2 m) (the paper's Equation 5); the
    options as `spring`'s."""
    constants = {"mass": mass, "gravity": gravity, "length": length}
    options = {k: v for k, v in locals().items() if k not in (*constants, "constants", "seed")}
    return _generate("pendulum", constants, options, seed)


SYSTEMS = {"spring": spring, "pendulum": pendulum}


def check_system_options(system: str, options: dict) -> None:
    """A ValueError naming the problem if `options` cannot make `system`'s data (nothing is generated)."""
    import inspect

    if system not in SYSTEMS:
        raise ValueError(f"unknown system {system!r}; choose one of {', '.join(SYSTEMS)}")
    parameters = inspect.signature(SYSTEMS[system]).parameters
    allowed = sorted(set(parameters) - {"seed"})
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"{system} takes no option {', '.join(unknown)}; it takes {', '.join(allowed)}")
    values = {name: parameter.default for name, parameter in parameters.items() if name != "seed"}
    values.update(options)
    constants = {name: values.pop(name) for name in CONSTANTS[system]}
    _check_generator(system, constants, values)


# --- settings ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class DataSettings(GeneratedData):
    """A system's data: the generator (`system`), its options (`data`) and the seed."""

    seed: int = option(0, minimum=0)
    system: str = option("spring", choices=SYSTEMS)

    def check_options(self) -> None:
        check_system_options(self.system, self.data)


@dataclasses.dataclass(frozen=True)
class ModelSettings(Section):
    """`kind`: baseline (the field is the MLP), hnn (the MLP is H(q, p)) or separable (H = T(p) + V(q))."""

    name: str = option("hnn")
    kind: str = option("hnn", choices=MODEL_KINDS)


@dataclasses.dataclass(frozen=True)
class RolloutSettings(Section):
    """How a trained model is rolled out from the validation and test initial states (float64):
    dopri5 at `rtol`, `atol` (at most `max_steps`), and semi-implicit Euler with step `dt` where the
    Hamiltonian is separable."""

    rtol: float = option(1e-9, above=0)
    atol: float = option(1e-9, above=0)
    max_steps: int = option(100_000, minimum=1)
    dt: float = option(0.001, above=0)

    def solve_options(self) -> dict:
        return {
            "solver": "dopri5",
            "rtol": self.rtol,
            "atol": self.atol,
            "max_steps": self.max_steps,
            "throw": False,
        }


@dataclasses.dataclass(frozen=True)
class Settings(DataSettings):
    """One model on one system: its data, the model, the MLP's shape, training, rollouts."""

    model: ModelSettings = option(ModelSettings())
    field: FieldSettings = option(FieldSettings(width=200, depth=2, activation="tanh"))
    train: StepTrainSettings = option(
        StepTrainSettings(steps=1500, learning_rate=1e-3, weight_decay=1e-4, count_every=500)
    )
    rollout: RolloutSettings = option(RolloutSettings())
    validate_every: int = option(100, minimum=1)
    """Steps between evaluations of the derivative MSE on the validation trajectories (validation.jsonl)."""

    def validate(self, where: str) -> "Settings":
        super().validate(where)
        if self.field.time_input:
            raise SettingsError(f"{where}.field.time_input: the systems are autonomous; set it false")
        return self

    def model_spec(self, dim: int = 2) -> dict:
        """What `pyode.models.build_model("mlp_field", ...)` takes to build this run's MLP for a state of
        `dim` = 2 n coordinates (q, p)."""
        check_even(dim)
        sizes = {"baseline": (dim, dim), "hnn": (dim, 1), "separable": (dim // 2, 2)}
        inputs, outputs = sizes[self.model.kind]
        return {"dim": inputs, "out_dim": outputs, **self.field.to_dict()}


def resolve(changes: dict, where: str = "settings") -> Settings:
    """The defaults overlaid with `changes`, checked."""
    return Settings().overlay(changes, where)


def plan(section: dict, *, seed: int) -> dict[str, Settings]:
    """Every run of the config's `hnn` section, by name `system/model`, resolved and checked.

    `systems` entries name a system and change its runs (`data`, `field`, `train`, `rollout`);
    `models` entries name a model and its `kind`, and may change `field` and `train`.
    """
    section_keys(section, "hnn", required=("systems", "models"))
    systems = named_entries(section, "systems", "hnn")
    models = named_entries(section, "models", "hnn")
    runs = {}
    for system in systems:
        common = {k: v for k, v in system.items() if k not in ("name", "field", "train")}
        for model in models:
            name = f"{system['name']}/{model['name']}"
            changes = {
                "seed": seed,
                "system": system["name"],
                **common,
                "model": {k: v for k, v in model.items() if k not in ("field", "train")},
                **{
                    key: {
                        **changes_at(system, key, f"hnn.systems[{system['name']}]"),
                        **changes_at(model, key, f"hnn.models[{model['name']}]"),
                    }
                    for key in ("field", "train")
                },
            }
            runs[name] = resolve(changes, f"hnn[{name}]")
    return runs


def resolve_data(changes: dict, where: str = "settings") -> DataSettings:
    """The data stage's defaults overlaid with `changes` (a run's other settings ignored), checked."""
    return DataSettings().overlay(data_part(changes, Settings, DataSettings), where)


def make_data(settings: DataSettings, out: str | Path) -> HamiltonianData:
    """The system's data set, written to `out`."""
    data = SYSTEMS[settings.system](**settings.data, seed=settings.seed)
    data.save(out)
    return data


# --- the models ------------------------------------------------------------------------------------


def check_even(dim: int) -> None:
    """A ValueError unless `dim` can be split into positions and momenta (q, p) of equal size."""
    if dim < 2 or dim % 2:
        raise ValueError(
            f"a Hamiltonian model needs a state of positions and momenta (q, p) of equal size, so an even "
            f"dimension; got {dim}"
        )


def symplectic_gradient(energy, y: "jax.Array") -> "jax.Array":
    """(dH/dp, -dH/dq) of a scalar function `energy`(y (..., 2n)) -> (...) at states y: the field whose
    flow keeps `energy` constant. Each state's value depends on that state alone, so the gradient of
    the sum is every state's gradient."""
    import jax
    import jax.numpy as jnp

    check_even(y.shape[-1])
    half = y.shape[-1] // 2
    gradient = jax.grad(lambda z: jnp.sum(energy(z)))(y)
    return jnp.concatenate([gradient[..., half:], -gradient[..., :half]], axis=-1)


def learnt_hamiltonian(kind: str, network, y: "jax.Array") -> "jax.Array":
    """H_theta at states y (..., 2n): the MLP's one output (`hnn`), or V(q) + T(p) from the two outputs
    of the MLP of one coordinate block (`separable`)."""
    if kind == "hnn":
        return network(0.0, y)[..., 0]
    if kind == "separable":
        half = y.shape[-1] // 2
        return network(0.0, y[..., :half])[..., 0] + network(0.0, y[..., half:])[..., 1]
    raise ValueError(f"a {kind!r} model has no Hamiltonian; the Hamiltonian kinds are hnn, separable")


def time_derivative(kind: str, network, y: "jax.Array") -> "jax.Array":
    """The model's (dq/dt, dp/dt) at states y (..., 2n)."""
    if kind == "baseline":
        return network(0.0, y)
    return symplectic_gradient(functools.partial(learnt_hamiltonian, kind, network), y)


def derivative_loss(kind: str, network, batch) -> tuple["jax.Array", dict]:
    """Mean squared error of the predicted time derivatives, the paper's L2 loss (its Equation 3, as
    its code averages it); `batch` = (states (M, 2n), true derivatives (M, 2n))."""
    import jax.numpy as jnp

    states, derivatives = batch
    mse = jnp.mean((time_derivative(kind, network, states) - derivatives) ** 2)
    return mse, {"rmse": jnp.sqrt(mse)}


def _batch(data: HamiltonianData, split: str) -> tuple:
    """(states, derivatives) of every observation of a split's trajectories, float32, as rows."""
    import jax.numpy as jnp

    part = data.splits[split]
    dim = part["states"].shape[-1]
    return tuple(jnp.asarray(part[name].reshape(-1, dim), DTYPE) for name in ("states", "derivatives"))


@filter_jit
def _loss_value(loss, network, batch):
    return loss(network, batch)[0]


def train(data_path: str | Path, settings: Settings, out_dir: str | Path, *, progress: bool = True):
    """Train the run's model on the training trajectories at `data_path` (full batch: every observed
    state of every trajectory); write model.npz, history.jsonl and validation.jsonl (the derivative MSE
    on the validation trajectories every `validate_every` steps) to `out_dir`."""
    data = HamiltonianData.load(data_path)
    check_data_is_for(data_path, data.system, settings.system, "data")
    batch, validation = _batch(data, "train"), _batch(data, "validation")
    dim = batch[0].shape[-1]
    loss = functools.partial(derivative_loss, settings.model.kind)
    last = settings.train.steps

    def observe(step: int, network) -> dict | None:
        if step % settings.validate_every == 0 or step == last:
            return {"step": step, "validation_derivative_mse": float(_loss_value(loss, network, validation))}
        return None

    def save_validation(state, trained) -> None:
        write_history(Path(out_dir) / "validation.jsonl", state.observations)

    train_new_model(
        loss,
        lambda step: batch,
        settings,
        out_dir,
        experiment=EXPERIMENT,
        kind="mlp_field",
        spec=settings.model_spec(dim),
        description=f"train {settings.system}/{settings.model.name}",
        progress=progress,
        data_path=data_path,
        observe=observe,
        extra_outputs=save_validation,
    )


# --- evaluation ------------------------------------------------------------------------------------


def _float64(tree):
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    return jax.tree_util.tree_map(lambda a: a.astype(jnp.float64) if eqx.is_inexact_array(a) else a, tree)


@filter_jit
def _derivatives(network, kind, states):
    return time_derivative(kind, network, states)


@filter_jit
def _energies(network, kind, states):
    return learnt_hamiltonian(kind, network, states)


def _model_field(kind, t, y, network):
    return time_derivative(kind, network, y)


def _true_field(system, constants, t, y, args=None):
    import jax.numpy as jnp

    return true_derivative(system, dict(constants), y, jnp)


@filter_jit
def _dopri5(field, args, y0, ts, options):
    from .. import solve

    solution = solve(field, y0, ts, args=args, **options)
    return solution.ys, solution.status, solution.nfe_forward


def rollout_dopri5(field, args, y0: np.ndarray, ts: np.ndarray, options: dict) -> tuple[np.ndarray, int]:
    """dopri5 (`pyode.solve`) of `field(t, y, args)` from every state of y0 (N, 2n) at ts, float64:
    the states (N, T, 2n) and the field's evaluations."""
    import jax.numpy as jnp

    from .. import status_message

    ys, status, nfe = _dopri5(field, args, jnp.asarray(y0), jnp.asarray(ts), options)
    if int(status):
        raise RuntimeError(f"the rollout failed: {status_message(int(status))}")
    return np.swapaxes(np.asarray(ys), 0, 1), int(nfe)


@filter_jit
def _semi_implicit_euler(energy, args, y0, ts, dt, steps):
    import diffrax
    import jax
    import jax.numpy as jnp

    half = y0.shape[-1] // 2

    def dq(t, p, args):  # dH/dp depends on p alone when H = T(p) + V(q): evaluated at q = 0
        return jax.grad(lambda p: jnp.sum(energy(jnp.concatenate([jnp.zeros_like(p), p], -1), args)))(p)

    def dp(t, q, args):
        return -jax.grad(lambda q: jnp.sum(energy(jnp.concatenate([q, jnp.zeros_like(q)], -1), args)))(q)

    solution = diffrax.diffeqsolve(
        (diffrax.ODETerm(dq), diffrax.ODETerm(dp)),
        diffrax.SemiImplicitEuler(),
        ts[0],
        ts[-1],
        dt,
        (y0[..., :half], y0[..., half:]),
        args=args,
        saveat=diffrax.SaveAt(ts=ts),
        stepsize_controller=diffrax.ConstantStepSize(),
        max_steps=steps,
    )
    return jnp.concatenate(solution.ys, axis=-1)


def rollout_semi_implicit_euler(energy, args, y0: np.ndarray, ts: np.ndarray, dt: float) -> np.ndarray:
    """Diffrax's semi-implicit Euler (symplectic, first order, fixed step `dt`) for the separable
    Hamiltonian `energy(y, args)` = T(p) + V(q) from every state of y0 (N, 2n) at ts, float64: each
    step q += dt T'(p), then p -= dt V'(q) with the new q. On a Hamiltonian that is not separable it
    would integrate the wrong equations; only separable ones are given to it. States (N, T, 2n)."""
    import jax.numpy as jnp

    steps = int(math.ceil((ts[-1] - ts[0]) / dt * (1 + 1e-9))) + 1
    budget = max(2**14, 2 ** math.ceil(math.log2(steps)))  # a few budgets, so a few compilations
    ys = _semi_implicit_euler(energy, args, jnp.asarray(y0), jnp.asarray(ts), jnp.asarray(dt), budget)
    return np.swapaxes(np.asarray(ys), 0, 1)


def _separable_energy(y, network):
    return learnt_hamiltonian("separable", network, y)


def _true_energy(system, constants, y, args):
    import jax.numpy as jnp

    return hamiltonian(system, dict(constants), y, jnp)


def _mean_and_error(per_trajectory: np.ndarray) -> tuple[float, float]:
    """The mean over trajectories and its standard error (sd / sqrt(n); 0 for one trajectory)."""
    values = np.asarray(per_trajectory, np.float64)
    error = float(np.std(values, ddof=1) / np.sqrt(len(values))) if len(values) > 1 else 0.0
    return float(np.mean(values)), error


def rollout_errors(data: HamiltonianData, split: str, predicted: np.ndarray) -> dict[str, float]:
    """Trajectory MSE, energy MSE (the true H along the rollout against its value on the true rollout,
    which keeps it), their standard errors over trajectories, and the mean |H(x(T)) - H(x(0))| at the
    horizon, of rollouts `predicted` (N, R, 2) from `split`'s initial states."""
    truth = data.splits[split]["horizon"]
    trajectory = np.mean((predicted - truth) ** 2, axis=(1, 2))
    energy = np.mean((data.energy(predicted) - data.energy(truth)) ** 2, axis=1)
    metrics = {}
    metrics["trajectory_mse"], metrics["trajectory_mse_se"] = _mean_and_error(trajectory)
    metrics["energy_mse"], metrics["energy_mse_se"] = _mean_and_error(energy)
    metrics["final_energy_error"] = float(
        np.mean(np.abs(data.energy(predicted[:, -1]) - data.energy(truth[:, 0])))
    )
    return metrics


def derivative_errors(data: HamiltonianData, kind: str, network) -> dict[str, float]:
    """Mean squared error of the predicted time derivatives at the noisy states of every split, and on
    test its standard error over trajectories."""
    import jax.numpy as jnp

    metrics = {}
    states = np.concatenate([data.splits[split]["states"] for split in SPLITS])  # one compilation
    predictions = np.asarray(_derivatives(network, kind, jnp.asarray(states)))
    starts = np.cumsum([0] + [len(data.splits[split]["states"]) for split in SPLITS])
    for index, split in enumerate(SPLITS):
        part = data.splits[split]
        predicted = predictions[starts[index] : starts[index + 1]]
        per_trajectory = np.mean((predicted - part["derivatives"]) ** 2, axis=(1, 2))
        mean, error = _mean_and_error(per_trajectory)
        metrics[f"{split}_derivative_mse"] = mean
        if split == "test":
            metrics["test_derivative_mse_se"] = error
    return metrics


def rollout_all(data: HamiltonianData, kind: str, network, rollout: RolloutSettings) -> dict:
    """Every rollout split's initial states rolled out by the model in one batch (dopri5; semi-implicit
    Euler too when separable): {(split, integrator): states (N, R, 2)} and the dopri5 evaluations."""
    y0 = np.concatenate([data.splits[split]["horizon"][:, 0] for split in ROLLOUT_SPLITS])
    starts = np.cumsum([0] + [len(data.splits[split]["horizon"]) for split in ROLLOUT_SPLITS])
    together = {}
    together["dopri5"], evaluations = rollout_dopri5(
        functools.partial(_model_field, kind), network, y0, data.horizon_ts, rollout.solve_options()
    )
    if kind in SEPARABLE_KINDS:
        together["semi_implicit_euler"] = rollout_semi_implicit_euler(
            _separable_energy, network, y0, data.horizon_ts, rollout.dt
        )
    states = {
        (split, integrator): path[starts[index] : starts[index + 1]]
        for integrator, path in together.items()
        for index, split in enumerate(ROLLOUT_SPLITS)
    }
    return {"states": states, "nfe": evaluations}


def truth_rollouts(data: HamiltonianData, rollout: RolloutSettings) -> dict:
    """The true system rolled out by the same integrators (dopri5, semi-implicit Euler at `dt`) from the
    test initial states: how much of a model's error the integrator alone would make."""
    constants = tuple(sorted(data.constants.items()))
    y0 = data.splits["test"]["horizon"][:, 0]
    dopri5, _ = rollout_dopri5(
        functools.partial(_true_field, data.system, constants),
        None,
        y0,
        data.horizon_ts,
        rollout.solve_options(),
    )
    euler = rollout_semi_implicit_euler(
        functools.partial(_true_energy, data.system, constants), None, y0, data.horizon_ts, rollout.dt
    )
    return {"dopri5": dopri5, "semi_implicit_euler": euler}


def evaluate_model(data: HamiltonianData, kind: str, network, rollout: RolloutSettings) -> tuple[dict, dict]:
    """Metrics of one trained model (float64; see `UNITS`) and its rollouts (`rollout_all`)."""
    import jax.numpy as jnp

    from ..models import parameter_count

    metrics = {"parameters": parameter_count(network), **derivative_errors(data, kind, network)}
    rollouts = rollout_all(data, kind, network, rollout)
    for (split, integrator), predicted in rollouts["states"].items():
        suffix = "" if integrator == "dopri5" else "_semi_implicit_euler"
        prefix = "test" if split == "test" else "validation"
        for name, value in rollout_errors(data, split, predicted).items():
            metrics[f"{prefix}_{name}{suffix}"] = value
    metrics["rollout_nfe"] = rollouts["nfe"]
    if kind != "baseline":
        path = rollouts["states"]["test", "dopri5"]
        learnt = np.asarray(_energies(network, kind, jnp.asarray(path)))
        metrics["learnt_energy_drift"] = float(np.mean(np.max(np.abs(learnt - learnt[:, :1]), axis=1)))
    return metrics, rollouts


UNITS = {
    **HISTORY_UNITS,
    "parameters": "parameters",
    **{f"{split}_derivative_mse": "(state units / time)^2" for split in SPLITS},
    "test_derivative_mse_se": "(state units / time)^2",
    **{
        f"{split}_{name}{suffix}": unit
        for split in ROLLOUT_SPLITS
        for suffix in ("", "_semi_implicit_euler")
        for name, unit in (
            ("trajectory_mse", "state units^2"),
            ("trajectory_mse_se", "state units^2"),
            ("energy_mse", "energy^2"),
            ("energy_mse_se", "energy^2"),
            ("final_energy_error", "energy"),
        )
    },
    "rollout_nfe": "evaluations (one dopri5 solve of the validation and test initial states)",
    "learnt_energy_drift": "learnt energy",
    "best_validation_step": "steps",
}


def _grid(data: HamiltonianData, points: int = 17) -> tuple[np.ndarray, np.ndarray]:
    """A square grid over the training states and the test rollouts, with a margin."""
    states = np.concatenate(
        [data.splits["train"]["states"].reshape(-1, 2), data.splits["test"]["horizon"].reshape(-1, 2)]
    )
    reach = 1.1 * np.max(np.abs(states), axis=0)
    return tuple(
        np.meshgrid(np.linspace(-reach[0], reach[0], points), np.linspace(-reach[1], reach[1], points))
    )


def _figures(data, models, rollouts, truth, histories, validations, out_dir: Path) -> None:
    """energy.png, phase.png and loss.png of one system's models."""
    import jax.numpy as jnp

    from .. import plots

    title = {"spring": "Ideal mass-spring", "pendulum": "Ideal pendulum"}[data.system]
    test = data.splits["test"]["horizon"]
    energies = {"truth, dopri5": data.energy(truth["dopri5"])}
    energies["truth, semi-implicit Euler"] = data.energy(truth["semi_implicit_euler"])
    for label in models:
        for (split, integrator), states in rollouts[label]["states"].items():
            if split == "test":
                name = "dopri5" if integrator == "dopri5" else "semi-implicit Euler"
                energies[f"{label}, {name}"] = data.energy(states)
    plots.hnn_energy(
        data.horizon_ts,
        energies,
        data.energy(test[:, 0]),
        out_dir / "energy.png",
        title=f"{title}: test rollouts",
    )
    q, p = _grid(data)
    grid_states = np.stack([q, p], axis=-1)
    shown = min(3, len(test))
    true_field = true_derivative(data.system, data.constants, grid_states)
    panels = {
        "data and true field": {
            "field": (true_field[..., 0], true_field[..., 1]),
            "levels": data.energy(grid_states),
        }
    }
    for label, (kind, network) in models.items():
        field = np.asarray(_derivatives(network, kind, jnp.asarray(grid_states)))
        levels = (
            None if kind == "baseline" else np.asarray(_energies(network, kind, jnp.asarray(grid_states)))
        )
        panels[label] = {
            "field": (field[..., 0], field[..., 1]),
            "levels": levels,
            "paths": rollouts[label]["states"]["test", "dopri5"][:shown],
        }
    plots.hnn_phase(
        (q, p),
        panels,
        test[:shown],
        data.splits["train"]["states"].reshape(-1, 2),
        out_dir / "phase.png",
        title=f"{title}: fields, level sets of H and rollouts to t = {data.horizon_ts[-1]:g} (dopri5)",
    )
    plots.hnn_training(histories, validations, out_dir / "loss.png", title=f"Training on the {title.lower()}")


def read_validation(path: str | Path) -> list[dict]:
    """The records of a validation.jsonl (step, validation_derivative_mse); a CorruptFile naming the file
    if it holds none."""
    import json

    from .. import CorruptFile

    try:
        records = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    except json.JSONDecodeError as error:
        raise CorruptFile(f"{path} is not JSON lines ({error.msg})") from None
    if not records or not all(isinstance(r, dict) and "validation_derivative_mse" in r for r in records):
        raise CorruptFile(f"{path} holds no validation records (step, validation_derivative_mse)")
    return records


def evaluate(data_path: str | Path, run_dirs: list[str | Path], out_dir: str | Path) -> dict:
    """Evaluate the models in `run_dirs` on one system (float64); write metrics.json, energy.png,
    phase.png and loss.png to `out_dir`."""
    import jax

    from ..models import load_model

    jax.config.update("jax_enable_x64", True)  # rollouts compared across integrators: float64
    out_dir = Path(out_dir)
    data = HamiltonianData.load(data_path)
    metrics, settings, models, rollouts, histories, validations = {}, {}, {}, {}, {}, {}
    rollout = None
    for run_dir in map(Path, run_dirs):
        network, metadata = load_model(run_dir / "model.npz")
        run_settings = resolve(metadata["settings"])
        check_data_is_for(data_path, data.system, run_settings.system, "data")
        label, kind = run_settings.model.name, run_settings.model.kind
        network = _float64(network)
        rollout = rollout or run_settings.rollout
        history = read_history(run_dir / "history.jsonl")
        validations[label] = read_validation(run_dir / "validation.jsonl")
        run_metrics, rollouts[label] = evaluate_model(data, kind, network, run_settings.rollout)
        run_metrics.update(summarise_history(history))
        best = min(validations[label], key=lambda record: record["validation_derivative_mse"])
        run_metrics["best_validation_step"] = best["step"]
        name = f"{data.system}/{label}"
        metrics[name], settings[name] = run_metrics, metadata["settings"]
        models[label], histories[label] = (kind, network), history
    truth = truth_rollouts(data, rollout or RolloutSettings())
    truth_metrics = {integrator: rollout_errors(data, "test", states) for integrator, states in truth.items()}
    record = write_metrics(
        out_dir / "metrics.json",
        experiment=EXPERIMENT,
        runs=metrics,
        settings=settings,
        units=UNITS,
        details={
            "system": data.system,
            "constants": data.constants,
            "noise": data.noise,
            "data_settings": data.settings,
            "truth_rollouts": truth_metrics,
            "validation_curves": validations,
            "horizon": float(data.horizon_ts[-1]),
        },
        dtype=f"data {data.ts.dtype}; training float32; evaluation and rollouts float64",
    )
    _figures(data, models, rollouts, truth, histories, validations, out_dir)
    return record


# --- across systems ---------------------------------------------------------------------------------


def summarise(records: list[dict], out: str | Path) -> str:
    """summary.md: every system's models on the paper's measures, beside the paper's Table 1."""
    lines = [
        "# Hamiltonian neural networks against a baseline neural ODE field (test set)",
        "",
        "Means over test trajectories, +- their standard error. Rollouts from the test trajectories' true",
        "initial states to the horizon, float64; the energy MSE compares the true Hamiltonian along the",
        "rollout with its value on the true rollout. Table 1: Greydanus et al. (2019), in units of 1e-3, on",
        "their code's Hamiltonians (docs/hnn.md: not the same scale as these).",
        "",
        "| system | model | parameters | test derivative MSE | trajectory MSE, dopri5 | energy MSE, dopri5 "
        "| energy MSE, semi-implicit Euler | training (s) | Table 1 test loss | Table 1 energy |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for record in records:
        system = record["details"]["system"]
        for entry in record["runs"]:
            model = entry["run"].split("/", 1)[1]
            kind = entry["settings"]["model"]["kind"]
            m = {k: (math.nan if v is None else v) for k, v in entry["metrics"].items()}
            paper = PAPER_TABLE_1.get(system, {}).get(kind)
            loss, energy = (
                (f"{paper[0]:g} +- {paper[1]:g}", f"{paper[2]:g} +- {paper[3]:g}") if paper else ("", "")
            )
            euler = "n/a (not separable)"
            if "test_energy_mse_semi_implicit_euler" in m:
                mean, error = (
                    m["test_energy_mse_semi_implicit_euler"],
                    m["test_energy_mse_se_semi_implicit_euler"],
                )
                euler = f"{mean:.3g} +- {error:.2g}"
            lines.append(
                f"| {system} | {model} | {m['parameters']} "
                f"| {m['test_derivative_mse']:.4g} +- {m['test_derivative_mse_se']:.2g} "
                f"| {m['test_trajectory_mse']:.3g} +- {m['test_trajectory_mse_se']:.2g} "
                f"| {m['test_energy_mse']:.3g} +- {m['test_energy_mse_se']:.2g} | {euler} "
                f"| {m['train_seconds']:.1f} | {loss} | {energy} |"
            )
        truth = record["details"]["truth_rollouts"]
        dopri5, euler = truth["dopri5"], truth["semi_implicit_euler"]
        lines.append(
            f"| {system} | truth | | | {dopri5['trajectory_mse']:.2g} | {dopri5['energy_mse']:.2g} "
            f"| {euler['energy_mse']:.2g} | | | |"
        )
    text = "\n".join(lines) + "\n"
    atomic_write(out, text)
    return text


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
    print(summarise([read_json(path) for path in args.metrics], args.out), end="")


DECLARATION = Experiment(
    EXPERIMENT,
    commands=(
        data_command(EXPERIMENT, make_data, resolve_data, "noisy trajectories of a Hamiltonian system"),
        train_command(
            EXPERIMENT,
            train,
            resolve,
            "train an HNN or the baseline field on a system's time derivatives",
            out="run folder (model.npz, history.jsonl)",
        ),
        evaluate_runs_command(EXPERIMENT, evaluate, "metrics, rollouts and figures of a system's models"),
        Command(
            "hnn-summary",
            _summary_command,
            "a table of every system's models beside the paper's Table 1",
            (argument("metrics", nargs="+", help="metrics.json files written by hnn-evaluate"),),
            out="summary.md to write",
        ),
    ),
)
