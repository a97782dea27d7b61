"""The image ODE-Net experiment (Chen et al. 2018): data, training with per-epoch metrics, summary."""

import json
import resource
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from ._checkpoint import save_tree
from ._provenance import jax_device, versions
from ._solve import check_options
from ._train import TrainOptions, fit, read_history, start_state_dir
from .data._images import (
    MNIST_MIRRORS,
    ImageSplit,
    load_digits_split,
    normalise,
    prepare_mnist,
    random_crop,
)
from .models._image import make_image_classifier, parameter_count

DATASETS = ("digits", "mnist")
OPTIMIZERS = ("adam", "sgd")
SCHEDULES = ("constant", "step", "cosine")

DEFAULT_SETTINGS = {
    "seed": 42,
    "data": {"train_subset": None, "test_subset": None, "crop_padding": 0},
    "model": {
        "kind": "odenet",
        "width": 32,
        "norm": "group",
        "dropout": 0.0,
        "downsampling": "conv",
        "downsampling_layers": 2,
        "resnet_blocks": 1,
        "conv_gradient": "im2col",
    },
    "solve": {"solver": "rk4", "adjoint": "checkpoint", "steps": 4},
    "train": {
        "epochs": 10,
        "batch_size": 128,
        "optimizer": "adam",
        "learning_rate": 1e-3,
        "momentum": 0.9,
        "schedule": "cosine",
        "milestones": [],
        "decay": 0.1,
        "weight_decay": 0.0,
        "eval_batch_size": 1000,
    },
}


def resolve_image_settings(settings: dict) -> dict:
    """Defaults overlaid with `settings`, checked; an unknown section, key or value is a ValueError.

    `solve` is replaced whole when given (a fixed-step solve has `steps`, an adaptive one
    `rtol` and `atol`).
    """
    resolved = json.loads(json.dumps(DEFAULT_SETTINGS))
    for section, values in settings.items():
        if section not in resolved:
            raise ValueError(
                f"unknown image settings section {section!r}; expected one of {sorted(resolved)}"
            )
        if not isinstance(values, dict):
            resolved[section] = values
            continue
        if section == "solve":
            resolved["solve"] = dict(values)
            continue
        unknown = set(values) - set(resolved[section])
        if unknown:
            raise ValueError(f"unknown key(s) {sorted(unknown)} in image settings section {section!r}")
        resolved[section].update(values)
    train = resolved["train"]
    if train["optimizer"] not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {train['optimizer']!r}; choose one of {OPTIMIZERS}")
    if train["schedule"] not in SCHEDULES:
        raise ValueError(f"unknown schedule {train['schedule']!r}; choose one of {SCHEDULES}")
    if resolved["model"]["kind"] == "odenet":
        options = resolved["solve"]
        unknown = set(options) - {"solver", "adjoint", "rtol", "atol", "dt", "steps"}
        if unknown:
            raise ValueError(f"unknown key(s) {sorted(unknown)} in image settings section 'solve'")
        check_options(**options)
    return resolved


def write_image_data(dataset: str, settings: dict, out: str | Path) -> str:
    """Write the data set's split to `out` (.npz) and return where it came from.

    digits: `test_fraction`, `split_seed`. mnist: `folder`, `policy` (auto | require | off),
    `download_folder` (fetched into when `folder` is it), `mirrors`, `timeout`. MNIST that
    is skipped under `auto` is written as an .npz holding only the reason.
    """
    if dataset == "digits":
        split = load_digits_split(**settings)
        source = f"scikit-learn digits, stratified split with seed {settings.get('split_seed', 0)}"
    elif dataset == "mnist":
        split, source = prepare_mnist(
            settings.get("folder", "resources/mnist"),
            policy=settings.get("policy", "auto"),
            fetch_into=settings.get("download_folder", "resources/mnist"),
            mirrors=settings.get("mirrors", MNIST_MIRRORS),
            timeout=settings.get("timeout", 10.0),
        )
    else:
        raise ValueError(f"unknown image data set {dataset!r}; choose one of {DATASETS}")
    if split is None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        with open(out, "wb") as f:
            np.savez(f, skipped=source)
    else:
        split.save(out)
    return source


def load_image_data(path: str | Path) -> tuple[ImageSplit | None, str]:
    """A split written by `write_image_data`, or None and the reason it was skipped."""
    with np.load(path) as data:
        if "skipped" in data:
            return None, str(data["skipped"])
    return ImageSplit.load(path), ""


