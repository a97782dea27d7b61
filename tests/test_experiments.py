"""The experiment skeleton: typed settings, a toy experiment built through the shared layer end to end,
the tidy summary and `pyode compare`."""

import csv
import dataclasses
import json
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pyode import CorruptFile
from pyode.experiments import (
    FieldSettings,
    Section,
    SettingsError,
    SolveSettings,
    TrainSettings,
    classify,
    dynamics,
    image,
    load_settings,
    option,
    read_history,
    summarise_history,
    summary,
    train_run,
    write_metrics,
)
from pyode.experiments._sections import RUN_OPTIONS
from pyode.models import build_model, load_model, save_model
from pyode.train import OptaxStepper, TrainOptions, make_optimizer


@dataclasses.dataclass(frozen=True)
class ToyTrain(TrainSettings):
    steps: int = option(30, minimum=1)
    learning_rate: float = option(3e-2, above=0)


@dataclasses.dataclass(frozen=True)
class ToySettings(Section):
    """A toy experiment: learn the flow of dy/dt = -y at t = 1 with an MLP field."""

    seed: int = option(0, minimum=0)
    points: int = option(16, minimum=1)
    field: FieldSettings = option(FieldSettings(width=8))
    solve: SolveSettings = option(SolveSettings(solver="rk4", rtol=None, atol=None, steps=4))
    train: ToyTrain = option(ToyTrain())


def run_toy(settings: ToySettings, folder):
    """Data -> model -> train_run -> evaluation -> metrics, as every experiment module does."""
    rng = np.random.default_rng(settings.seed)
    x = rng.normal(size=(settings.points, 2)).astype(np.float32)
    data = folder / "data.npy"
    np.save(data, x)
    target = x * np.exp(-1.0)
    spec = {"dim": 2, **settings.field.to_dict()}
    field = build_model("mlp_field", spec, key=jax.random.PRNGKey(settings.seed))
    options = settings.train.options(steps=settings.train.steps, description="toy", progress=False)

    def loss(model, batch):
        from pyode import solve

        solution = solve(model, batch[0], t0=0.0, t1=1.0, **settings.solve.options(), throw=False)
        return jnp.mean((solution.final - batch[1]) ** 2), {
            "nfe_forward": solution.nfe_forward,
            "solver_status": solution.status,
        }

    stepper = OptaxStepper(field, loss, make_optimizer(options))

    def save_outputs(state, identity):
        save_model(
            folder / "model.npz",
            stepper.model(state.params),
            kind="mlp_field",
            spec=spec,
            metadata={"settings": settings.to_dict(), "identity": identity},
        )

    batch = (jnp.asarray(x), jnp.asarray(target))
    train_run(
        stepper,
        lambda step: batch,
        settings,
        folder,
        options=options,
        experiment="toy",
        inputs={"data": data},
        save_outputs=save_outputs,
    )
    model, metadata = load_model(folder / "model.npz")
    final, _ = loss(model, batch)
    metrics = {"final_mse": float(final), **summarise_history(read_history(folder / "history.jsonl"))}
    return write_metrics(
        folder / "metrics.json",
        experiment="toy",
        runs={"flow": metrics},
        settings={"flow": metadata["settings"]},
        units={"final_mse": "state units^2"},
    )


