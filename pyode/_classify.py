"""The 2-D classification experiment: (A)NODE classifiers on spirals and circles."""

import json
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from ._checkpoint import load_metadata, load_tree, save_tree
from ._counting import counting
from ._provenance import jax_device, versions
from ._train import TrainOptions, fit, read_history, start_state_dir
from .data import Split
from .models import ODEClassifier, make_classifier

DEFAULT_SETTINGS = {
    "seed": 42,
    "model": {"augment": 0, "t1": 1.0},
    "field": {"width": 128, "depth": 2, "activation": "tanh", "time_input": True},
    "solve": {"solver": "dopri5", "adjoint": "checkpoint", "rtol": 1e-3, "atol": 1e-3},
    "train": {
        "steps": 4000,
        "batch_size": 256,
        "learning_rate": 3e-3,
        "schedule": "cosine",
        "gradient_clip": 1.0,
        "checkpoint_every": 100,
    },
}


def resolve_settings(settings: dict) -> dict:
    """Defaults overlaid with `settings`; an unknown section or key is a ValueError naming it."""
    resolved = json.loads(json.dumps(DEFAULT_SETTINGS))
    for section, values in settings.items():
        if section not in resolved:
            raise ValueError(f"unknown settings section {section!r}; expected one of {sorted(resolved)}")
        if not isinstance(values, dict):
            resolved[section] = values
            continue
        unknown = set(values) - set(resolved[section]) - ({"dt", "steps"} if section == "solve" else set())
        if unknown:
            raise ValueError(f"unknown key(s) {sorted(unknown)} in settings section {section!r}")
        if section == "solve" and ({"dt", "steps"} & set(values)):
            for tolerance in ("rtol", "atol"):
                resolved["solve"].pop(tolerance)
        resolved[section].update(values)
    return resolved


def build_classifier(settings: dict, *, key) -> ODEClassifier:
    """A fresh classifier as the settings describe."""
    return make_classifier(
        2, **settings["model"], **settings["field"], solve_options=settings["solve"], key=key
    )


def binary_cross_entropy(model: ODEClassifier, batch) -> tuple[jax.Array, dict]:
    """Mean sigmoid cross-entropy, with accuracy and the forward evaluation count."""
    x, y = batch
    logits, solution = model(x)
    loss = optax.sigmoid_binary_cross_entropy(logits, y.astype(logits.dtype)).mean()
    accuracy = jnp.mean((logits > 0) == (y == 1))
    return loss, {"accuracy": accuracy, "nfe_forward": solution.nfe_forward}


def train_classifier(data_path: str | Path, settings: dict, out_dir: str | Path, *, progress: bool = True):
    """Train on the split at `data_path`; write model.eqx (+ .json) and history.jsonl to out_dir.

    Training state lives in out_dir/train-state/ so that an interrupted run resumes.
    """
    settings = resolve_settings(settings)
    out_dir = Path(out_dir)
    split = Split.load(data_path)
    train = settings["train"]
    options = TrainOptions(
        steps=train["steps"],
        learning_rate=train["learning_rate"],
        checkpoint_every=train["checkpoint_every"],
        schedule=train["schedule"],
        gradient_clip=train["gradient_clip"],
        progress=progress,
        description=f"train {out_dir.parent.name}/{out_dir.name}",
    )
    batch_size = min(train["batch_size"], len(split.x_train))
    seed = settings["seed"]

    def batch_at(step: int):
        rng = np.random.default_rng([seed, step])
        index = rng.choice(len(split.x_train), batch_size, replace=False)
        return jnp.asarray(split.x_train[index]), jnp.asarray(split.y_train[index])

    model = build_classifier(settings, key=jax.random.PRNGKey(seed))
    state_dir = start_state_dir(out_dir / "train-state", settings)
    model = fit(model, binary_cross_entropy, batch_at, options, state_dir)
    save_tree(out_dir / "model.eqx", model, metadata={"kind": "ODEClassifier", "settings": settings})
    (out_dir / "history.jsonl").write_text((state_dir / "history.jsonl").read_text())
    return model


def load_classifier(path: str | Path) -> ODEClassifier:
    """A classifier saved by `train_classifier` (model.eqx with its model.json beside it)."""
    metadata = load_metadata(path)
    if metadata.get("kind") != "ODEClassifier":
        raise ValueError(f"{path} does not hold an ODEClassifier (kind {metadata.get('kind')!r})")
    like = build_classifier(metadata["settings"], key=jax.random.PRNGKey(0))
    return load_tree(path, like)


def classifier_settings(path: str | Path) -> dict:
    """The resolved settings a saved classifier was trained with."""
    return load_metadata(path)["settings"]


def evaluate_classifier(model: ODEClassifier, split: Split) -> dict:
    """Accuracy, loss and forward evaluation count on the train and test sets."""
    predict = eqx.filter_jit(binary_cross_entropy)
    metrics = {}
    for part, x, y in (("train", split.x_train, split.y_train), ("test", split.x_test, split.y_test)):
        tic = time.perf_counter()
        with counting() as counts:
            loss, aux = predict(model, (jnp.asarray(x), jnp.asarray(y)))
            loss = float(loss)
        metrics[f"{part}_loss"] = loss
        metrics[f"{part}_accuracy"] = float(aux["accuracy"])
        metrics[f"{part}_nfe_forward"] = int(aux["nfe_forward"])
        metrics[f"{part}_nfe_counted"] = counts.forward
        metrics[f"{part}_seconds"] = time.perf_counter() - tic
    return metrics


def summarise_history(history: list[dict]) -> dict:
    """Training cost from the per-step history: evaluation counts and time."""
    last = history[-min(100, len(history)) :]
    return {
        "train_steps": len(history),
        "final_train_loss": history[-1]["loss"],
        "mean_nfe_forward_last100": float(np.mean([r["nfe_forward"] for r in last])),
        "mean_nfe_backward_last100": float(np.mean([r["nfe_backward"] for r in last])),
        "median_step_seconds": float(np.median([r["seconds"] for r in history[1:] or history])),
        "train_seconds": float(np.sum([r["seconds"] for r in history])),
    }


def evaluate_run(model_path, data_path, history_path, out_dir, *, dataset: str, model_name: str) -> dict:
    """Evaluate a trained classifier, draw its figures and write metrics.json in out_dir."""
    from . import plots

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = load_classifier(model_path)
    split = Split.load(data_path)
    history = read_history(history_path)
    metrics = {"experiment": "classify", "dataset": dataset, "model": model_name}
    metrics.update(evaluate_classifier(model, split))
    metrics.update(summarise_history(history))
    metrics["settings"] = classifier_settings(model_path)
    metrics["device"] = jax_device()
    metrics["dtype"] = str(split.x_train.dtype)
    metrics["versions"] = versions()
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    title = f"{model_name.upper()} on {dataset}"
    plots.training_curves(history, out_dir / "loss.png", title=title)
    plots.classifier_dynamics(model, split, out_dir / "dynamics.png", title=title)
    plots.decision_regions(model, split, out_dir / "decision.png", title=title)
    return metrics
