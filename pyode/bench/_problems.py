"""The benchmark's problems (`pyode.reference.Problem`), built from the experiments' settings.

`spiral_problem` and `sequence_problem` take the entries of a problems file (docs/bench.md), so that
the benchmark times the field, data and solver the experiments train.
"""

import numpy as np

from ..reference import Problem

PROBLEMS = ("spiral", "sequence")


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
