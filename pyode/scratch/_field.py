"""Vector fields with a hand-written forward pass and VJPs: an MLP, and Van der Pol."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np


def _tanh_derivative(x: np.ndarray) -> np.ndarray:
    return 1.0 - np.tanh(x) ** 2


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(x, 0.0)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _elu(x: np.ndarray) -> np.ndarray:
    return np.where(x > 0, x, np.expm1(np.minimum(x, 0.0)))


def _elu_derivative(x: np.ndarray) -> np.ndarray:
    return np.where(x > 0, 1.0, np.exp(np.minimum(x, 0.0)))


def _relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0.0)


def _relu_derivative(x: np.ndarray) -> np.ndarray:
    return (x > 0).astype(x.dtype)


def _tanh_second_derivative(x: np.ndarray) -> np.ndarray:
    value = np.tanh(x)
    return -2.0 * value * (1.0 - value**2)


def _sigmoid_derivative(x: np.ndarray) -> np.ndarray:
    value = _sigmoid(x)
    return value * (1.0 - value)


def _elu_second_derivative(x: np.ndarray) -> np.ndarray:
    return np.where(x > 0, 0.0, np.exp(np.minimum(x, 0.0)))


def _silu(x: np.ndarray) -> np.ndarray:
    return x * _sigmoid(x)


def _silu_derivative(x: np.ndarray) -> np.ndarray:
    value = _sigmoid(x)
    return value * (1.0 + x * (1.0 - value))


def _silu_second_derivative(x: np.ndarray) -> np.ndarray:
    value = _sigmoid(x)
    return value * (1.0 - value) * (2.0 + x * (1.0 - 2.0 * value))


ACTIVATIONS: dict[str, tuple[Callable[[np.ndarray], np.ndarray], Callable[[np.ndarray], np.ndarray]]] = {
    "tanh": (np.tanh, _tanh_derivative),
    "softplus": (_softplus, _sigmoid),
    "elu": (_elu, _elu_derivative),
    "silu": (_silu, _silu_derivative),
    "relu": (_relu, _relu_derivative),
}
"""name -> (activation, its derivative), both taking the pre-activation; as in `pyode.models`."""

SECOND_DERIVATIVES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "tanh": _tanh_second_derivative,
    "softplus": _sigmoid_derivative,
    "elu": _elu_second_derivative,
    "silu": _silu_second_derivative,
    "relu": np.zeros_like,
}
"""name -> the activation's second derivative (for the gradient of a Jacobian's trace)."""

Weights = list[tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class FieldVJP:
    """f(t, y) and the vector-Jacobian products of a cotangent `a` with it."""

    value: np.ndarray
    """f(t, y), shape (..., dim)."""
    y: np.ndarray
    """a^T df/dy, shape (..., dim)."""
    theta: np.ndarray
    """a^T df/dtheta, summed over the batch, in the order of the field's `flat_parameters`."""
    t: float
    """a^T df/dt, summed over the batch (zero for an autonomous field)."""


class ScratchField(Protocol):
    """What the solvers and the adjoint need of a vector field: f, its VJPs, its parameters."""

    @property
    def dim(self) -> int: ...

    @property
    def num_parameters(self) -> int: ...

    def flat_parameters(self) -> np.ndarray: ...

    def __call__(self, t: float, y: np.ndarray) -> np.ndarray: ...

    def vjp(self, t: float, y: np.ndarray, cotangent: np.ndarray) -> FieldVJP: ...


