"""The image ODE-Net (Chen et al. 2018): a solver x gradient-method study with ResNet and no-ODE baselines.

Data: scikit-learn's 8x8 digits, or MNIST or CIFAR-10 under their data policies
(`pyode.data.prepare_mnist`, `prepare_cifar10`). Model: downsampling -> ODE block (plain, or
augmented with zero channels: ANODE), residual blocks, or nothing -> classifier
(`pyode.models.make_image_classifier`, float32). Training: softmax cross-entropy over epochs,
the test set evaluated after each. Evaluation: accuracy, NFE, time per epoch and memory per
run; a table and three figures per data set.
"""

import csv
import dataclasses
import io
import resource
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .. import SOLVER_NAMES, load_arrays, save_arrays
from ..data import (
    CIFAR10_MIRRORS,
    DATA_POLICIES,
    MNIST_MIRRORS,
    ImageSplit,
    load_digits_split,
    normalise,
    pixel_statistics,
    prepare_cifar10,
    prepare_mnist,
    random_crop,
    random_flip,
)
from ..models import IMAGE_MODEL_KINDS
from ..train import SCHEDULES
from ._common import (
    HISTORY_UNITS,
    check_data_is_for,
    filter_jit,
    summarise_history,
    train_model,
    write_history,
    write_metrics,
)
from ._sections import SolveSettings, TrainSettings
from ._settings import (
    Section,
    SettingsError,
    data_part,
    listed,
    named_entries,
    option,
    section_keys,
)

if TYPE_CHECKING:
    import jax

EXPERIMENT = "image"
DATASETS = ("digits", "mnist", "cifar10")
# The data sets that are fetched, under a policy: their config key and how they are prepared.
FETCHED = {
    "mnist": ("resources/mnist", MNIST_MIRRORS, prepare_mnist),
    "cifar10": ("resources/cifar10", CIFAR10_MIRRORS, prepare_cifar10),
}
SOURCE_KEYS = {
    "digits": ("test_fraction", "split_seed"),
    **{name: ("folder", "policy", "download_folder", "mirrors", "timeout") for name in FETCHED},
}
"""What a data set's `source` may hold: the digits split's options, or where a fetched set comes from."""


@dataclasses.dataclass(frozen=True)
class FetchedSource(Section):
    """Where MNIST or CIFAR-10 comes from: the folder of its files, the policy when they are missing,
    the folder fetches go to, the mirrors tried in turn and each download attempt's timeout (s)."""

    folder: str = option("")
    policy: str = option("auto", choices=DATA_POLICIES)
    download_folder: str = option("")
    mirrors: tuple[str, ...] = option(())
    timeout: float = option(60.0, above=0)


@dataclasses.dataclass(frozen=True)
class ImageData(Section):
    """Random subsets of the training and test images (null: all) and the training images'
    augmentation: random crops (`crop_padding` pixels of zero padding) and horizontal flips."""

    train_subset: int | None = option(None, minimum=1)
    test_subset: int | None = option(None, minimum=1)
    crop_padding: int = option(0, minimum=0)
    horizontal_flip: bool = option(False)


@dataclasses.dataclass(frozen=True)
class ImageModel(Section):
    """The network (`pyode.models.make_image_classifier`): its kind, width and layout."""

    kind: str = option("odenet", choices=IMAGE_MODEL_KINDS)
    width: int = option(32, minimum=1)
    norm: str = option("group", choices=("group", "none"))
    dropout: float = option(0.0, minimum=0, maximum=0.99)
    downsampling: str = option("conv", choices=("conv", "residual"))
    downsampling_layers: int = option(2, minimum=0)
    resnet_blocks: int = option(1, minimum=1)
    conv_gradient: str = option("im2col", choices=("im2col", "lax"))
    augment: int = option(0, minimum=0)

    def validate(self, where: str) -> "ImageModel":
        if self.augment and self.kind != "odenet":
            raise SettingsError(
                f"{where}.augment is {self.augment}: it appends zero channels to an ODE block's state "
                f"(ANODE), and model.kind {self.kind!r} has no ODE block"
            )
        return self


