"""What produced a result: software versions and the machine."""

import importlib.metadata
import platform

PACKAGES = ("pyode", "jax", "jaxlib", "diffrax", "equinox", "optax", "numpy", "scipy", "snakemake")


def versions(packages=PACKAGES) -> dict[str, str]:
    """Installed versions of `packages` (missing ones as 'not installed'), Python and the platform."""
    found = {"python": platform.python_version(), "platform": platform.platform()}
    for name in packages:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def jax_device() -> str:
    """The platform JAX computes on (cpu, gpu, ...)."""
    import jax

    return jax.default_backend()