@dataclass(frozen=True)
class _Perceptron:
    """An MLP g(t, y) in NumPy with its reverse pass written out by hand.

    The layout is `pyode.models.MLPField`'s: layer k holds weight (out, in) and bias
    (out,); with `time_input`, t is the last input feature of the first layer; the
    activation follows every layer but the last.
    """

    weights: Weights
    activation: str = "tanh"
    time_input: bool = False

    def __post_init__(self):
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {self.activation!r}; choose one of {sorted(ACTIVATIONS)}")
        sizes_in = [w.shape[1] for w, _ in self.weights]
        sizes_out = [w.shape[0] for w, _ in self.weights]
        if any(b.shape != (n,) for (_, b), n in zip(self.weights, sizes_out, strict=True)):
            raise ValueError("each bias must have shape (out,) matching its weight (out, in)")
        if sizes_in[1:] != sizes_out[:-1]:
            raise ValueError(f"layer sizes do not chain: inputs {sizes_in}, outputs {sizes_out}")

    @property
    def in_dim(self) -> int:
        """Inputs of the first layer, t excluded."""
        return self.weights[0][0].shape[1] - int(self.time_input)

    @property
    def out_dim(self) -> int:
        return self.weights[-1][0].shape[0]

    @property
    def num_parameters(self) -> int:
        """How many numbers the weights and biases hold."""
        return sum(w.size + b.size for w, b in self.weights)

    def flat_parameters(self) -> np.ndarray:
        """All weights and biases in one vector: W0, b0, W1, b1, ... (row-major)."""
        return flatten_weights(self.weights)

    def with_flat_parameters(self, theta: np.ndarray):
        """A copy holding the parameter vector `theta` (see `flat_parameters`)."""
        return type(self)(unflatten_weights(theta, self.weights), self.activation, self.time_input)

    def _input(self, t: float, y: np.ndarray) -> np.ndarray:
        if not self.time_input:
            return y
        time_column = np.full(y.shape[:-1] + (1,), t, dtype=y.dtype)
        return np.concatenate([y, time_column], axis=-1)

    def _forward(self, t: float, y: np.ndarray) -> np.ndarray:
        sigma, _ = ACTIVATIONS[self.activation]
        h = self._input(t, y)
        for k, (weight, bias) in enumerate(self.weights):
            h = h @ weight.T + bias
            if k < len(self.weights) - 1:
                h = sigma(h)
        return h

    def _backward(self, t: float, y: np.ndarray, cotangent: np.ndarray):
        """(g(t, y), cotangent^T dg/dy (..., in_dim), dg/dtheta flat, dg/dt summed), reverse accumulation."""
        sigma, sigma_derivative = ACTIVATIONS[self.activation]
        layer_inputs, pre_activations = [], []
        h = self._input(t, y)
        for k, (weight, bias) in enumerate(self.weights):
            layer_inputs.append(h)
            h = h @ weight.T + bias
            if k < len(self.weights) - 1:
                pre_activations.append(h)
                h = sigma(h)
        value = h

        grad_h = cotangent
        grad_weights: Weights = []
        for k in reversed(range(len(self.weights))):
            weight, _ = self.weights[k]
            flat_grad = grad_h.reshape(-1, grad_h.shape[-1])
            flat_input = layer_inputs[k].reshape(-1, weight.shape[1])
            grad_weights.append((flat_grad.T @ flat_input, flat_grad.sum(axis=0)))
            grad_h = grad_h @ weight
            if k > 0:
                grad_h = grad_h * sigma_derivative(pre_activations[k - 1])
        grad_weights.reverse()
        grad_t = float(grad_h[..., self.in_dim].sum()) if self.time_input else 0.0
        return value, grad_h[..., : self.in_dim], flatten_weights(grad_weights), grad_t