@dataclasses.dataclass(frozen=True)
class ImageTrain(TrainSettings):
    """Epochs of shuffled batches; `milestones` (epochs) and `decay` shape the `step` schedule."""

    epochs: int = option(10, minimum=1)
    batch_size: int = option(128, minimum=1)
    learning_rate: float = option(1e-3, above=0)
    schedule: str = option("cosine", choices=SCHEDULES)
    milestones: tuple[float, ...] = option(())
    decay: float = option(0.1, above=0)
    eval_batch_size: int = option(1000, minimum=1)

    def validate(self, where: str) -> "ImageTrain":
        if self.milestones and self.schedule != "step":
            raise SettingsError(
                f"{where}.milestones is {list(self.milestones)}: only the step schedule has milestones, "
                f"and train.schedule is {self.schedule!r}"
            )
        if any(not 0 <= milestone < self.epochs for milestone in self.milestones):
            raise SettingsError(
                f"{where}.milestones is {list(self.milestones)}; each must lie in [0, {self.epochs}), "
                f"within train.epochs ({self.epochs})"
            )
        return self


@dataclasses.dataclass(frozen=True)
class DataSettings(Section):
    """A data set and where it comes from (`source`: the digits split, or MNIST's or CIFAR-10's
    folder and policy)."""

    dataset: str = option("digits", choices=DATASETS)
    source: dict = option({})

    def validate(self, where: str) -> "DataSettings":
        for key in self.source:
            if key not in SOURCE_KEYS[self.dataset]:
                raise SettingsError(
                    f"{where}.source.{key} has no effect on {self.dataset}; its source takes "
                    f"{', '.join(SOURCE_KEYS[self.dataset])}"
                )
        if self.dataset in FETCHED:
            FetchedSource().overlay(self.source, f"{where}.source")
        fraction = self.source.get("test_fraction")
        if "test_fraction" in self.source and not (type(fraction) in (int, float) and 0 < fraction < 1):
            raise SettingsError(
                f"{where}.source.test_fraction is {fraction!r}; give a number between 0 and 1"
            )
        return self


@dataclasses.dataclass(frozen=True)
class Settings(DataSettings):
    """One run: its data set, subsets, network, solve, training."""

    seed: int = option(42, minimum=0)
    data: ImageData = option(ImageData())
    model: ImageModel = option(ImageModel())
    solve: SolveSettings = option(SolveSettings(solver="rk4", rtol=None, atol=None, steps=4))
    train: ImageTrain = option(ImageTrain())

    def validate(self, where: str) -> "Settings":
        from ..data import DIGITS_TEST_FRACTION, image_split_sizes

        super().validate(where)
        train_images, test_images = image_split_sizes(
            self.dataset, test_fraction=self.source.get("test_fraction", DIGITS_TEST_FRACTION)
        )
        for key, subset, images, part in (
            ("train_subset", self.data.train_subset, train_images, "training"),
            ("test_subset", self.data.test_subset, test_images, "test"),
        ):
            if subset is not None and subset > images:
                raise SettingsError(
                    f"{where}.data.{key} is {subset}; the {self.dataset} {part} set has {images} images"
                )
        training = self.data.train_subset or train_images
        if self.train.batch_size > training:
            raise SettingsError(
                f"{where}.train.batch_size is {self.train.batch_size}; the training set has {training} images"
            )
        return self

    def run_name(self) -> str:
        """`odenet/{solver}-{adjoint}` for an ODE-Net, `anode{augment}/{solver}-{adjoint}` for an
        augmented one, the model kind for a baseline."""
        if self.model.kind == "odenet":
            prefix = f"anode{self.model.augment}" if self.model.augment else "odenet"
            return f"{prefix}/{self.solve.solver}-{self.solve.adjoint}"
        return self.model.kind


def resolve(changes: dict, where: str = "settings") -> Settings:
    """The defaults overlaid with `changes`, checked."""
    return Settings().overlay(changes, where)


