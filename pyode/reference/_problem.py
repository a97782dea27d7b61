"""Benchmark problems: everything a library needs to run one training step, in NumPy.

A `Problem` fixes the vector field (an MLP, weights in `MLPField`'s layout), the initial
states, the save times, the loss, the solver and its tolerances (or fixed steps) and the
dtype. Every library builds its own objects from these same arrays (`AbstractLibrary.training_step`),
so that they solve the same problem with the same weights; `pyode.bench` builds them from the
experiments' settings.
"""

from dataclasses import dataclass, replace

import numpy as np

from ._case import Case

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

    def step_options(self) -> dict:
        """How the solver steps: `rtol` and `atol`, or fixed `steps`."""
        return {"rtol": self.rtol, "atol": self.atol} if self.steps is None else {"steps": self.steps}

    def case(self) -> Case:
        """The problem's field, states and times as a `Case` (for `pyode.reference`'s adapters)."""
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