@dataclass(frozen=True)
class ScratchMLP(_Perceptron):
    """f(t, y) = MLP([y, t]) on states of shape (..., dim), in NumPy only (`pyode.models.MLPField`)."""

    def __post_init__(self):
        super().__post_init__()
        if self.in_dim != self.out_dim:
            raise ValueError(
                f"first layer takes {self.weights[0][0].shape[1]} inputs; expected dim {self.out_dim}"
                f"{' + 1 for time' if self.time_input else ''}"
            )

    @property
    def dim(self) -> int:
        """The state dimension."""
        return self.out_dim

    def __call__(self, t: float, y: np.ndarray) -> np.ndarray:
        """f(t, y) for y of shape (..., dim)."""
        return self._forward(t, y)

    def vjp(self, t: float, y: np.ndarray, cotangent: np.ndarray) -> FieldVJP:
        """f(t, y) and cotangent^T df/dy, df/dtheta, df/dt by reverse accumulation by hand."""
        value, grad_y, grad_theta, grad_t = self._backward(t, y, cotangent)
        return FieldVJP(value=value, y=grad_y, theta=grad_theta, t=grad_t)

    def trace_gradients(self, t: float, y: np.ndarray, cotangent: np.ndarray, trace_cotangent: np.ndarray):
        """f(t, y), tr(df/dy) and, per point, the gradients of sum(cotangent * f) + trace_cotangent * tr.

        y (batch, dim), cotangent (batch, dim), trace_cotangent (batch,). Returns (value (batch,
        dim), trace (batch,), grad_y (batch, dim), grad_t (batch,), grad_weights [(W (batch, out,
        in), b (batch, out)), ...]). The trace is the sum over input directions e_i of (df/dy e_i)_i,
        each carried forward through the layers (u -> s'(z) * (W u)); the gradient runs back through
        both that tangent pass and the value pass, so it needs the activation's second derivative.
        """
        sigma, sigma_derivative = ACTIVATIONS[self.activation]
        second_derivative = SECOND_DERIVATIVES[self.activation]
        last = len(self.weights) - 1
        inputs, pre_activations = [], []
        h = self._input(t, y)
        for k, (weight, bias) in enumerate(self.weights):
            inputs.append(h)
            h = h @ weight.T + bias
            if k < last:
                pre_activations.append(h)
                h = sigma(h)
        value = h
        # Tangent pass, one input direction at a time: tangents[i][k] is the tangent entering layer k.
        tangents = []
        trace = np.zeros(y.shape[0], dtype=y.dtype)
        for i in range(self.dim):
            u = np.zeros_like(inputs[0])
            u[:, i] = 1.0
            entering = []
            for k, (weight, _) in enumerate(self.weights):
                entering.append(u)
                u = u @ weight.T
                if k < last:
                    u = sigma_derivative(pre_activations[k]) * u
            tangents.append(entering)
            trace = trace + u[:, i]
        grad_w = [np.zeros((y.shape[0],) + weight.shape, dtype=y.dtype) for weight, _ in self.weights]
        grad_b = [np.zeros((y.shape[0], bias.shape[0]), dtype=y.dtype) for _, bias in self.weights]
        grad_pre = [np.zeros_like(z) for z in pre_activations]
        # Back through each tangent pass: d trace / d (tangent leaving the last layer) is e_i.
        for i in range(self.dim):
            u_bar = np.zeros_like(value)
            u_bar[:, i] = trace_cotangent
            for k in reversed(range(len(self.weights))):
                weight = self.weights[k][0]
                if k < last:
                    pre_tangent = tangents[i][k] @ weight.T
                    grad_pre[k] += u_bar * second_derivative(pre_activations[k]) * pre_tangent
                    u_bar = u_bar * sigma_derivative(pre_activations[k])
                grad_w[k] += u_bar[:, :, None] * tangents[i][k][:, None, :]
                u_bar = u_bar @ weight
        # Back through the value pass, with the tangent passes' pull on each pre-activation.
        h_bar = cotangent
        for k in reversed(range(len(self.weights))):
            weight = self.weights[k][0]
            if k < last:
                h_bar = h_bar * sigma_derivative(pre_activations[k]) + grad_pre[k]
            grad_w[k] += h_bar[:, :, None] * inputs[k][:, None, :]
            grad_b[k] += h_bar
            h_bar = h_bar @ weight
        grad_t = h_bar[:, self.dim] if self.time_input else np.zeros(y.shape[0], dtype=y.dtype)
        return value, trace, h_bar[:, : self.dim], grad_t, list(zip(grad_w, grad_b))


@dataclass(frozen=True)
class ScratchSecondOrder(_Perceptron):
    """dy/dt = (v, g(t, x, v)) for y = (x, v), x and v of d entries, g an MLP from 2d (+ t) inputs to d
    outputs: `pyode.models.SecondOrderField` (a second-order ODE x'' = g as a first-order system)."""

    def __post_init__(self):
        super().__post_init__()
        if self.in_dim != 2 * self.out_dim:
            raise ValueError(
                f"a second-order field maps 2d inputs (+ t) to d outputs; got {self.in_dim} inputs, "
                f"{self.out_dim} outputs"
            )

    @property
    def dim(self) -> int:
        """The state dimension: position and velocity."""
        return 2 * self.out_dim

    def __call__(self, t: float, y: np.ndarray) -> np.ndarray:
        return np.concatenate([y[..., self.out_dim :], self._forward(t, y)], axis=-1)

    def vjp(self, t: float, y: np.ndarray, cotangent: np.ndarray) -> FieldVJP:
        """With a = (a_x, a_v): a^T df/dy = (0, a_x) + a_v^T dg/dy; the parameters and t only through g."""
        d = self.out_dim
        acceleration, grad_y, grad_theta, grad_t = self._backward(t, y, cotangent[..., d:])
        grad_y = grad_y + np.concatenate([np.zeros_like(cotangent[..., :d]), cotangent[..., :d]], axis=-1)
        value = np.concatenate([y[..., d:], acceleration], axis=-1)
        return FieldVJP(value=value, y=grad_y, theta=grad_theta, t=grad_t)


