"""Image classifiers: the ODE-Net of Chen et al. (2018) and its two baselines.

All three share one layout, after torchdiffeq's `odenet_mnist`: downsampling (convolutions,
or residual blocks) -> a middle block -> a classifier (norm, ReLU, global average pooling,
optional dropout, linear). The middle block is an ODE block (`odenet`), residual blocks with
the same convolutions (`resnet`), or nothing (`noode`, widened to the ODE-Net's parameter
budget). The ODE block may be augmented (ANODE, Dupont et al. 2019): `augment` channels of
zeros appended to its state, which it integrates and hands on to the classifier. Images are
batched NHWC arrays of any size and channel count; kernels are HWIO.

Normalisation is group norm or none. Batch norm is not offered: its running statistics are
state that an ODE vector field (evaluated a solver-dependent number of times per step) has
no honest place for, and the training loop (`pyode.fit`) carries none.
"""

import math
from functools import partial

import equinox as eqx
import jax
import jax.numpy as jnp
from jax import lax
from jaxtyping import Array, Float, Int, PRNGKeyArray

from .. import SOLVERS, solve
from ._names import IMAGE_MODEL_KINDS

NORMS = ("group", "none")
DOWNSAMPLINGS = ("conv", "residual")
CONV_GRADIENTS = ("im2col", "lax")

_NHWC = ("NHWC", "HWIO", "NHWC")


def plain_conv(
    x: Float[Array, "b h w i"], kernel: Float[Array, "kh kw i o"], stride: int = 1, padding: int = 1
):
    """lax's 2-D convolution of an NHWC batch with an HWIO kernel, zero-padded on every side."""
    pad = ((padding, padding), (padding, padding))
    return lax.conv_general_dilated(x, kernel, (stride, stride), pad, dimension_numbers=_NHWC)


@partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def im2col_conv(
    x: Float[Array, "b h w i"], kernel: Float[Array, "kh kw i o"], stride: int = 1, padding: int = 1
):
    """`plain_conv` with a hand-written VJP that keeps XLA's CPU backend on its fast paths.

    Inside a solver loop XLA on the CPU computes a convolution's gradients on a slow path
    (docs/image.md). Here the kernel gradient is one im2col matrix product (patches^T @
    cotangent) and, for stride 1, the input gradient a forward convolution of the cotangent
    with the flipped, transposed kernel.
    """
    return plain_conv(x, kernel, stride, padding)


def _im2col_forward(x, kernel, stride, padding):
    return plain_conv(x, kernel, stride, padding), (x, kernel)


def _patches(x, kh: int, kw: int, stride: int, padding: int) -> Float[Array, "bhw khkwi"]:
    """The im2col matrix: one row per output pixel, its (kh, kw, c_in) receptive field flattened.

    Built from shifted strided slices (not `lax.conv_general_dilated_patches`, itself a
    convolution, which inside a loop is as slow as the gradient it would replace).
    """
    b, h, w, c = x.shape
    padded = jnp.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    out_h = (h + 2 * padding - kh) // stride + 1
    out_w = (w + 2 * padding - kw) // stride + 1
    shifts = [
        padded[:, i : i + stride * (out_h - 1) + 1 : stride, j : j + stride * (out_w - 1) + 1 : stride, :]
        for i in range(kh)
        for j in range(kw)
    ]
    return jnp.stack(shifts, axis=3).reshape(b * out_h * out_w, kh * kw * c)


def _im2col_backward(stride, padding, residuals, cotangent):
    x, kernel = residuals
    kh, kw, c_in, c_out = kernel.shape
    if stride == 1 and kh == kw and kh - 1 - padding >= 0:
        # The input gradient as a forward convolution with the flipped, transposed kernel.
        x_bar = plain_conv(cotangent, kernel[::-1, ::-1].swapaxes(2, 3), 1, kh - 1 - padding)
    else:
        _, input_vjp = jax.vjp(lambda x_: plain_conv(x_, kernel, stride, padding), x)
        (x_bar,) = input_vjp(cotangent)
    kernel_bar = _patches(x, kh, kw, stride, padding).T @ cotangent.reshape(-1, c_out)
    kernel_bar = kernel_bar.reshape(kh, kw, c_in, c_out)
    return x_bar, kernel_bar.astype(kernel.dtype)


