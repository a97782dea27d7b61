"""The training step of a JAX model: optax update, finiteness checks, and a counted twin."""

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

from .. import counted_programs, counting, status_message


@dataclass(frozen=True)
class StepResult:
    params: Any
    opt_state: Any
    loss: float
    metrics: dict[str, float]
    failure: str | None


class OptaxStepper:
    """Minimises `loss_fn(model, batch) -> (loss, metrics)` over the model's inexact arrays.

    `metrics` are JAX scalars; a `solver_status` among them (a `pyode.Solution.status`) is
    checked, not recorded. The step runs bare (no host callbacks: nothing but the update);
    `count` runs its twin, compiled with every solve counting its evaluations.
    """

    def __init__(
        self,
        model: eqx.Module,
        loss_fn: Callable[[eqx.Module, Any], tuple[jax.Array, dict]],
        optimizer: optax.GradientTransformation,
    ):
        self._params, self._static = eqx.partition(model, eqx.is_inexact_array)
        self._optimizer = optimizer
        static = self._static

        def step(params, opt_state, batch):
            def loss_of(p):
                return loss_fn(eqx.combine(p, static), batch)

            (loss, metrics), grads = jax.value_and_grad(loss_of, has_aux=True)(params)
            updates, new_opt_state = optimizer.update(grads, opt_state, params)
            new_params = optax.apply_updates(params, updates)
            finite = {"gradient": _all_finite(grads), "parameter": _all_finite(new_params)}
            return new_params, new_opt_state, loss, metrics, finite

        self._bare = jax.jit(step)
        self._counted = jax.jit(lambda *arguments: step(*arguments))

    def init(self):
        return self._params, self._optimizer.init(self._params)

    def step(self, params, opt_state, batch) -> StepResult:
        new_params, new_opt_state, loss, metrics, finite = self._bare(params, opt_state, batch)
        loss = float(loss)
        metrics = {name: float(value) for name, value in metrics.items()}
        status = int(metrics.pop("solver_status", 0))
        failure = None
        if status:
            failure = f"the solver failed ({status_message(status)})"
        elif not math.isfinite(loss):
            failure = f"the loss became {loss}"
        else:
            failure = next((f"a {name} became non-finite" for name, ok in finite.items() if not ok), None)
        return StepResult(new_params, new_opt_state, loss, metrics, failure)

    def count(self, params, opt_state, batch) -> int:
        with counted_programs(), counting() as counts:
            jax.block_until_ready(self._counted(params, opt_state, batch))
        return counts.backward

    def model(self, params) -> eqx.Module:
        return eqx.combine(params, self._static)


def _all_finite(tree) -> jax.Array:
    leaves = [jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree_util.tree_leaves(tree)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)