def plan(section: dict, *, seed: int) -> dict[str, Settings]:
    """Every run of the config's `image` section, by name `dataset/run`, resolved and checked.

    Each data set runs the grid `augment` x `solvers` x `adjoints` (augment 0: the plain ODE
    block, k > 0: k zero channels appended to its state, ANODE; adaptive solvers with
    `solve.rtol` and `solve.atol`, the others with `solve.steps`) and the `baselines`.
    """
    section_keys(
        section,
        "image",
        required=("mnist", "cifar10", "solvers", "adjoints", "augment", "baselines", "solve", "datasets"),
    )
    solvers, adjoints = listed(section, "solvers", "image"), listed(section, "adjoints", "image")
    augments = listed(section, "augment", "image")
    baselines = listed(section, "baselines", "image", empty=True)
    solve = section_keys(section["solve"], "image.solve", required=("adaptive", "rtol", "atol", "steps"))
    unknown = [name for name in solve["adaptive"] if name not in SOLVER_NAMES]
    if unknown:
        raise SettingsError(
            f"image.solve.adaptive names {', '.join(map(str, unknown))}; "
            f"the solvers are {', '.join(SOLVER_NAMES)}"
        )
    for name in FETCHED:  # checked even when no data set reads it, as a typo there would wait for one
        section_keys(section[name], f"image.{name}", required=("policy", "folder", "mirrors", "timeout"))
        FetchedSource().overlay(source_settings(section, {"name": name}), f"image.{name}")
    runs = {}
    for entry in named_entries(section, "datasets", "image", keys=("split", "data", "model", "train")):
        dataset = entry["name"]
        if "split" in entry and dataset != "digits":
            raise SettingsError(
                f"image.datasets[{dataset}].split has no effect: only the digits are split by pyode; "
                f"{dataset} comes as its own training and test sets"
            )
        common = {
            "seed": seed,
            "dataset": dataset,
            "source": source_settings(section, entry),
            **{key: entry[key] for key in ("data", "model", "train") if key in entry},
        }
        variants = {
            f"{f'anode{augment}' if augment else 'odenet'}/{solver}-{adjoint}": {
                "model": {"kind": "odenet", "augment": augment},
                "solve": {"solver": solver, "adjoint": adjoint}
                | (
                    {"rtol": solve["rtol"], "atol": solve["atol"]}
                    if solver in solve["adaptive"]
                    else {"steps": solve["steps"]}
                ),
            }
            for augment in augments
            for solver in solvers
            for adjoint in adjoints
        }
        variants.update({baseline: {"model": {"kind": baseline, "augment": 0}} for baseline in baselines})
        for run, changes in variants.items():
            name = f"{dataset}/{run}"
            settings = Settings().overlay(common, f"image[{name}]")
            runs[name] = settings.overlay(
                {"model": {**settings.model.to_dict(), **changes["model"]}, **changes}, f"image[{name}]"
            )
    return runs


def source_settings(section: dict, entry: dict) -> dict:
    """Where a data set comes from: the digits split, or MNIST's or CIFAR-10's folder, policy
    and mirrors (the config's `image.mnist`, `image.cifar10`)."""
    if entry["name"] == "digits":
        return dict(entry.get("split", {}))
    fetched = section[entry["name"]]
    policy = fetched["policy"]
    return {
        "folder": fetched["folder"],
        "policy": "off" if policy is False else policy,
        "download_folder": FETCHED[entry["name"]][0],
        "mirrors": fetched["mirrors"],
        "timeout": fetched["timeout"],
    }


def resolve_data(changes: dict, where: str = "settings") -> DataSettings:
    """The data stage's defaults overlaid with `changes` (a run's other settings ignored), checked."""
    return DataSettings().overlay(data_part(changes, Settings, DataSettings), where)


def make_data(settings: DataSettings, out: str | Path) -> str:
    """Write the data set's split to `out` and return where it came from.

    A data set skipped under MNIST's or CIFAR-10's `auto` policy is written as a file holding
    the reason.
    """
    source = dict(settings.source)
    if settings.dataset == "digits":
        split = load_digits_split(**source)
        origin = f"scikit-learn digits, stratified split with seed {source.get('split_seed', 0)}"
    else:
        download_folder, mirrors, prepare = FETCHED[settings.dataset]
        split, origin = prepare(
            source.get("folder", download_folder),
            policy=source.get("policy", "auto"),
            fetch_into=source.get("download_folder", download_folder),
            mirrors=source.get("mirrors", mirrors),
            timeout=source.get("timeout", 10.0),
        )
    if split is None:
        save_arrays(out, {}, {"kind": "skipped", "reason": origin})
    else:
        split.save(out)
    return origin


def load_data(path: str | Path) -> tuple[ImageSplit | None, str]:
    """A split written by `make_data`, or None and the reason it was skipped."""
    _, metadata = load_arrays(path)
    if metadata.get("kind") == "skipped":
        return None, metadata["reason"]
    return ImageSplit.load(path), ""


def _subset(x, y, size, seed):
    if size is None:
        return x, y
    if size > len(x):
        raise SettingsError(f"a subset of {size} images was asked for; the data hold {len(x)}")
    index = np.sort(np.random.default_rng(seed).choice(len(x), size, replace=False))
    return x[index], y[index]