im2col_conv.defvjp(_im2col_forward, _im2col_backward)


class Conv(eqx.Module):
    """A 2-D convolution on NHWC batches with He-uniform initial weights."""

    kernel: Float[Array, "kh kw i o"]
    bias: Float[Array, " o"]
    stride: int = eqx.field(static=True)
    padding: int = eqx.field(static=True)
    gradient: str = eqx.field(static=True)

    def __init__(self, c_in, c_out, size=3, *, stride=1, padding=None, gradient="im2col", key):
        if gradient not in CONV_GRADIENTS:
            raise ValueError(f"unknown convolution gradient {gradient!r}; choose one of {CONV_GRADIENTS}")
        bound = 1 / math.sqrt(c_in * size * size)
        w_key, b_key = jax.random.split(key)
        self.kernel = jax.random.uniform(w_key, (size, size, c_in, c_out), minval=-bound, maxval=bound)
        self.bias = jax.random.uniform(b_key, (c_out,), minval=-bound, maxval=bound)
        self.stride = stride
        self.padding = (size - 1) // 2 if padding is None else padding
        self.gradient = gradient

    def __call__(self, x: Float[Array, "b h w i"]) -> Float[Array, "b h w o"]:
        conv = im2col_conv if self.gradient == "im2col" else plain_conv
        return conv(x, self.kernel, self.stride, self.padding) + self.bias