@dataclass(frozen=True)
class ScratchCNF:
    """The augmented dynamics of a continuous normalising flow on states [z, l] (batch, dim + 1):
    dz/dt = f(t, z), dl/dt = -tr(df/dz), f a `ScratchMLP`; as `pyode.models.CNFDynamics` (exact trace)."""

    mlp: ScratchMLP

    @property
    def dim(self) -> int:
        return self.mlp.dim + 1

    @property
    def num_parameters(self) -> int:
        return self.mlp.num_parameters

    @property
    def weights(self) -> Weights:
        return self.mlp.weights

    def flat_parameters(self) -> np.ndarray:
        return self.mlp.flat_parameters()

    def __call__(self, t: float, y: np.ndarray) -> np.ndarray:
        batch = y.reshape(-1, self.dim)
        zeros = np.zeros(batch.shape[:1] + (self.mlp.dim,), batch.dtype)
        value, trace, *_ = self.mlp.trace_gradients(
            t, batch[:, :-1], zeros, np.zeros(len(batch), batch.dtype)
        )
        return np.concatenate([value, -trace[:, None]], axis=1).reshape(y.shape)

    def vjp(self, t: float, y: np.ndarray, cotangent: np.ndarray) -> FieldVJP:
        """The augmented field and a^T of its derivatives: the trace's gradient by `trace_gradients`."""
        batch, a = y.reshape(-1, self.dim), cotangent.reshape(-1, self.dim)
        value, trace, grad_z, grad_t, grad_weights = self.mlp.trace_gradients(
            t, batch[:, :-1], a[:, :-1], -a[:, -1]
        )
        grad_y = np.concatenate([grad_z, np.zeros((len(batch), 1), batch.dtype)], axis=1)
        summed = [(w.sum(axis=0), b.sum(axis=0)) for w, b in grad_weights]
        return FieldVJP(
            value=np.concatenate([value, -trace[:, None]], axis=1).reshape(y.shape),
            y=grad_y.reshape(y.shape),
            theta=flatten_weights(summed),
            t=float(grad_t.sum()),
        )


@dataclass(frozen=True)
class ScratchVanDerPol:
    """The Van der Pol oscillator dx/dt = v, dv/dt = mu (1 - x^2) v - x; theta = [mu].

    As `pyode.models.VanDerPol`; stiff for large mu (the cross-validation's stiff case).
    """

    mu: float

    dim = 2
    num_parameters = 1

    def flat_parameters(self) -> np.ndarray:
        return np.array([self.mu])

    def __call__(self, t: float, y: np.ndarray) -> np.ndarray:
        x, v = y[..., 0], y[..., 1]
        return np.stack([v, self.mu * (1 - x**2) * v - x], axis=-1)

    def vjp(self, t: float, y: np.ndarray, cotangent: np.ndarray) -> FieldVJP:
        """f and a^T [df/dy, df/dmu, df/dt]: the Jacobian is [[0, 1], [-2 mu x v - 1, mu (1 - x^2)]]."""
        x, v = y[..., 0], y[..., 1]
        a_x, a_v = cotangent[..., 0], cotangent[..., 1]
        grad_y = np.stack([a_v * (-2 * self.mu * x * v - 1), a_x + a_v * self.mu * (1 - x**2)], axis=-1)
        grad_mu = np.sum(a_v * (1 - x**2) * v)
        return FieldVJP(value=self(t, y), y=grad_y, theta=np.array([grad_mu]), t=0.0)


def random_mlp(
    dim: int,
    *,
    width: int = 16,
    depth: int = 1,
    activation: str = "tanh",
    time_input: bool = False,
    seed: int = 0,
    dtype: str = "float64",
) -> ScratchMLP:
    """An MLP with `depth` hidden layers of `width`, initialised uniformly in +-1/sqrt(fan_in)."""
    if dim < 1 or width < 1 or depth < 0:
        raise ValueError(f"need dim >= 1, width >= 1, depth >= 0; got {dim}, {width}, {depth}")
    rng = np.random.default_rng(seed)
    sizes = [dim + int(time_input)] + [width] * depth + [dim]
    weights = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
        bound = 1.0 / np.sqrt(n_in)
        weights.append(
            (
                rng.uniform(-bound, bound, (n_out, n_in)).astype(dtype),
                rng.uniform(-bound, bound, n_out).astype(dtype),
            )
        )
    return ScratchMLP(weights, activation, time_input)


def flatten_weights(weights: Sequence[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """[(W (out, in), b (out,)), ...] as one vector W0, b0, W1, b1, ... (row-major)."""
    return np.concatenate([np.concatenate([w.ravel(), b.ravel()]) for w, b in weights])


def unflatten_weights(theta: np.ndarray, like: Sequence[tuple[np.ndarray, np.ndarray]]) -> Weights:
    """The inverse of `flatten_weights`, shaped like the weights `like`."""
    expected = sum(w.size + b.size for w, b in like)
    if theta.shape != (expected,):
        raise ValueError(f"expected a parameter vector of shape ({expected},), got {theta.shape}")
    weights, start = [], 0
    for w, b in like:
        weight = theta[start : start + w.size].reshape(w.shape)
        start += w.size
        bias = theta[start : start + b.size]
        start += b.size
        weights.append((weight, bias))
    return weights