def _subset(x, y, size, seed):
    if size is None or size >= len(x):
        return x, y
    index = np.sort(np.random.default_rng(seed).choice(len(x), size, replace=False))
    return x[index], y[index]


def make_optimizer(train: dict, steps_per_epoch: int) -> optax.GradientTransformation:
    """SGD with momentum or Adam; constant, step (x decay at each milestone epoch) or cosine rate;
    weight decay (L2 added to the gradient for SGD, decoupled AdamW for Adam)."""
    total = train["epochs"] * steps_per_epoch
    rate = train["learning_rate"]
    if train["schedule"] == "cosine":
        rate = optax.cosine_decay_schedule(rate, total)
    elif train["schedule"] == "step":
        boundaries = {int(epoch * steps_per_epoch): train["decay"] for epoch in train["milestones"]}
        rate = optax.piecewise_constant_schedule(rate, boundaries)
    if train["optimizer"] == "adam":
        return optax.adamw(rate, weight_decay=train["weight_decay"])
    return optax.chain(
        optax.add_decayed_weights(train["weight_decay"]), optax.sgd(rate, momentum=train["momentum"])
    )


def cross_entropy(model, batch) -> tuple[jax.Array, dict]:
    """Mean softmax cross-entropy of (images, labels[, dropout key]), with accuracy and forward NFE."""
    x, y, *key = batch
    logits, nfe = model(x, key=key[0] if key else None)
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
    return loss, {"accuracy": jnp.mean(jnp.argmax(logits, -1) == y), "nfe_forward": nfe}


@eqx.filter_jit
def _evaluate_batch(model, x, y, weight):
    logits, nfe = model(x)
    losses = optax.softmax_cross_entropy_with_integer_labels(logits, y)
    return (losses * weight).sum(), ((jnp.argmax(logits, -1) == y) * weight).sum(), nfe


def evaluate_images(model, x: np.ndarray, y: np.ndarray, batch_size: int) -> dict:
    """Loss, accuracy and mean forward NFE per batch over normalised images (last batch padded)."""
    total_loss = correct = 0.0
    nfes = []
    for start in range(0, len(x), batch_size):
        xb, yb = x[start : start + batch_size], y[start : start + batch_size]
        weight = np.ones(batch_size, np.float32)
        if len(xb) < batch_size:
            pad = batch_size - len(xb)
            weight[len(xb) :] = 0.0
            xb = np.concatenate([xb, np.zeros((pad,) + xb.shape[1:], xb.dtype)])
            yb = np.concatenate([yb, np.zeros(pad, yb.dtype)])
        loss, right, nfe = _evaluate_batch(model, jnp.asarray(xb), jnp.asarray(yb), jnp.asarray(weight))
        total_loss += float(loss)
        correct += float(right)
        nfes.append(int(nfe))
    return {"loss": total_loss / len(x), "accuracy": correct / len(x), "nfe_forward": float(np.mean(nfes))}


