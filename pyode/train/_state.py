"""A run's training state, saved as one verified file, and the identity that owns it.

The state is one atomic unit: parameters, optimiser state, the number of completed steps,
the per-step history and what observers recorded. Batches and random keys are functions of
the step alone, so the step is the random state. Two checkpoints are kept (`checkpoint.npz`
and the one before it, `checkpoint.previous.npz`): a corrupt newest one falls back to the
older, a corrupt pair to a fresh start, each with a one-line notice, never silently.
"""

import hashlib
import json
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jax
import numpy as np

from .. import CorruptFile, code_version, file_digest, load_arrays, save_arrays

CHECKPOINT = "checkpoint.npz"
PREVIOUS = "checkpoint.previous.npz"


def run_identity(settings: dict, inputs: dict[str, str | Path] | None = None, *, code: dict) -> dict:
    """What determines a run's result: its resolved settings, the content of each input file, and
    the code that runs it (`code`, a `pyode.code_version`: the source digest and library versions)
    with JAX's precision (x64 or not).

    Returns {"digest": ..., "settings": ..., "inputs": {name: sha256}, "code": ..., "x64": ...};
    two runs with the same digest produce the same parameters. The git commit and dirty flag are
    recorded but not part of the digest (the source digest already says whether the code differs);
    neither is the thread count (tests/test_cli.py checks a training gives the same parameters on
    one thread and on two).
    """
    digests = {name: file_digest(path) for name, path in sorted((inputs or {}).items())}
    determining = {name: value for name, value in code.items() if name not in ("commit", "dirty")}
    x64 = bool(jax.config.jax_enable_x64)
    text = json.dumps(
        {"settings": settings, "inputs": digests, "code": determining, "x64": x64}, sort_keys=True
    )
    return {
        "digest": hashlib.sha256(text.encode()).hexdigest(),
        "settings": settings,
        "inputs": digests,
        "code": code,
        "x64": x64,
    }


@dataclass
class TrainState:
    """Everything a resumed run needs to continue exactly as an uninterrupted one would."""

    step: int
    params: Any
    opt_state: Any
    history: list[dict] = field(default_factory=list)
    observations: list[dict] = field(default_factory=list)


def save_state(state_dir: Path, state: TrainState, identity: str) -> None:
    """Write the state atomically as the newest checkpoint; the one it replaces becomes the previous
    (kept in place until the new one has replaced it)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    leaves = jax.tree_util.tree_leaves((state.params, state.opt_state))
    arrays = {f"leaf_{i:05d}": np.asarray(leaf) for i, leaf in enumerate(leaves)}
    metadata = {
        "identity": identity,
        "code": code_version(),
        "step": state.step,
        "history": state.history,
        "observations": state.observations,
    }
    newest = state_dir / CHECKPOINT
    if newest.exists():
        _keep_as_previous(newest, state_dir / PREVIOUS)
    save_arrays(newest, arrays, metadata)


def _keep_as_previous(newest: Path, previous: Path) -> None:
    """Make `previous` a copy of `newest` (a hard link where the file system has them), replacing it
    atomically, while `newest` stays in place: at no moment is there no newest checkpoint."""
    temporary = previous.with_name(f".{previous.name}.partial-{os.getpid()}")
    temporary.unlink(missing_ok=True)
    try:
        os.link(newest, temporary)
    except OSError:
        shutil.copyfile(newest, temporary)
    os.replace(temporary, previous)


def load_state(state_dir: Path, like: TrainState, identity: str, *, warn=None) -> TrainState | None:
    """The newest verified checkpoint of this identity, or None (with a one-line notice why).

    `like` gives the tree structure, shapes and dtypes. A folder left by another identity is
    emptied; a corrupt checkpoint falls back to the previous one.
    """
    warn = warn or _notice
    for name in (CHECKPOINT, PREVIOUS):
        path = state_dir / name
        if not path.exists():
            continue
        try:
            arrays, metadata = load_arrays(path)
        except CorruptFile as error:
            warn(f"{error}; {_next(name)}")
            continue
        if metadata.get("identity") != identity:
            warn(f"discarding {state_dir}: it belongs to a run with other settings or inputs")
            shutil.rmtree(state_dir)
            return None
        try:
            return _restore(arrays, metadata, like)
        except CorruptFile as error:
            warn(f"{path}: {error}; {_next(name)}")
    return None


def _next(name: str) -> str:
    return "trying the previous checkpoint" if name == CHECKPOINT else "starting afresh"


def clear_state(state_dir: Path) -> None:
    """Remove a finished run's training state, so that nothing can resume from it."""
    shutil.rmtree(state_dir, ignore_errors=True)


def _restore(arrays: dict, metadata: dict, like: TrainState) -> TrainState:
    leaves, treedef = jax.tree_util.tree_flatten((like.params, like.opt_state))
    if len(arrays) != len(leaves):
        raise CorruptFile(f"holds {len(arrays)} arrays where the model and optimiser have {len(leaves)}")
    restored = []
    for i, leaf in enumerate(leaves):
        array = arrays[f"leaf_{i:05d}"]
        expected = np.asarray(leaf)
        if array.shape != expected.shape or array.dtype != expected.dtype:
            raise CorruptFile(
                f"array {i} is {array.dtype}{list(array.shape)}, "
                f"expected {expected.dtype}{list(expected.shape)}"
            )
        restored.append(jax.numpy.asarray(array) if isinstance(leaf, jax.Array) else array)
    step, history = metadata["step"], metadata["history"]
    if not isinstance(step, int) or step < 0 or len(history) != step:
        raise CorruptFile(f"step {step!r} does not match its history of {len(history)} steps")
    params, opt_state = jax.tree_util.tree_unflatten(treedef, restored)
    return TrainState(step, params, opt_state, history, metadata["observations"])


def _notice(message: str) -> None:
    print(f"pyode: {message}", file=sys.stderr, flush=True)