def test_a_toy_experiment_through_the_skeleton_end_to_end(tmp_path):
    settings = ToySettings().overlay({"train": {"steps": 40}})
    first = tmp_path / "a"
    first.mkdir()
    record = run_toy(settings, first)
    metrics = record["runs"][0]["metrics"]
    history = read_history(first / "history.jsonl")
    assert metrics["final_mse"] < history[0]["loss"] / 2
    assert metrics["train_steps"] == 40 and metrics["nfe_forward_per_step"] == 16
    assert not (first / "train-state").exists()
    second = tmp_path / "b"
    second.mkdir()
    run_toy(settings.overlay({"train": {"learning_rate": 1e-2}}), second)
    rows = summary.write_summary(
        [first / "metrics.json", second / "metrics.json"], tmp_path / "summary.csv", tmp_path / "summary.json"
    )
    assert {row["train.learning_rate"] for row in rows} == {"0.03", "0.01"}
    report = summary.compare(first, second)
    assert "toy flow  train.learning_rate: 0.03 -> 0.01" in report
    assert "final_mse:" in report and "%" in report
    assert "code that differs (0):" in report
    record = json.loads((second / "metrics.json").read_text())
    record["code"].update(commit="f" * 40, jax="9.9.9")
    (second / "metrics.json").write_text(json.dumps(record))
    report = summary.compare(first, second)
    code = report.index("code that differs (2):")
    assert code < report.index("settings that differ")
    assert f"  toy (1 run)  commit: {_short_commit(first)} -> ffffffffffff" in report
    assert "  toy (1 run)  jax: " in report and "-> '9.9.9'" in report
    del record["code"]
    (second / "metrics.json").write_text(json.dumps(record))
    assert "  toy (1 run)  code version: recorded -> not recorded" in summary.compare(first, second)


def _short_commit(folder) -> str:
    """The commit of a run's code as `pyode compare` shows it (None outside a git checkout)."""
    commit = json.loads((folder / "metrics.json").read_text())["code"]["commit"]
    return repr(None) if commit is None else commit[:12]


def test_settings_name_the_key_the_value_and_what_is_allowed():
    with pytest.raises(
        SettingsError, match=r"unknown key settings\.train\.lerning_rate; settings\.train takes"
    ):
        classify.resolve({"train": {"lerning_rate": 1.0}})
    with pytest.raises(
        SettingsError, match=r"settings\.train\.learning_rate is '1e-3' \(str\); expected a number"
    ):
        classify.resolve({"train": {"learning_rate": "1e-3"}})
    with pytest.raises(
        SettingsError, match=r"settings\.solve\.solver is 'rk5'; choose one of euler, .*dopri5"
    ):
        classify.resolve({"solve": {"solver": "rk5"}})
    with pytest.raises(SettingsError, match=r"settings\.model\.t1 is -1\.0; it must be greater than 0"):
        classify.resolve({"model": {"t1": -1}})
    with pytest.raises(SettingsError, match="settings.solve: .*needs tolerances"):
        classify.resolve({"solve": {"rtol": None, "atol": None}})
    with pytest.raises(SettingsError, match="batch_size is 100000; the training set has 1600 points"):
        classify.resolve({"train": {"batch_size": 100000}})


def test_a_fixed_step_clears_the_tolerances_and_back():
    fixed = classify.resolve({"solve": {"solver": "rk4", "steps": 4}}).solve
    assert (fixed.rtol, fixed.atol, fixed.steps) == (None, None, 4)
    adaptive = image.resolve({"solve": {"solver": "dopri5", "rtol": 1e-3, "atol": 1e-3}}).solve
    assert (adaptive.steps, adaptive.rtol) == (None, 1e-3)


def test_every_train_option_comes_from_a_setting_of_its_name_or_from_the_run():
    option_names = {field.name for field in dataclasses.fields(TrainOptions)}
    setting_names = {field.name for field in dataclasses.fields(TrainSettings)}
    declared_by_an_experiment = {"decay"}  # image.ImageTrain; the default elsewhere
    assert setting_names <= option_names
    assert option_names == setting_names | set(RUN_OPTIONS) | declared_by_an_experiment

    settings = dataclasses.replace(
        image.ImageTrain(), schedule="step", milestones=(1.0,), decay=0.5, gradient_clip=2.0, momentum=0.5
    )
    options = settings.options(steps=40, description="run", progress=False, milestones=[20])
    assert options == TrainOptions(
        steps=40,
        learning_rate=settings.learning_rate,
        schedule="step",
        milestones=(20,),
        decay=0.5,
        optimizer=settings.optimizer,
        momentum=0.5,
        weight_decay=settings.weight_decay,
        gradient_clip=2.0,
        checkpoint_every=settings.checkpoint_every,
        count_every=settings.count_every,
        divergence_factor=settings.divergence_factor,
        progress=False,
        description="run",
    )
    assert ToyTrain().options(steps=3, description="toy", progress=True).decay == TrainOptions(1, 1.0).decay