def peak_memory() -> dict:
    """Peak resident memory of this process (getrusage ru_maxrss: host RAM, JAX runtime and
    compilation included) and, where the device reports it (GPUs), peak device memory in use."""
    found = {"peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    stats = jax.devices()[0].memory_stats() or {}
    if "peak_bytes_in_use" in stats:
        found["device_peak_mib"] = stats["peak_bytes_in_use"] / 2**20
    return found


def _run_description(settings: dict) -> dict:
    model = settings["model"]["kind"]
    if model != "odenet":
        return {"model": model, "solver": "", "adjoint": ""}
    return {"model": model, "solver": settings["solve"]["solver"], "adjoint": settings["solve"]["adjoint"]}


def train_image_classifier(data_path, settings: dict, out_dir, *, progress: bool = True) -> dict:
    """Train on the split at `data_path`, evaluating on the test set after every epoch.

    Writes to out_dir: metrics.json (final and per-epoch metrics, cost, settings),
    history.jsonl (per step) and model.eqx; training state lives in out_dir/train-state/
    (checkpointed every epoch), so an interrupted run resumes. A data set skipped for want
    of its files gives metrics.json with `status: skipped` and the reason.
    """
    settings = resolve_image_settings(settings)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    split, reason = load_image_data(data_path)
    description = _run_description(settings)
    if split is None:
        metrics = {"experiment": "image", "status": "skipped", "reason": reason, **description}
        (out_dir / "metrics.json").write_text(json.dumps({**metrics, "settings": settings}, indent=2))
        (out_dir / "history.jsonl").write_text("")
        return metrics
    seed, data, train = settings["seed"], settings["data"], settings["train"]
    raw_train, y_train = _subset(split.x_train, split.y_train, data["train_subset"], seed)
    raw_test, y_test = _subset(split.x_test, split.y_test, data["test_subset"], seed + 1)
    x_train = normalise(raw_train, split.name, split.pixel_max)
    x_test = normalise(raw_test, split.name, split.pixel_max)
    batch_size = min(train["batch_size"], len(x_train))
    steps_per_epoch = len(x_train) // batch_size
    dropout = settings["model"]["dropout"] > 0

    def batch_at(step: int):
        epoch, position = divmod(step, steps_per_epoch)
        order = np.random.default_rng([seed, epoch]).permutation(len(x_train))
        index = order[position * batch_size : (position + 1) * batch_size]
        if data["crop_padding"]:
            cropped = random_crop(
                raw_train[index], data["crop_padding"], np.random.default_rng([seed, step, 1])
            )
            images = normalise(cropped, split.name, split.pixel_max)
        else:
            images = x_train[index]
        batch = (jnp.asarray(images), jnp.asarray(y_train[index]))
        return batch + (jax.random.PRNGKey(seed + step),) if dropout else batch

    model = make_image_classifier(
        **settings["model"],
        channels=1,
        classes=int(max(split.y_train.max(), split.y_test.max())) + 1,
        solve_options=settings["solve"],
        key=jax.random.PRNGKey(seed),
    )
    state_dir = start_state_dir(out_dir / "train-state", settings)
    evaluations_path = state_dir / "epoch-evaluations.jsonl"

    def evaluate_after_epoch(steps_done: int, current) -> None:
        if steps_done % steps_per_epoch:
            return
        tic = time.perf_counter()
        test = evaluate_images(current, x_test, y_test, train["eval_batch_size"])
        record = {"epoch": steps_done // steps_per_epoch, **{f"test_{k}": v for k, v in test.items()}}
        record["eval_seconds"] = time.perf_counter() - tic
        with open(evaluations_path, "a") as f:
            f.write(json.dumps(record) + "\n")

    state_dir.mkdir(parents=True, exist_ok=True)
    options = TrainOptions(
        steps=train["epochs"] * steps_per_epoch,
        learning_rate=train["learning_rate"],
        checkpoint_every=steps_per_epoch,
        progress=progress,
        description=f"image {split.name} {out_dir.name}",
    )
    optimizer = make_optimizer(train, steps_per_epoch)
    model = fit(
        model, cross_entropy, batch_at, options, state_dir, optimizer=optimizer, on_step=evaluate_after_epoch
    )
    history = read_history(state_dir / "history.jsonl")
    epochs = per_epoch(history, read_history(evaluations_path), steps_per_epoch)
    save_tree(out_dir / "model.eqx", model, metadata={"kind": "ImageClassifier", "settings": settings})
    (out_dir / "history.jsonl").write_text((state_dir / "history.jsonl").read_text())
    last = epochs[-1]
    step_seconds = np.array([r["seconds"] for r in history])
    metrics = {
        "experiment": "image",
        "status": "ok",
        "dataset": split.name,
        **description,
        "parameters": parameter_count(model),
        "train_images": len(x_train),
        "test_images": len(x_test),
        "epochs": len(epochs),
        "steps_per_epoch": steps_per_epoch,
        "batch_size": batch_size,
        "final_test_accuracy": last["test_accuracy"],
        "final_test_loss": last["test_loss"],
        "final_train_accuracy": last["train_accuracy"],
        "final_train_loss": last["train_loss"],
        "mean_nfe_forward": float(np.mean([r["nfe_forward"] for r in history])),
        "mean_nfe_backward": float(np.mean([r["nfe_backward"] for r in history])),
        "test_nfe_forward": last["test_nfe_forward"],
        "seconds_per_epoch": float(np.mean([e["seconds"] for e in epochs])),
        "steady_seconds_per_epoch": float(
            np.median(step_seconds[1:] if len(step_seconds) > 1 else step_seconds)
        )
        * steps_per_epoch,
        "first_step_seconds": float(step_seconds[0]),
        "train_seconds": float(step_seconds.sum()),
        **peak_memory(),
        "per_epoch": epochs,
        "settings": settings,
        "device": jax_device(),
        "versions": versions(),
    }
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics


def per_epoch(history: list[dict], evaluations: list[dict], steps_per_epoch: int) -> list[dict]:
    """Per-epoch records: means of the training steps (loss, accuracy, NFE), their summed seconds,
    and the test evaluation after the epoch (the last one written for each epoch wins)."""
    tests = {record["epoch"]: record for record in evaluations}
    epochs = []
    for epoch in range(1, len(history) // steps_per_epoch + 1):
        steps = history[(epoch - 1) * steps_per_epoch : epoch * steps_per_epoch]
        record = {"epoch": epoch}
        for key in ("loss", "accuracy", "nfe_forward", "nfe_backward"):
            record[f"train_{key}" if key in ("loss", "accuracy") else key] = float(
                np.mean([s[key] for s in steps])
            )
        record["seconds"] = float(np.sum([s["seconds"] for s in steps]))
        record.update({k: v for k, v in tests[epoch].items() if k != "epoch"})
        epochs.append(record)
    return epochs


SUMMARY_COLUMNS = (
    "dataset",
    "model",
    "solver",
    "adjoint",
    "status",
    "parameters",
    "train_images",
    "epochs",
    "final_test_accuracy",
    "mean_nfe_forward",
    "mean_nfe_backward",
    "seconds_per_epoch",
    "steady_seconds_per_epoch",
    "peak_rss_mib",
    "device_peak_mib",
    "reason",
)


def run_label(metrics: dict) -> str:
    """odenet dopri5-backsolve, resnet, noode."""
    if metrics.get("solver"):
        return f"{metrics['model']} {metrics['solver']}-{metrics['adjoint']}"
    return metrics["model"]


def summarise_image_runs(metrics_paths, out_dir, *, dataset: str) -> list[dict]:
    """summary.csv, summary.md and the figures (accuracy, NFE, time per epoch) of one data set."""
    import csv

    from . import plots

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    runs = [json.loads(Path(path).read_text()) for path in metrics_paths]
    rows = [{column: run.get(column, "") for column in SUMMARY_COLUMNS} for run in runs]
    for row, run in zip(rows, runs):
        row["dataset"] = run.get("dataset", dataset)
    with open(out_dir / "summary.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=SUMMARY_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    (out_dir / "summary.md").write_text(_markdown_table(rows, dataset))
    finished = [run for run in runs if run.get("status") == "ok"]
    title = f"image ODE-Net study on {dataset}"
    plots.image_accuracy(finished, out_dir / "accuracy.png", title=title)
    plots.image_nfe(finished, out_dir / "nfe.png", title=title)
    plots.image_time(finished, out_dir / "time.png", title=title)
    return rows


def _markdown_table(rows: list[dict], dataset: str) -> str:
    header = (
        "| run | status | params | test acc | NFE fwd | NFE bwd | s/epoch | steady s/epoch | peak RSS MiB |"
    )
    lines = [f"# Image ODE-Net study: {dataset}", "", header, "|" + "---|" * 9]
    for row in rows:
        if row["status"] != "ok":
            lines.append(f"| {run_label(row)} | {row['status']} |" + " |" * 7)
            continue
        lines.append(
            f"| {run_label(row)} | ok | {row['parameters']} | {row['final_test_accuracy']:.4f} "
            f"| {row['mean_nfe_forward']:.1f} | {row['mean_nfe_backward']:.1f} "
            f"| {row['seconds_per_epoch']:.1f} | {row['steady_seconds_per_epoch']:.1f} "
            f"| {row['peak_rss_mib']:.0f} |"
        )
    notes = (
        "NFE: mean vector-field evaluations per training batch, forward from the solver's step "
        "statistics, backward counted as they ran. s/epoch: summed step times (the first epoch "
        "includes compilation); steady: median step time x steps per epoch. Peak RSS: the training "
        "process's maximum resident memory (getrusage), JAX runtime and compilation included."
    )
    reasons = sorted({row["reason"] for row in rows if row["status"] != "ok"})
    return "\n".join(lines + ["", notes, ""] + [f"Skipped: {reason}" for reason in reasons] + [""])