def cross_entropy(model, batch) -> tuple["jax.Array", dict]:
    """Mean softmax cross-entropy of (images, labels[, dropout key]), with accuracy and the solve's stats."""
    import jax.numpy as jnp
    import optax

    x, y, *key = batch
    logits, stats = model(x, key=key[0] if key else None)
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
    return loss, {"accuracy": jnp.mean(jnp.argmax(logits, -1) == y), **stats}


@filter_jit
def _evaluate_batch(model, x, y, weight):
    import jax.numpy as jnp
    import optax

    logits, stats = model(x)
    losses = optax.softmax_cross_entropy_with_integer_labels(logits, y)
    return (losses * weight).sum(), ((jnp.argmax(logits, -1) == y) * weight).sum(), stats


def evaluate_images(model, x: np.ndarray, y: np.ndarray, batch_size: int) -> dict:
    """Loss, accuracy and mean forward NFE per batch over normalised images (last batch padded)."""
    import jax.numpy as jnp

    from .. import status_message

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
        loss, right, stats = _evaluate_batch(model, jnp.asarray(xb), jnp.asarray(yb), jnp.asarray(weight))
        if int(stats["solver_status"]):
            raise RuntimeError(
                f"the solver failed on the test set: {status_message(int(stats['solver_status']))}"
            )
        total_loss += float(loss)
        correct += float(right)
        nfes.append(int(stats["nfe_forward"]))
    return {"loss": total_loss / len(x), "accuracy": correct / len(x), "nfe_forward": float(np.mean(nfes))}


