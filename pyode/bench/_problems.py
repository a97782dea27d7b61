"""Benchmark problems: everything a library needs to run one training step, in NumPy.

A `Problem` fixes the vector field (an MLP, weights in `MLPField`'s layout), the initial
states, the save times, the loss, the solver and its tolerances (or fixed steps) and the
dtype. Every library builds its own objects from these same arrays, so that they solve
the same problem with the same weights.
"""

from dataclasses import dataclass, replace

import numpy as np

PROBLEMS = ("spiral", "sequence")
LOSSES = ("bce", "mse")


@dataclass(frozen=True)
class Problem:
    """One training step's problem.

    - loss `bce`: logits = y(ts[-1]) @ readout_weight + readout_bias, mean sigmoid
      cross-entropy against `labels` (batch,);
    - loss `mse`: mean over ts[1:], the batch and the state of (y(t) - targets)^2, with
      `targets` of shape (time, batch, dim).

    Adaptive with `rtol`/`atol`, or fixed with `steps` equal steps over [ts[0], ts[-1]].
    """

    name: str
    weights: list[tuple[np.ndarray, np.ndarray]]
    activation: str
    time_input: bool
    y0: np.ndarray
    ts: np.ndarray
    loss: str
    solver: str
    rtol: float | None = None
    atol: float | None = None
    steps: int | None = None
    labels: np.ndarray | None = None
    readout_weight: np.ndarray | None = None
    readout_bias: float = 0.0
    targets: np.ndarray | None = None

    def __post_init__(self):
        if self.loss not in LOSSES:
            raise ValueError(f"unknown loss {self.loss!r}; choose one of {LOSSES}")
        if (self.rtol is None) == (self.steps is None):
            raise ValueError("give either tolerances (rtol, atol) or fixed steps")
        if self.loss == "bce" and (self.labels is None or self.readout_weight is None):
            raise ValueError("a bce problem needs labels and a readout")
        if self.loss == "mse" and (
            self.targets is None or self.targets.shape != (len(self.ts),) + self.y0.shape
        ):
            raise ValueError("an mse problem needs targets of shape (time, batch, dim)")

    @property
    def dtype(self) -> str:
        return str(self.y0.dtype)

    @property
    def batch(self) -> int:
        return self.y0.shape[0]

    @property
    def width(self) -> int:
        return self.weights[0][0].shape[0]

    def astype(self, dtype: str) -> "Problem":
        """The same problem with every array in `dtype`."""

        def cast(a):
            return None if a is None else np.asarray(a).astype(dtype)

        return replace(
            self,
            weights=[(cast(w), cast(b)) for w, b in self.weights],
            y0=cast(self.y0),
            ts=cast(self.ts),
            labels=cast(self.labels),
            readout_weight=cast(self.readout_weight),
            targets=cast(self.targets),
        )

    def case(self):
        """The problem's field, states and times as a `Case` (for `pyode.reference`'s adapters)."""
        from ..reference import Case

        params = {}
        for k, (w, b) in enumerate(self.weights):
            params[f"weight_{k}"], params[f"bias_{k}"] = w, b
        return Case(
            name=self.name,
            field={
                "kind": "mlp",
                "sizes": self.sizes,
                "activation": self.activation,
                "time_input": self.time_input,
            },
            y0=self.y0,
            ts=self.ts,
            cotangent=np.zeros((len(self.ts),) + self.y0.shape, self.dtype),
            params=params,
            rtol=self.rtol or 0.0,
            atol=self.atol or 0.0,
            solvers={"pyode": self.solver, "torchdiffeq": self.solver},
            dtype=self.dtype,
        )

    @property
    def sizes(self) -> list[int]:
        """Input size of the field's first layer, then every layer's output size."""
        return [self.weights[0][0].shape[1]] + [w.shape[0] for w, _ in self.weights]

    def describe(self) -> dict:
        """The problem's shape and options, for the results file."""
        return {
            "name": self.name,
            "sizes": self.sizes,
            "activation": self.activation,
            "time_input": self.time_input,
            "batch": self.batch,
            "save_times": len(self.ts),
            "t_span": [float(self.ts[0]), float(self.ts[-1])],
            "loss": self.loss,
            "solver": self.solver,
            "rtol": self.rtol,
            "atol": self.atol,
            "steps": self.steps,
            "dtype": self.dtype,
        }