def test_plans_check_names_and_resolve_per_run_overrides():
    section = {
        "datasets": [{"name": "spiral", "train": {"steps": 7}}],
        "models": [{"name": "node", "augment": 0}, {"name": "anode", "augment": 1, "train": {"steps": 3}}],
    }
    runs = classify.plan(section, seed=5)
    assert runs["spiral/node"].train.steps == 7 and runs["spiral/anode"].train.steps == 3
    assert runs["spiral/anode"].model.augment == 1 and runs["spiral/node"].seed == 5
    with pytest.raises(SettingsError, match="node appear more than once"):
        classify.plan({**section, "models": section["models"] + [{"name": "node", "augment": 2}]}, seed=0)
    vdp = dynamics.plan({"systems": [{"name": "vdp", "fits": [{"name": "mlp", "field": "mlp"}]}]}, seed=1)
    assert vdp["vdp/mlp"].window.batch == 32 and vdp["vdp/mlp"].field.width == 64


def test_settings_files_name_the_file_and_the_yaml_line(tmp_path):
    (tmp_path / "bad.yaml").write_text("train:\n  steps: 3\n  learning_rate: [1,\n")
    with pytest.raises(SettingsError, match=r"bad\.yaml line \d: not valid YAML"):
        load_settings(classify.resolve, tmp_path / "bad.yaml")
    (tmp_path / "wrong.json").write_text(json.dumps({"field": {"widht": 3}}))
    with pytest.raises(SettingsError, match=r"wrong\.json: unknown key settings\.field\.widht"):
        load_settings(classify.resolve, tmp_path / "wrong.json")
    assert load_settings(classify.resolve, None) == classify.Settings()


def test_the_tidy_summary_has_one_row_per_run_and_metric(tmp_path):
    records = []
    for lr in (0.1, 0.2):
        folder = tmp_path / str(lr)
        folder.mkdir()
        write_metrics(
            folder / "metrics.json",
            experiment="toy",
            runs={"a": {"loss": lr, "seconds": 1.0}},
            settings={"a": {"train": {"learning_rate": lr}, "seed": 0}},
            units={"seconds": "s"},
        )
        records.append(folder / "metrics.json")
    summary.write_summary(records, tmp_path / "summary.csv", tmp_path / "summary.json")
    with open(tmp_path / "summary.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["metric"] for r in rows] == ["loss", "seconds", "loss", "seconds"]
    assert rows[1]["unit"] == "s" and "seed" not in rows[0] and rows[2]["train.learning_rate"] == "0.2"
    report = summary.compare(tmp_path / "0.1", tmp_path / "0.2")
    assert "loss: 0.1 -> 0.2 (+100.000%)" in report and "seconds" not in report


def test_a_csv_table_becomes_an_html_table_for_the_report(tmp_path):
    (tmp_path / "t.csv").write_text("run,value,unit,note\n<a>,0.123456789,s,x & y\nb,12,,\n")
    rows = summary.write_html_table(tmp_path / "t.csv", tmp_path / "t.html", title="Runs & more")
    page = (tmp_path / "t.html").read_text()
    assert rows == 2 and page.count("<tr>") == 3 and "<script" not in page
    assert "<title>Runs &amp; more</title>" in page and "<td>&lt;a&gt;</td>" in page
    assert '<td class="number">0.123457</td>' in page and '<td class="number">12</td>' in page
    assert "<td>x &amp; y</td>" in page
    # A column with a word in it (a skipped run's status) still shows its numbers rounded.
    (tmp_path / "m.csv").write_text("metric,value\nloss,0.0285287760198\nstatus,skipped\n")
    summary.write_html_table(tmp_path / "m.csv", tmp_path / "m.html", title="mixed")
    mixed = (tmp_path / "m.html").read_text()
    assert "<td>0.0285288</td>" in mixed and "<td>skipped</td>" in mixed
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ValueError, match="empty"):
        summary.write_html_table(tmp_path / "empty.csv", tmp_path / "e.html", title="none")


