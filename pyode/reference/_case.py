"""Cross-validation cases: everything a backend needs, in a language-neutral file pair.

`<name>.npz` holds the arrays, `<name>.json` the metadata (docs/crossval.md has the layout):

- `y0` (batch, dim), `ts` (time,), `cotangent` (time, batch, dim): loss = sum(cotangent * ys);
- an `mlp` field: `weight_k` (out, in) and `bias_k` (out,) for each layer k = 0, 1, ...;
  a `sonode` field (y = (x, v), dy/dt = (v, MLP(y))): the same arrays for its MLP, which maps
  the whole state (+ t) to the acceleration (half the state);
  a `vdp` field: `theta` = [mu];
- a `cnf` field: the same MLP on the first dim - 1 coordinates z of the state [z, l], whose
  dynamics are dz/dt = f(t, z), dl/dt = -tr(df/dz) (a continuous normalising flow, exact trace).
"""

import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

FIELD_KINDS = ("mlp", "vdp", "cnf", "sonode")
MLP_KINDS = ("mlp", "cnf", "sonode")
"""Field kinds whose parameters are an MLP's layers (`weight_k`, `bias_k`)."""


@dataclass(frozen=True)
class Case:
    """One cross-validation problem. `params` holds the field's arrays by their file names."""

    name: str
    field: dict
    y0: np.ndarray
    ts: np.ndarray
    cotangent: np.ndarray
    params: dict[str, np.ndarray]
    rtol: float
    atol: float
    solvers: dict[str, str]
    stiff: bool = False
    dtype: str = "float64"
    source: str = ""

    def __post_init__(self):
        if self.field.get("kind") not in FIELD_KINDS:
            raise ValueError(f"unknown field kind {self.field.get('kind')!r}; choose one of {FIELD_KINDS}")
        batch, dim = self.y0.shape
        if self.cotangent.shape != (len(self.ts), batch, dim):
            raise ValueError(f"cotangent must be (time, batch, dim) = {(len(self.ts), batch, dim)}")
        if self.field["kind"] == "vdp" and (dim != 2 or np.shape(self.params.get("theta")) != (1,)):
            raise ValueError("a vdp case has states of dimension 2 and theta = [mu]")
        if self.field["kind"] in MLP_KINDS:
            if [int(n) for n in self.field["sizes"]] != self.mlp_sizes():
                raise ValueError(
                    f"weights give layer sizes {self.mlp_sizes()}, metadata {self.field['sizes']}"
                )
            kind = self.field["kind"]
            if kind == "sonode" and dim % 2:
                raise ValueError(f"a sonode state holds a position and a velocity; dim {dim} is odd")
            expected_out = {"mlp": dim, "cnf": dim - 1, "sonode": dim // 2}[kind]
            expected_in = (expected_out if kind == "cnf" else dim) + int(self.field["time_input"])
            if self.mlp_sizes()[0] != expected_in or self.mlp_sizes()[-1] != expected_out:
                raise ValueError(
                    f"a field of kind {kind} on states of dim {dim} needs MLP sizes "
                    f"[{expected_in}, ..., {expected_out}]"
                )

    @property
    def dim(self) -> int:
        return self.y0.shape[1]

    @property
    def batch(self) -> int:
        return self.y0.shape[0]

    def mlp_weights(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """[(weight (out, in), bias (out,)), ...] of an `mlp`, `cnf` or `sonode` field."""
        count = sum(1 for key in self.params if key.startswith("weight_"))
        return [(self.params[f"weight_{k}"], self.params[f"bias_{k}"]) for k in range(count)]

    def mlp_sizes(self) -> list[int]:
        weights = self.mlp_weights()
        return [weights[0][0].shape[1]] + [w.shape[0] for w, _ in weights]

    def loss(self, ys: np.ndarray) -> float:
        """The scalar loss sum(cotangent * ys) of a trajectory (time, batch, dim)."""
        return float(np.sum(self.cotangent * ys))

    def with_tolerances(self, rtol: float, atol: float) -> "Case":
        return replace(self, rtol=float(rtol), atol=float(atol))

    def save(self, path: str | Path) -> None:
        """Write `<path>` (.npz) and its .json metadata beside it."""
        path = Path(path).with_suffix(".npz")
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {"y0": self.y0, "ts": self.ts, "cotangent": self.cotangent, **self.params}
        with open(path, "wb") as f:
            np.savez(f, **{k: np.asarray(v, dtype=self.dtype) for k, v in arrays.items()})
        metadata = {
            "name": self.name,
            "field": self.field,
            "rtol": self.rtol,
            "atol": self.atol,
            "solvers": self.solvers,
            "stiff": self.stiff,
            "dtype": self.dtype,
            "source": self.source,
        }
        path.with_suffix(".json").write_text(json.dumps(metadata, indent=2) + "\n")


def load_case(path: str | Path) -> Case:
    """Read a case written by `Case.save` (give the .npz or the .json path)."""
    path = Path(path)
    metadata = json.loads(path.with_suffix(".json").read_text())
    with np.load(path.with_suffix(".npz")) as arrays:
        data = {k: arrays[k] for k in arrays.files}
    params = {k: v for k, v in data.items() if k not in ("y0", "ts", "cotangent")}
    return Case(
        name=metadata["name"],
        field=metadata["field"],
        y0=data["y0"],
        ts=data["ts"],
        cotangent=data["cotangent"],
        params=params,
        rtol=float(metadata["rtol"]),
        atol=float(metadata["atol"]),
        solvers=metadata["solvers"],
        stiff=bool(metadata["stiff"]),
        dtype=metadata["dtype"],
        source=metadata.get("source", ""),
    )
