# The pyode workflow in a container (docs/cluster.md). Build where the base image can be pulled:
#   docker build -t pyode .                                # CPU: JAX and PyTorch CPU builds
#   docker build -t pyode:cuda --build-arg ACCELERATOR=cuda .   # JAX with CUDA 12 (NVIDIA hosts)
# Run the whole workflow, results on the host:
#   docker run --rm -v "$PWD/results:/pyode/results" pyode
# or give Snakemake other arguments: docker run --rm pyode snakemake --cores 2 all --configfile config/test.yaml
ARG PYTHON_VERSION=3.11
FROM python:${PYTHON_VERSION}-slim-bookworm

# cpu or cuda; EXTRAS are the package's extras the workflow uses (torch: the torchdiffeq backends of
# the cross-validation; add julia for DiffEqFlux, which then installs Julia on first use).
ARG ACCELERATOR=cpu
ARG EXTRAS=torch
# Where the CPU image takes PyTorch from besides PyPI: PyTorch's index of CPU-only wheels (PyPI's
# Linux wheel is a CUDA build of several GB); torch==2.13.0 takes its 2.13.0+cpu build.
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1 \
    MPLBACKEND=Agg \
    PYODE_COMPILATION_CACHE=/pyode/resources/jax-cache

WORKDIR /pyode
# The package first (the layer that changes least), editable so that julia/ stays reachable.
COPY pyproject.toml README.md ./
COPY pyode ./pyode
COPY julia ./julia
RUN if [ "$ACCELERATOR" = "cuda" ]; then \
        pip install --no-cache-dir -e ".[${EXTRAS},cuda]"; \
    else \
        pip install --no-cache-dir --extra-index-url "$TORCH_INDEX" "torch==2.13.0" \
        && pip install --no-cache-dir -e ".[${EXTRAS}]"; \
    fi \
    && pyode --help > /dev/null

COPY config ./config
COPY workflow ./workflow

CMD ["snakemake", "--cores", "all", "all"]