def peak_memory() -> dict:
    """Peak resident memory of this process (getrusage ru_maxrss: host RAM, JAX runtime and
    compilation included) and, where the device reports it (GPUs), peak device memory in use."""
    import jax

    found = {"peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    stats = jax.devices()[0].memory_stats() or {}
    if "peak_bytes_in_use" in stats:
        found["device_peak_mib"] = stats["peak_bytes_in_use"] / 2**20
    return found


UNITS = {
    **HISTORY_UNITS,
    "parameters": "parameters",
    "train_images": "images",
    "test_images": "images",
    "epochs": "epochs",
    "steps_per_epoch": "steps",
    "batch_size": "images",
    "final_test_accuracy": "fraction",
    "final_test_loss": "",
    "final_train_accuracy": "fraction",
    "final_train_loss": "",
    "test_nfe_forward": "evaluations",
    "seconds_per_epoch": "s",
    "steady_seconds_per_epoch": "s",
    "peak_rss_mib": "MiB",
    "device_peak_mib": "MiB",
}


def train(data_path: str | Path, settings: Settings, out_dir: str | Path, *, progress: bool = True) -> dict:
    """Train on the split at `data_path`, evaluating on the test set after every epoch.

    Writes metrics.json (final and per-epoch metrics), history.jsonl and model.npz to
    `out_dir`. A data set skipped for want of its files gives metrics.json with status
    `skipped` and the reason.
    """
    import jax
    import jax.numpy as jnp

    from ..models import build_model, parameter_count

    out_dir = Path(out_dir)
    name = f"{settings.dataset}/{settings.run_name()}"
    split, reason = load_data(data_path)
    if split is None:
        write_history(out_dir / "history.jsonl", [])
        return write_metrics(
            out_dir / "metrics.json",
            experiment=EXPERIMENT,
            runs={name: {}},
            settings={name: settings.to_dict()},
            units=UNITS,
            status="skipped",
            reason=reason,
        )
    check_data_is_for(data_path, split.name, settings.dataset, "images")
    seed, data, train_settings = settings.seed, settings.data, settings.train
    raw_train, y_train = _subset(split.x_train, split.y_train, data.train_subset, seed)
    raw_test, y_test = _subset(split.x_test, split.y_test, data.test_subset, seed + 1)
    statistics = pixel_statistics(split)  # of the whole training set, per channel
    x_train = normalise(raw_train, split.name, split.pixel_max, statistics=statistics)
    x_test = normalise(raw_test, split.name, split.pixel_max, statistics=statistics)
    batch_size = train_settings.batch_size
    if batch_size > len(x_train):
        raise SettingsError(f"train.batch_size is {batch_size}; the training set has {len(x_train)} images")
    steps_per_epoch = len(x_train) // batch_size
    dropout = settings.model.dropout > 0

    def batch_at(step: int):
        epoch, position = divmod(step, steps_per_epoch)
        order = np.random.default_rng([seed, epoch]).permutation(len(x_train))
        index = order[position * batch_size : (position + 1) * batch_size]
        if data.crop_padding or data.horizontal_flip:
            raw = raw_train[index]
            if data.crop_padding:
                raw = random_crop(raw, data.crop_padding, np.random.default_rng([seed, step, 1]))
            if data.horizontal_flip:
                raw = random_flip(raw, np.random.default_rng([seed, step, 2]))
            images = normalise(raw, split.name, split.pixel_max, statistics=statistics)
        else:
            images = x_train[index]
        batch = (jnp.asarray(images), jnp.asarray(y_train[index]))
        return batch + (jax.random.PRNGKey(seed + step),) if dropout else batch

    def evaluate_after_epoch(steps_done: int, model) -> dict | None:
        if steps_done == 0 or steps_done % steps_per_epoch:
            return None
        tic = time.perf_counter()
        test = evaluate_images(model, x_test, y_test, train_settings.eval_batch_size)
        record = {"epoch": steps_done // steps_per_epoch, **{f"test_{k}": v for k, v in test.items()}}
        return record | {"eval_seconds": time.perf_counter() - tic}

    classes = int(max(split.y_train.max(), split.y_test.max())) + 1
    spec = {
        **settings.model.to_dict(),
        "channels": x_train.shape[-1],
        "classes": classes,
        "solve_options": {**settings.solve.options(), "throw": False},
    }
    model = build_model("image_classifier", spec, key=jax.random.PRNGKey(seed))
    options = train_settings.options(
        steps=train_settings.epochs * steps_per_epoch,
        description=f"image {name}",
        progress=progress,
        milestones=[int(epoch * steps_per_epoch) for epoch in train_settings.milestones],
    )
    outcome = {}

    def save_metrics(state, final):
        epochs = per_epoch(state.history, state.observations, steps_per_epoch)
        metrics = {
            **summarise_history(state.history),
            "parameters": parameter_count(final),
            "train_images": len(x_train),
            "test_images": len(x_test),
            "epochs": len(epochs),
            "steps_per_epoch": steps_per_epoch,
            "batch_size": batch_size,
            "final_test_accuracy": epochs[-1]["test_accuracy"],
            "final_test_loss": epochs[-1]["test_loss"],
            "final_train_accuracy": epochs[-1]["train_accuracy"],
            "final_train_loss": epochs[-1]["train_loss"],
            "test_nfe_forward": epochs[-1]["test_nfe_forward"],
            "seconds_per_epoch": float(np.mean([e["seconds"] for e in epochs])),
            **peak_memory(),
        }
        metrics["steady_seconds_per_epoch"] = metrics["median_step_seconds"] * steps_per_epoch
        outcome["record"] = write_metrics(
            out_dir / "metrics.json",
            experiment=EXPERIMENT,
            runs={name: metrics},
            settings={name: settings.to_dict()},
            units=UNITS,
            details={
                "per_epoch": epochs,
                "data": reason or split.name,
                "pixel_mean": list(statistics[0]),
                "pixel_std": list(statistics[1]),
            },
        )

    train_model(
        model,
        cross_entropy,
        batch_at,
        settings,
        out_dir,
        experiment=EXPERIMENT,
        kind="image_classifier",
        spec=spec,
        options=options,
        data_path=data_path,
        observe=evaluate_after_epoch,
        extra_outputs=save_metrics,
    )
    return outcome["record"]


def per_epoch(history: list[dict], evaluations: list[dict], steps_per_epoch: int) -> list[dict]:
    """Per-epoch records: means of the training steps (loss, accuracy, forward NFE, counted backward
    NFE), their summed seconds, and the test evaluation after the epoch."""
    tests = {record["epoch"]: record for record in evaluations}
    epochs = []
    for epoch in range(1, len(history) // steps_per_epoch + 1):
        steps = history[(epoch - 1) * steps_per_epoch : epoch * steps_per_epoch]
        counted = [s["nfe_backward"] for s in steps if "nfe_backward" in s]
        record = {
            "epoch": epoch,
            "train_loss": float(np.mean([s["loss"] for s in steps])),
            "train_accuracy": float(np.mean([s["accuracy"] for s in steps])),
            "nfe_forward": float(np.mean([s["nfe_forward"] for s in steps])),
            "nfe_backward": float(np.mean(counted)) if counted else None,
            "seconds": float(np.sum([s["seconds"] for s in steps])),
        }
        record.update({k: v for k, v in tests[epoch].items() if k != "epoch"})
        epochs.append(record)
    return epochs


SUMMARY_COLUMNS = (
    "run",
    "status",
    "parameters",
    "train_images",
    "epochs",
    "final_test_accuracy",
    "nfe_forward_per_step",
    "nfe_backward_per_step",
    "seconds_per_epoch",
    "steady_seconds_per_epoch",
    "peak_rss_mib",
    "device_peak_mib",
    "reason",
)


def summarise(records: list[dict], out_dir: str | Path, *, dataset: str) -> list[dict]:
    """summary.csv, summary.md and the figures (accuracy, NFE, time per epoch) of one data set."""
    from .. import atomic_write, plots

    out_dir = Path(out_dir)
    rows, finished = [], []
    for record in records:
        (entry,) = record["runs"]
        settings = Settings().overlay(entry["settings"])
        row = {"run": settings.run_name(), "status": record["status"], "reason": record.get("reason", "")}
        row.update({k: entry["metrics"].get(k) for k in SUMMARY_COLUMNS if k in entry["metrics"]})
        rows.append(row)
        if record["status"] == "ok":
            finished.append(_plot_run(settings, record))
    table = io.StringIO()
    writer = csv.DictWriter(table, fieldnames=SUMMARY_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(out_dir / "summary.csv", table.getvalue())
    atomic_write(out_dir / "summary.md", _markdown_table(rows, dataset))
    title = f"image ODE-Net study on {dataset}"
    plots.image_accuracy(finished, out_dir / "accuracy.png", title=title)
    plots.image_nfe(finished, out_dir / "nfe.png", title=title)
    plots.image_time(finished, out_dir / "time.png", title=title)
    return rows


def _plot_run(settings: Settings, record: dict) -> dict:
    """What the image figures take of a run: its model, augmentation, solver, gradient method and epochs."""
    odenet = settings.model.kind == "odenet"
    return {
        "model": settings.model.kind,
        "augment": settings.model.augment,
        "solver": settings.solve.solver if odenet else "",
        "adjoint": settings.solve.adjoint if odenet else "",
        "per_epoch": record["details"]["per_epoch"],
        **record["runs"][0]["metrics"],
    }


def _markdown_table(rows: list[dict], dataset: str) -> str:
    header = (
        "| run | status | params | test acc | NFE fwd | NFE bwd | s/epoch | steady s/epoch | peak RSS MiB |"
    )
    lines = [f"# Image ODE-Net study: {dataset}", "", header, "|" + "---|" * 9]
    for row in rows:
        if row["status"] != "ok":
            lines.append(f"| {row['run']} | {row['status']} |" + " |" * 7)
            continue
        lines.append(
            f"| {row['run']} | ok | {row['parameters']} | {row['final_test_accuracy']:.4f} "
            f"| {row['nfe_forward_per_step']:.1f} | {_number(row['nfe_backward_per_step'])} "
            f"| {row['seconds_per_epoch']:.1f} | {row['steady_seconds_per_epoch']:.1f} "
            f"| {row['peak_rss_mib']:.0f} |"
        )
    notes = (
        "NFE: mean vector-field evaluations per training batch over the last tenth of training, "
        "forward from the solver's step statistics, backward counted as they ran (every "
        "`count_every` steps). s/epoch: summed step times (the first epoch includes compilation); "
        "steady: median step time x steps per epoch. Peak RSS: the training process's maximum "
        "resident memory (getrusage), JAX runtime and compilation included."
    )
    reasons = sorted({row["reason"] for row in rows if row["status"] != "ok"})
    return "\n".join(lines + ["", notes, ""] + [f"Skipped: {reason}" for reason in reasons] + [""])


def _number(value) -> str:
    return "-" if value is None else f"{value:.1f}"


# The commands this experiment offers (docs/architecture.md, "Adding an experiment").
from ._registry import Command, Experiment, argument, data_command, print_metrics, train_command  # noqa: E402


def _summary_command(args) -> None:
    from ._common import load_records

    summarise(load_records(args.metrics), args.out_dir, dataset=args.dataset)


DECLARATION = Experiment(
    EXPERIMENT,
    commands=(
        data_command(
            EXPERIMENT,
            make_data,
            resolve_data,
            "MNIST (under its data policy) or digits, as one .npz",
            show=print,
        ),
        train_command(
            EXPERIMENT,
            train,
            resolve,
            "train an image ODE-Net or a baseline",
            out="run folder (metrics.json, model.npz)",
            show=print_metrics,
        ),
        Command(
            "image-summary",
            _summary_command,
            "table and figures of the image study",
            (
                argument("metrics", nargs="+", help="metrics.json files of the runs"),
                argument("--dataset", required=True),
                argument("--out-dir", required=True),
            ),
        ),
    ),
)