def spiral_problem(
    settings: dict,
    *,
    batch: int | None = None,
    width: int | None = None,
    steps: int | None = None,
    t1: float | None = None,
    dtype: str = "float32",
) -> Problem:
    """The spiral classifier's training step: its initial weights and one batch of its spiral data.

    `settings` (the `spiral` entry of a problems file; docs/bench.md) give `seed`, the spiral
    generator's options `data`, the classifier's `model` spec (`pyode.models.build_model`
    kind `classifier`) and `batch_size`. `batch`, `width`, fixed `steps` (rk4) and `t1`
    override them for the scaling studies.
    """
    import jax

    from ..data import make_split
    from ..models import build_model

    spec = dict(settings["model"])
    if spec.get("augment"):
        raise ValueError("the benchmark's classifier has no augmentation")
    if width is not None:
        spec["width"] = width
    if t1 is not None:
        spec["t1"] = t1
    seed, batch = settings["seed"], batch or settings["batch_size"]
    with jax.enable_x64(False):  # the same initial weights whatever the process's precision
        model = build_model("classifier", spec, key=jax.random.PRNGKey(seed))
    split = make_split("spiral", seed=seed, **settings["data"])
    index = np.random.default_rng(seed).choice(len(split.x_train), batch, replace=batch > len(split.x_train))
    solve = spec["solve_options"]
    fixed = steps is not None or solve.get("steps") is not None
    problem = Problem(
        name="spiral",
        weights=[(np.asarray(w), np.asarray(b)) for w, b in model.ode.field.weights()],
        activation=spec["activation"],
        time_input=spec["time_input"],
        y0=split.x_train[index],
        ts=np.array([0.0, spec["t1"]]),
        loss="bce",
        solver="rk4" if steps is not None else solve["solver"],
        rtol=None if fixed else solve["rtol"],
        atol=None if fixed else solve["atol"],
        steps=steps if steps is not None else solve.get("steps"),
        labels=split.y_train[index],
        readout_weight=np.asarray(model.readout.weight[0]),
        readout_bias=float(model.readout.bias[0]),
    )
    return problem.astype(dtype)


def sequence_problem(settings: dict, *, points: int = 32, start: int = 0, dtype: str = "float32") -> Problem:
    """A window fit on the nn_spiral data: `points` irregular observations from observation `start`.

    `settings` (the `sequence` entry of a problems file) give `seed`, the nn_spiral generator's
    options `data`, the field's `model` spec (`mlp_field`) and the `solve` tolerances. The
    window's times are shifted to start at 0 (the field is autonomous) and its first
    observation is the initial state.
    """
    import jax

    from ..data import make_trajectories
    from ..models import build_model

    data = make_trajectories("nn_spiral", seed=settings["seed"], **settings["data"])
    ts = data.ts[0, start : start + points]
    ys = data.ys[0, start : start + points]
    if len(ts) < points:
        raise ValueError(
            f"the nn_spiral data hold {data.ts.shape[1]} observations; cannot take {points} from {start}"
        )
    spec = settings["model"]
    with jax.enable_x64(False):  # the same initial weights whatever the process's precision
        field = build_model("mlp_field", spec, key=jax.random.PRNGKey(settings["seed"]))
    solve = settings["solve"]
    problem = Problem(
        name="sequence",
        weights=[(np.asarray(w), np.asarray(b)) for w, b in field.weights()],
        activation=spec["activation"],
        time_input=False,
        y0=ys[:1],
        ts=ts - ts[0],
        loss="mse",
        solver=solve["solver"],
        rtol=solve["rtol"],
        atol=solve["atol"],
        targets=ys[:, None, :],
    )
    return problem.astype(dtype)


def make_problem(name: str, *, dtype: str, settings: dict) -> Problem:
    """The problem called `name` (spiral or sequence) in `dtype`, from a problems file's entries."""
    if name not in PROBLEMS:
        raise ValueError(f"unknown problem {name!r}; choose one of {PROBLEMS}")
    if name not in settings:
        raise ValueError(f"the problems file has no {name!r} entry (it has {sorted(settings)})")
    if name == "spiral":
        return spiral_problem(settings["spiral"], dtype=dtype)
    return sequence_problem(settings["sequence"], dtype=dtype)