def _record(**changes) -> dict:
    record = {"experiment": "toy", "status": "ok", "runs": [{"run": "r", "metrics": {}, "settings": {}}]}
    return {**record, "units": {}, **changes}


@pytest.mark.parametrize(
    "content, problem",
    [
        ({}, "summary.json is not a pyode summary: runs is missing or not an array"),
        ([], "summary.json is not a pyode summary: it is an array, not an object"),
        ({"runs": {"toy": 1}}, "summary.json is not a pyode summary: runs is missing or not an array"),
        ({"runs": [3]}, "summary.json: runs[0] is not an experiment's record: it is a number, not an object"),
        (
            {"runs": [_record(units=None)]},
            "summary.json: runs[0] is not an experiment's record: units is missing or not an object",
        ),
        (
            {"runs": [_record(runs=[{"run": "r", "metrics": [1.0], "settings": {}}])]},
            "summary.json: runs[0] is not an experiment's record: runs[0].metrics is missing or not an "
            "object",
        ),
    ],
)
def test_compare_names_a_summary_of_the_wrong_shape_and_what_is_wrong(tmp_path, content, problem):
    """Before: an empty object raised KeyError, other shapes TypeError; now one line naming the file."""
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    (tmp_path / "b" / "summary.json").write_text(json.dumps({"runs": [_record()]}))
    (tmp_path / "a" / "summary.json").write_text(json.dumps(content))
    with pytest.raises(CorruptFile) as refused:
        summary.compare(tmp_path / "a", tmp_path / "b")
    assert str(refused.value) == f"{tmp_path / 'a'}/{problem}"


def test_compare_says_a_missing_path_does_not_exist(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "file").write_text("")
    with pytest.raises(FileNotFoundError, match=f"^{tmp_path / 'nope'} does not exist$"):
        summary.compare(tmp_path / "nope", tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="empty holds neither summary.json nor any metrics.json$"):
        summary.compare(tmp_path / "empty", tmp_path / "empty")
    with pytest.raises(ValueError, match="file is a file, not a result folder$"):
        summary.compare(tmp_path / "file", tmp_path / "empty")
    (tmp_path / "empty" / "metrics.json").write_text(json.dumps(_record(runs={})))
    with pytest.raises(
        CorruptFile, match="metrics.json is not an experiment's record: runs is missing or not an array$"
    ):
        summary.compare(tmp_path / "empty", tmp_path / "empty")


def test_a_history_that_is_empty_garbled_or_not_records_is_named_with_its_line(tmp_path):
    path = tmp_path / "history.jsonl"
    path.write_text("\n")
    with pytest.raises(CorruptFile, match=f"^{path} is empty: it holds no training step$"):
        read_history(path)
    step = json.dumps({"step": 0, "loss": 1.0, "seconds": 0.1})
    path.write_text(f"{step}\nnot json\n")
    with pytest.raises(CorruptFile, match=f"^{path} line 2 is not JSON \\(Expecting value\\)$"):
        read_history(path)
    path.write_text(f"{step}\n\n[1, 2]\n")
    with pytest.raises(
        CorruptFile, match=f"^{path} line 3 is not a training step's record: .* loss and seconds"
    ):
        read_history(path)
    path.write_text(f"{step}\n\n{step}\n")
    assert read_history(path) == [json.loads(step)] * 2


def test_pyode_compare_is_one_command(tmp_path):
    for name, value in (("a", 1.0), ("b", 1.5)):
        (tmp_path / name).mkdir()
        write_metrics(
            tmp_path / name / "metrics.json",
            experiment="toy",
            runs={"r": {"x": value}},
            settings={"r": {"lr": value}},
            units={},
        )
    done = subprocess.run(
        [sys.executable, "-m", "pyode.cli", "compare", str(tmp_path / "a"), str(tmp_path / "b")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "toy r  lr: 1.0 -> 1.5" in done.stdout and "x: 1.0 -> 1.5 (+50.000%)" in done.stdout
