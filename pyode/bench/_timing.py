"""The timing harness: warm-up, repetitions, medians with their spread, and what machine ran them."""

import os
import platform
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from .. import code_version, versions

PACKAGES = (
    "pyode",
    "jax",
    "jaxlib",
    "diffrax",
    "equinox",
    "numpy",
    "scipy",
    "torch",
    "torchdiffeq",
    "torchode",
)


@dataclass(frozen=True)
class Timing:
    """Seconds per call: the median of `repetitions` samples after warm-up, with min, max and quartiles.

    Each sample times `calls_per_sample` back-to-back calls (enough to last `min_sample_seconds`)
    and divides by their number. `cpu_median` is the median of the same samples in this
    process's CPU time (every thread's, XLA's and torch's included): unlike wall time it barely
    moves when other processes share the cores, so ratios between methods use it too.
    """

    median: float
    minimum: float
    maximum: float
    q1: float
    q3: float
    repetitions: int
    calls_per_sample: int
    samples: list[float]
    cpu_median: float
    cpu_samples: list[float]

    def as_dict(self) -> dict:
        return asdict(self)


def measure(
    function: Callable[[], object],
    *,
    repetitions: int = 7,
    warmup: int = 2,
    min_sample_seconds: float = 0.0,
    per_call: int = 1,
) -> Timing:
    """Time `function` (which must block until its work is done); `per_call` units of work per call.

    `warmup` calls are made first (compilation, caches); then enough calls per sample
    that one sample lasts at least `min_sample_seconds`.
    """
    if repetitions < 1:
        raise ValueError(f"repetitions must be at least 1, got {repetitions}")
    for _ in range(warmup):
        function()
    calls = 1
    if min_sample_seconds > 0:
        tic = time.perf_counter()
        function()
        one = max(time.perf_counter() - tic, 1e-9)
        calls = max(1, int(np.ceil(min_sample_seconds / one)))
    samples, cpu_samples = [], []
    for _ in range(repetitions):
        tic, cpu = time.perf_counter(), time.process_time()
        for _ in range(calls):
            function()
        samples.append((time.perf_counter() - tic) / (calls * per_call))
        cpu_samples.append((time.process_time() - cpu) / (calls * per_call))
    q1, median, q3 = np.percentile(samples, [25, 50, 75])
    return Timing(
        median=float(median),
        minimum=float(min(samples)),
        maximum=float(max(samples)),
        q1=float(q1),
        q3=float(q3),
        repetitions=repetitions,
        calls_per_sample=calls,
        samples=[float(s) for s in samples],
        cpu_median=float(np.median(cpu_samples)),
        cpu_samples=[float(s) for s in cpu_samples],
    )


def cpu_model() -> str:
    """The processor's model name (from /proc/cpuinfo where there is one)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def threads() -> int:
    """The CPU threads each library is given: OMP_NUM_THREADS (`pyode --threads N`) or every core."""
    return int(os.environ.get("OMP_NUM_THREADS") or os.cpu_count() or 1)


def machine_info() -> dict:
    """CPU, cores, threads given to JAX and torch, load average, and software versions."""
    info = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "threads": threads(),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "python": sys.version.split()[0],
        "versions": versions(PACKAGES),
        "code": code_version(),
    }
    if "torch" in sys.modules:
        info["torch_threads"] = sys.modules["torch"].get_num_threads()
    if "jax" in sys.modules:
        info["jax_backend"] = sys.modules["jax"].default_backend()
        info["jax_x64"] = bool(sys.modules["jax"].config.jax_enable_x64)
    return info


def peak_rss_bytes() -> int:
    """This process's peak resident memory so far (getrusage; Linux reports KiB)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024