def group_count(width: int) -> int:
    """Groups of a group norm over `width` channels: the largest divisor of width up to
    min(32, width / 4), so that each group pools at least four channels' statistics."""
    most = max(1, min(32, width // 4))
    return max(g for g in range(1, most + 1) if width % g == 0)


class Norm(eqx.Module):
    """Group norm over NHWC batches (per image, per group of channels), or the identity."""

    scale: Float[Array, " c"] | None
    shift: Float[Array, " c"] | None
    groups: int = eqx.field(static=True)

    def __init__(self, width: int, kind: str):
        if kind not in NORMS:
            raise ValueError(f"unknown norm {kind!r}; choose one of {NORMS} (batch norm is not supported)")
        self.groups = group_count(width) if kind == "group" else 0
        self.scale = jnp.ones(width) if self.groups else None
        self.shift = jnp.zeros(width) if self.groups else None

    def __call__(self, x: Float[Array, "b h w c"]) -> Float[Array, "b h w c"]:
        if not self.groups:
            return x
        b, h, w, c = x.shape
        grouped = x.reshape(b, h, w, self.groups, c // self.groups)
        mean = grouped.mean(axis=(1, 2, 4), keepdims=True)
        variance = grouped.var(axis=(1, 2, 4), keepdims=True)
        normalised = ((grouped - mean) * lax.rsqrt(variance + 1e-5)).reshape(b, h, w, c)
        return normalised * self.scale + self.shift


def _with_time(t, x: Float[Array, "b h w c"]) -> Float[Array, "b h w c+1"]:
    return jnp.concatenate([x, jnp.broadcast_to(jnp.asarray(t, x.dtype), x.shape[:-1] + (1,))], axis=-1)


class ConvField(eqx.Module):
    """The ODE block's vector field: norm, ReLU, conv(t, .), norm, ReLU, conv(t, .), norm."""

    norms: tuple[Norm, Norm, Norm]
    convs: tuple[Conv, Conv]

    def __init__(self, width: int, *, norm: str, conv_gradient: str, key):
        keys = jax.random.split(key)
        self.norms = (Norm(width, norm), Norm(width, norm), Norm(width, norm))
        self.convs = tuple(Conv(width + 1, width, gradient=conv_gradient, key=k) for k in keys)

    def __call__(self, t, z: Float[Array, "b h w c"]) -> Float[Array, "b h w c"]:
        z = self.convs[0](_with_time(t, jax.nn.relu(self.norms[0](z))))
        z = self.convs[1](_with_time(t, jax.nn.relu(self.norms[1](z))))
        return self.norms[2](z)


class ODEBlock(eqx.Module):
    """Integrates the field over [0, 1] with `pyode.solve`; returns the state and the solve's stats.

    With `augment` > 0 (ANODE) the state is the input with that many zero channels appended,
    so the field and the returned state have c + augment channels.
    """

    field: ConvField
    solve_options: dict = eqx.field(static=True)
    augment: int = eqx.field(static=True, default=0)

    def __call__(self, z) -> tuple[Float[Array, "b h w c+augment"], dict[str, Int[Array, ""]]]:
        if self.augment:
            z = jnp.concatenate([z, jnp.zeros(z.shape[:-1] + (self.augment,), z.dtype)], axis=-1)
        solution = solve(self.field, z, t0=0.0, t1=1.0, **self.solve_options)
        return solution.final, {"nfe_forward": solution.nfe_forward, "solver_status": solution.status}


class ResidualBlock(eqx.Module):
    """z + conv(ReLU(norm(conv(ReLU(norm(z)))))) (pre-activation), optionally downsampling by 2."""

    norms: tuple[Norm, Norm]
    convs: tuple[Conv, Conv]
    shortcut: Conv | None

    def __init__(self, c_in, c_out, *, norm, stride=1, conv_gradient="im2col", key):
        keys = jax.random.split(key, 3)
        self.norms = (Norm(c_in, norm), Norm(c_out, norm))
        self.convs = (
            Conv(c_in, c_out, stride=stride, gradient=conv_gradient, key=keys[0]),
            Conv(c_out, c_out, gradient=conv_gradient, key=keys[1]),
        )
        needs_shortcut = stride != 1 or c_in != c_out
        shortcut = Conv(c_in, c_out, 1, stride=stride, gradient=conv_gradient, key=keys[2])
        self.shortcut = shortcut if needs_shortcut else None

    def __call__(self, z):
        pre = jax.nn.relu(self.norms[0](z))
        skip = z if self.shortcut is None else self.shortcut(pre)
        return skip + self.convs[1](jax.nn.relu(self.norms[1](self.convs[0](pre))))


class Downsampling(eqx.Module):
    """conv 3x3 to `width`, then `layers` stride-2 stages (norm-ReLU-conv 4x4, or residual blocks).

    Outside any solver loop, its convolutions keep XLA's own gradients (faster there).
    """

    stem: Conv
    stages: tuple

    def __init__(self, channels, width, *, layers, kind, norm, key):
        if kind not in DOWNSAMPLINGS:
            raise ValueError(f"unknown downsampling {kind!r}; choose one of {DOWNSAMPLINGS}")
        keys = jax.random.split(key, layers + 1)
        self.stem = Conv(channels, width, gradient="lax", key=keys[0])
        if kind == "conv":
            self.stages = tuple(
                (Norm(width, norm), Conv(width, width, 4, stride=2, padding=1, gradient="lax", key=k))
                for k in keys[1:]
            )
        else:
            self.stages = tuple(
                ResidualBlock(width, width, norm=norm, stride=2, conv_gradient="lax", key=k) for k in keys[1:]
            )

    def __call__(self, x):
        z = self.stem(x)
        for stage in self.stages:
            if isinstance(stage, ResidualBlock):
                z = stage(z)
            else:
                stage_norm, conv = stage
                z = conv(jax.nn.relu(stage_norm(z)))
        return z


class ImageClassifier(eqx.Module):
    """Downsampling -> middle block (ODE, residual or none) -> norm, ReLU, pooling, dropout, linear."""

    downsampling: Downsampling
    middle: ODEBlock | tuple[ResidualBlock, ...] | None
    norm: Norm
    dropout: eqx.nn.Dropout
    linear: eqx.nn.Linear

    def __call__(
        self, x: Float[Array, "b h w c"], *, key: PRNGKeyArray | None = None
    ) -> tuple[Float[Array, "b classes"], dict[str, Int[Array, ""]]]:
        """Logits and the ODE block's solve stats: `nfe_forward` and `solver_status` (0, 0 without one).

        With a `key`, dropout is applied (training); without, it is not (inference).
        """
        z = self.downsampling(x)
        stats = {"nfe_forward": jnp.zeros((), jnp.int32), "solver_status": jnp.zeros((), jnp.int32)}
        if isinstance(self.middle, ODEBlock):
            z, stats = self.middle(z)
        elif self.middle is not None:
            for block in self.middle:
                z = block(z)
        features = jax.nn.relu(self.norm(z)).mean(axis=(1, 2))
        features = self.dropout(features, key=key, inference=key is None)
        return features @ self.linear.weight.T + self.linear.bias, stats


def parameter_count(model: eqx.Module) -> int:
    """Number of trainable scalars (of a model, or of its `jax.eval_shape`)."""
    leaves = jax.tree_util.tree_leaves(model)
    return sum(
        leaf.size for leaf in leaves if hasattr(leaf, "dtype") and jnp.issubdtype(leaf.dtype, jnp.inexact)
    )


def _build(
    kind,
    channels,
    classes,
    width,
    *,
    norm,
    dropout,
    downsampling,
    downsampling_layers,
    resnet_blocks,
    conv_gradient,
    solve_options,
    augment=0,
    key,
):
    keys = jax.random.split(key, 3)
    down = Downsampling(
        channels,
        width,
        layers=downsampling_layers,
        kind=downsampling,
        norm=norm,
        key=keys[0],
    )
    if kind == "odenet":
        field = ConvField(width + augment, norm=norm, conv_gradient=conv_gradient, key=keys[1])
        middle = ODEBlock(field, solve_options, augment)
    elif kind == "resnet":
        middle = tuple(
            ResidualBlock(width, width, norm=norm, conv_gradient=conv_gradient, key=k)
            for k in jax.random.split(keys[1], resnet_blocks)
        )
    else:
        middle = None
    features = width + (augment if kind == "odenet" else 0)
    linear = eqx.nn.Linear(features, classes, key=keys[2])
    return ImageClassifier(down, middle, Norm(features, norm), eqx.nn.Dropout(dropout), linear)


def _width_for_budget(channels, classes, width, options) -> int:
    """The no-ODE width whose parameter count is nearest to the ODE-Net's at `width`."""

    def count(kind, w, solve_options):
        build = lambda: _build(kind, channels, classes, w, **{**options, "solve_options": solve_options})  # noqa: E731
        return parameter_count(jax.eval_shape(build))

    target = count("odenet", width, {"solver": "euler", "steps": 1})
    candidate = width
    while count("noode", candidate + 1, {}) <= target:
        candidate += 1
    above = candidate + 1
    return min(candidate, above, key=lambda w: abs(count("noode", w, {}) - target))


def make_image_classifier(
    kind: str,
    *,
    channels: int = 1,
    classes: int = 10,
    width: int = 64,
    norm: str = "group",
    dropout: float = 0.0,
    downsampling: str = "conv",
    downsampling_layers: int = 2,
    resnet_blocks: int = 1,
    conv_gradient: str = "im2col",
    solve_options: dict | None = None,
    augment: int = 0,
    key: PRNGKeyArray,
) -> ImageClassifier:
    """An ODE-Net, a ResNet or a no-ODE network, with float32 parameters, for images of
    `channels` channels (1 for MNIST and digits, 3 for CIFAR-10) and any size.

    `odenet` needs `solve_options` (keyword arguments of `pyode.solve`: solver, adjoint and
    rtol/atol or steps); `augment` > 0 makes its ODE block an ANODE block (that many zero
    channels appended to the state; 0, the default, is the plain block). `resnet` has
    `resnet_blocks` residual blocks of the ODE field's convolutions (one block matches the ODE
    block's parameters). `noode` is widened to the width whose parameter count is nearest to
    that of the (unaugmented) ODE-Net of `width`.
    """
    if kind not in IMAGE_MODEL_KINDS:
        raise ValueError(f"unknown model {kind!r}; choose one of {IMAGE_MODEL_KINDS}")
    if augment < 0 or (augment and kind != "odenet"):
        raise ValueError(f"augment is {augment}: zero channels are appended to an odenet's ODE block only")
    if kind == "odenet":
        if not solve_options or solve_options.get("solver") not in SOLVERS:
            raise ValueError("an odenet needs solve_options with a solver (and steps or rtol/atol)")
    options = dict(
        norm=norm,
        dropout=dropout,
        downsampling=downsampling,
        downsampling_layers=downsampling_layers,
        resnet_blocks=resnet_blocks,
        conv_gradient=conv_gradient,
        solve_options=dict(solve_options or {}),
        key=key,
    )
    if kind == "noode":
        width = _width_for_budget(channels, classes, width, options)
    model = _build(kind, channels, classes, width, augment=augment, **options)
    return jax.tree_util.tree_map(lambda a: a.astype(jnp.float32) if eqx.is_inexact_array(a) else a, model)
