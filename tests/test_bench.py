"""The benchmark harness on tiny problems: identical problems in every library, counts, the results."""

import importlib.util
import json
from dataclasses import replace

import numpy as np
import pytest

from pyode.bench import (
    applicable_methods,
    main,
    make_problem,
    measure,
    network_seconds,
    prepare,
    sequence_problem,
    size_scaling,
    spiral_problem,
    training_steps,
)
from pyode.experiments import classify, dynamics

TORCH = importlib.util.find_spec("torchdiffeq") is not None
TORCHODE = importlib.util.find_spec("torchode") is not None
TINY = {
    "data": {"points_per_class": 20},
    "field": {"width": 8, "depth": 1, "activation": "tanh", "time_input": True},
    "train": {"batch_size": 8},
}
"""Changes to the classify experiment's defaults: a small spiral classifier on a small data set."""


def tiny_problems(**spiral_changes) -> dict:
    """A problems file's content, built as workflow/rules/bench.smk builds it: the classify
    experiment's spiral run (here a tiny one) and the dynamics experiment's nn_spiral fit."""
    spiral = classify.resolve({**TINY, **spiral_changes})
    sequence = dynamics.resolve({"system": "nn_spiral"})
    kind, spec = sequence.model()
    assert kind == "mlp_field"
    return {
        "spiral": {
            "seed": spiral.seed,
            "data": spiral.data,
            "model": spiral.model_spec(),
            "batch_size": spiral.train.batch_size,
        },
        "sequence": {
            "seed": sequence.seed,
            "data": sequence.data,
            "model": spec,
            "solve": sequence.solve.options(),
        },
    }


def tiny_spiral(**changes):
    problem = spiral_problem(tiny_problems()["spiral"], dtype="float64")
    return replace(problem, **changes)


def libraries():
    return ["pyode", "scratch"] + (["torchdiffeq"] if TORCH else []) + (["torchode"] if TORCHODE else [])


@pytest.mark.parametrize("name", ["spiral", "sequence"])
def test_every_library_solves_the_same_problem(name):
    """Same weights, data, loss and (tight) tolerance: pyode, torchdiffeq and scratch agree to 1e-6."""
    if name == "spiral":
        problem = tiny_spiral(rtol=1e-10, atol=1e-10)
    else:
        problem = sequence_problem(tiny_problems()["sequence"], points=6, dtype="float64")
        problem = replace(problem, rtol=1e-10, atol=1e-10)
    reference_loss, reference_grads = prepare(problem, "pyode", "checkpoint").gradient()
    for library in libraries()[1:]:
        method = {"torchdiffeq": "odeint", "torchode": "autodiff", "scratch": "adjoint"}[library]
        loss, grads = prepare(problem, library, method).gradient()
        assert loss == pytest.approx(reference_loss, rel=1e-6, abs=1e-6), library
        for (w, b), (w_ref, b_ref) in zip(grads, reference_grads, strict=True):
            np.testing.assert_allclose(w, w_ref, rtol=1e-5, atol=1e-8, err_msg=library)
            np.testing.assert_allclose(b, b_ref, rtol=1e-5, atol=1e-8, err_msg=library)


def test_problems_take_the_problems_settings_and_dtype():
    spiral = tiny_problems()["spiral"]
    problem = spiral_problem(spiral, dtype="float32", batch=5)
    assert problem.describe()["sizes"] == [3, 8, 2]
    assert problem.y0.shape == (5, 2) and problem.dtype == "float32"
    assert all(w.dtype == np.float32 for pair in problem.weights for w in pair)
    assert (problem.solver, problem.rtol, problem.atol) == ("dopri5", 1e-3, 1e-3)
    assert spiral_problem(spiral).batch == 8 and spiral_problem(spiral, width=6).width == 6
    fixed = spiral_problem(spiral, steps=16, t1=2.0)
    assert (fixed.solver, fixed.steps, fixed.rtol, float(fixed.ts[-1])) == ("rk4", 16, None, 2.0)
    assert ("pyode", "backsolve-seminorm") not in applicable_methods(fixed, ["pyode"])
    fixed_by_settings = spiral_problem(tiny_problems(solve={"solver": "rk4", "steps": 12})["spiral"])
    assert (fixed_by_settings.solver, fixed_by_settings.steps, fixed_by_settings.rtol) == ("rk4", 12, None)
    with pytest.raises(ValueError, match="augmentation"):
        spiral_problem(tiny_problems(model={"augment": 1})["spiral"])


def test_make_problem_reads_the_problems_file_and_gives_a_case():
    from pyode.reference import pyode_field

    problems = tiny_problems()
    spiral = make_problem("spiral", dtype="float64", settings=problems)
    assert spiral.describe() == spiral_problem(problems["spiral"], dtype="float64").describe()
    sequence = make_problem("sequence", dtype="float32", settings=problems)
    assert sequence.loss == "mse" and sequence.dtype == "float32" and sequence.sizes == [2, 16, 16, 2]
    assert (sequence.rtol, sequence.atol) == (1e-5, 1e-6)
    with pytest.raises(ValueError, match="unknown problem"):
        make_problem("ring", dtype="float32", settings=problems)
    with pytest.raises(ValueError, match="no 'sequence' entry"):
        make_problem("sequence", dtype="float32", settings={"spiral": problems["spiral"]})
    case = spiral.case()
    assert case.field["sizes"] == spiral.sizes and case.solvers["pyode"] == "dopri5"
    np.testing.assert_array_equal(case.y0, spiral.y0)
    for k, (w, b) in enumerate(spiral.weights):
        np.testing.assert_array_equal(case.params[f"weight_{k}"], w)
        np.testing.assert_array_equal(case.params[f"bias_{k}"], b)
    (w0, b0), (w1, b1) = spiral.weights  # tanh, t the last input of the first layer
    inputs = np.concatenate([spiral.y0, np.full((spiral.batch, 1), 0.5)], axis=1)
    expected = np.tanh(inputs @ w0.T + b0) @ w1.T + b1
    np.testing.assert_allclose(pyode_field(case)(0.5, spiral.y0), expected, rtol=1e-12)


def test_training_steps_record_counts_and_overhead_in_json():
    methods = ["pyode-checkpoint", "scratch-adjoint"]
    result = training_steps(
        tiny_spiral(), ["pyode", "scratch"], repetitions=2, warmup=1, min_sample_seconds=0.0, methods=methods
    )
    result = json.loads(json.dumps(result))
    assert result["kind"] == "steps" and result["problem"]["batch"] == 8
    assert {"cpu", "cores", "threads", "versions", "python"} <= set(result["machine"])
    names = [r["name"] for r in result["results"]]
    assert names == methods
    for entry in result["results"]:
        assert entry["status"] == "ran"
        assert entry["nfe_forward"] > 0 and entry["nfe_backward"] > 0
        assert entry["step"]["minimum"] <= entry["step"]["median"] <= entry["step"]["maximum"]
        assert entry["overhead"] > 0 and np.isfinite(entry["loss"])
    checkpoint = result["results"][0]
    # Backprop differentiates every evaluation but the two that chose the first step.
    assert checkpoint["nfe_forward"] - 2 == checkpoint["nfe_backward"]
    assert "step_counted" in checkpoint
    assert [p["other"] for p in result["speedups"]] == ["scratch-adjoint"]


def test_network_seconds_counts_what_each_method_evaluates():
    assert network_seconds(False, 20, 20, 1.0, 3.0) == 60.0
    assert network_seconds(True, 20, 30, 1.0, 3.0) == 110.0


def test_measure_reports_median_and_spread():
    timing = measure(lambda: None, repetitions=5, warmup=1, min_sample_seconds=0.001)
    assert timing.repetitions == 5 and len(timing.samples) == 5
    assert timing.minimum <= timing.q1 <= timing.median <= timing.q3 <= timing.maximum
    assert timing.calls_per_sample >= 1
    with pytest.raises(ValueError, match="repetitions"):
        measure(lambda: None, repetitions=0)


def test_cli_steps_and_plots(tmp_path):
    out = tmp_path / "steps.json"
    problems = tmp_path / "problems.json"
    problems.write_text(json.dumps(tiny_problems()))
    arguments = ["--problems", str(problems), "--repetitions", "1"]
    main(
        ["steps", "--problem", "spiral", "--dtype", "float64", "--libraries", "scratch", "--out", str(out)]
        + arguments
        + ["--warmup", "0", "--min-sample-seconds", "0"]
    )
    written = json.loads(out.read_text())
    assert written["results"][0]["name"] == "scratch-adjoint"
    assert written["problem"]["sizes"] == [3, 8, 2] and written["problem"]["batch"] == 8

    from pyode import plots

    steps_figure = plots.bench_speedup([written])
    length = {
        "points": [
            {
                "name": "pyode-checkpoint",
                "steps": s,
                "step": {"median": s * 1e-3},
                "rss_baseline_bytes": 0,
                "rss_peak_bytes": s * 2**20,
                "xla_memory": {"temp_size_in_bytes": s},
            }
            for s in (16, 32)
        ]
    }
    size = {
        "default_batch": 8,
        "default_width": 8,
        "points": [
            {"axis": a, "value": v, "name": "pyode-checkpoint", "step": {"median": v * 1e-3}}
            for a in ("batch", "width")
            for v in (4, 8)
        ],
    }
    for figure in (
        steps_figure,
        plots.bench_overhead([written]),
        plots.bench_length(length),
        plots.bench_size(size),
    ):
        plots.save_figure(figure, tmp_path / "figure.png")
    assert "scratch-adjoint" in plots.bench_table([written], [])


def test_length_and_size_points_hold_time_memory_and_counts():
    from pyode.bench._measure import length_point

    options = {
        "library": "scratch",
        "method": "adjoint",
        "steps": 4,
        "dt": 0.25,
        "repetitions": 1,
        "warmup": 0,
    }
    spiral = tiny_problems()["spiral"]
    point = length_point({**options, "spiral": spiral})
    assert point["name"] == "scratch-adjoint" and point["steps"] == 4
    assert point["nfe_forward"] == 16 and point["nfe_backward"] > 0
    assert point["rss_peak_bytes"] >= point["rss_baseline_bytes"] > 0

    result = size_scaling(
        [4, 8],
        [6],
        ["scratch-adjoint"],
        repetitions=1,
        warmup=0,
        min_sample_seconds=0.0,
        spiral=spiral,
    )
    assert [(p["axis"], p["value"]) for p in result["points"]] == [("batch", 4), ("batch", 8), ("width", 6)]
    assert result["default_width"] == 8 and all(p["nfe_forward"] > 0 for p in result["points"])


@pytest.mark.skipif(not TORCHODE, reason="torchode is not installed")
def test_torchode_compiled_step_is_skipped_with_the_compilers_reason(monkeypatch):
    """A compiler that fails here makes the compiled step `skipped` with one line, never a failure."""
    import torch

    def broken(*args, **kwargs):
        raise RuntimeError("no C++ compiler found\n(a long traceback)")

    monkeypatch.setattr(torch, "compile", broken)
    result = training_steps(
        tiny_spiral(),
        ["torchode"],
        repetitions=1,
        warmup=0,
        min_sample_seconds=0.0,
        methods=["torchode-autodiff-compiled"],
    )
    (entry,) = result["results"]
    assert entry["status"] == "skipped" and entry["name"] == "torchode-autodiff-compiled"
    assert entry["reason"].endswith(
        "torch.compile of torchode's solve failed: RuntimeError: no C++ compiler found"
    )
    fixed = tiny_spiral(rtol=None, atol=None, steps=4, solver="rk4")
    assert not [m for library, m in applicable_methods(fixed, ["torchode"])]


@pytest.mark.slow
@pytest.mark.skipif(not TORCHODE, reason="torchode is not installed")
def test_torchode_compiled_step_agrees_with_the_eager_one():
    """torch.compile of torchode's solve (minutes to compile cold) gives the eager step's gradient."""
    problem = tiny_spiral(rtol=1e-8, atol=1e-8)
    eager = prepare(problem, "torchode", "autodiff")
    compiled = prepare(problem, "torchode", "autodiff-compiled")
    loss, grads = eager.gradient()
    compiled_loss, compiled_grads = compiled.gradient()
    assert compiled_loss == pytest.approx(loss, rel=1e-10)
    for (w, b), (w_c, b_c) in zip(grads, compiled_grads, strict=True):
        np.testing.assert_allclose(w_c, w, rtol=1e-8, atol=1e-12)
        np.testing.assert_allclose(b_c, b, rtol=1e-8, atol=1e-12)
    assert compiled.count() == eager.count()


def tiny_precision_settings() -> dict:
    return {
        "vdp": {"mu": 2.0, "batch": 3, "times": 6},
        "neural_ode": {"batch": 3, "width": 8, "t1": 5.0, "times": 4},
        "spiral": tiny_problems()["spiral"],
    }


def test_work_precision_on_a_tiny_grid_writes_json_figure_and_table(tmp_path):
    """Two tolerances on a small Van der Pol problem: every library-solver runs, its error falls by
    more than 100x from rtol 1e-3 to 1e-7 while its NFE grows, and the JSON, figure and table are made."""
    from pyode import plots
    from pyode.bench import precision_problem, work_precision

    solvers = {"pyode": ["dopri5"], "scipy": ["RK45"], "scratch": ["dopri5"]}
    if TORCH:
        solvers["torchdiffeq"] = ["dopri5"]
    if TORCHODE:
        solvers["torchode"] = ["dopri5"]
    problem = precision_problem("vdp", tiny_precision_settings())
    result = work_precision(problem, solvers, [1e-7, 1e-3], repetitions=1, warmup=0, check_reference=False)
    result = json.loads(json.dumps(result))
    assert result["kind"] == "work_precision" and result["rtols"] == [1e-3, 1e-7]
    assert result["problem"]["batch"] == 3 and result["problem"]["save_times"] == 6
    assert "check_difference" not in result["reference"] and result["atol"] == "atol = 1 x rtol"
    names = {f"{library}-{solver}" for library, names in solvers.items() for solver in names}
    assert {p["name"] for p in result["points"]} == names
    for name in names:
        loose, tight = (p for p in result["points"] if p["name"] == name)
        assert loose["status"] == tight["status"] == "ran", (loose, tight)
        assert (loose["rtol"], tight["rtol"], tight["atol"]) == (1e-3, 1e-7, 1e-7)
        assert tight["error"] < loose["error"] / 100, name
        assert tight["nfe"] > loose["nfe"] > 0 and tight["seconds"] > 0, name
    (tmp_path / "vdp.json").write_text(json.dumps(result))
    plots.save_figure(plots.bench_work_precision(result), tmp_path / "vdp.png")
    assert (tmp_path / "vdp.png").stat().st_size > 0
    main(["precision-table", "--results", str(tmp_path / "vdp.json"), "--out", str(tmp_path / "wp.md")])
    table = (tmp_path / "wp.md").read_text()
    assert "rtol 1e-07" in table and all(f"| {name} |" in table for name in names)


def test_work_precision_records_failures_and_skips_what_cannot_run(monkeypatch):
    from pyode.bench import _precision, precision_problem, work_precision
    from pyode.reference import get_library

    def missing(case, solver, **options):
        raise ImportError("No module named 'torchode'")

    monkeypatch.setattr(_precision, "MAX_STEPS", 5)
    monkeypatch.setattr(get_library("torchode"), "precision_runner", missing)
    problem = precision_problem("vdp", tiny_precision_settings())
    result = work_precision(
        problem,
        {"scratch": ["dopri5"], "torchode": ["tsit5"]},
        [1e-3, 1e-5],
        repetitions=1,
        warmup=0,
        check_reference=False,
    )
    scratch = [p for p in result["points"] if p["library"] == "scratch"]
    assert [p["status"] for p in scratch] == ["failed", "skipped"]
    assert "more than 5 steps" in scratch[0]["reason"] and scratch[1]["reason"] == "failed at rtol 0.001"
    torchode = [p for p in result["points"] if p["library"] == "torchode"]
    assert [p["status"] for p in torchode] == ["skipped", "skipped"]
    assert torchode[0]["reason"] == "ImportError: No module named 'torchode'"
    with pytest.raises(ValueError, match="pyode has no adaptive solver 'rk4'"):
        work_precision(problem, {"pyode": ["rk4"]}, [1e-3])


def test_work_precision_refuses_to_measure_nothing_or_against_a_looser_reference():
    """Checked before the reference solve: no solver at all, or a tolerance at or below the reference's."""
    from pyode.bench import precision_problem, work_precision

    problem = precision_problem("vdp", tiny_precision_settings())
    with pytest.raises(ValueError, match="^every library's list is empty; name at least one solver$"):
        work_precision(problem, {"pyode": [], "scipy": []}, [1e-3])
    with pytest.raises(
        ValueError,
        match=r"^rtols include 1e-14, which is not looser than reference_tolerance \(1e-14\); "
        r"every rtol must be greater than the reference's$",
    ):
        work_precision(problem, {"scipy": ["RK45"]}, [1e-3, 1e-14], reference_tolerance=1e-14)
    with pytest.raises(
        ValueError,
        match=r"^atol_ratio x rtols reach 1e-15 \(0\.001 x 1e-12\), which is not looser than "
        r"reference_tolerance \(1e-14\); every atol must be greater than the reference's$",
    ):
        work_precision(
            problem, {"scipy": ["RK45"]}, [1e-3, 1e-12], atol_ratio=1e-3, reference_tolerance=1e-14
        )


def test_work_precision_problems_are_the_published_ones():
    """Van der Pol on its limit cycle (period 7.6299 for mu = 2), over one period; Diffrax's small
    neural ODE with eqx.nn.MLP's weights (PRNGKey(0)) and its final tanh in every library."""
    import equinox as eqx
    import jax
    import torch

    from pyode.bench import precision_problem
    from pyode.reference import get_library

    settings = tiny_precision_settings()
    vdp = precision_problem("vdp", settings)
    period = vdp.describe()["period"]
    assert period == pytest.approx(7.6299, abs=2e-4)
    y0 = vdp.case.y0
    assert y0[0, 0] == pytest.approx(2.0199, abs=2e-4) and abs(y0[0, 1]) < 1e-8
    assert np.all(np.abs(y0[1:, 0]) < y0[0, 0]) and vdp.case.ts[-1] == period

    neural = precision_problem("neural_ode", settings)
    with jax.enable_x64(False):
        mlp = eqx.nn.MLP(
            4, 4, 8, 1, activation=jax.nn.softplus, final_activation=jax.nn.tanh, key=jax.random.PRNGKey(0)
        )
        expected_y0 = np.asarray(jax.random.normal(jax.random.PRNGKey(1), (3, 4)))
    np.testing.assert_array_equal(neural.case.y0, expected_y0)
    y = neural.case.y0
    expected = np.asarray(jax.vmap(mlp)(y.astype(np.float32)), np.float64)

    def field(library):
        return get_library(library).field(neural.case, final=neural.final)

    got = {
        "pyode": np.asarray(field("pyode")(0.0, y)),
        "torch": field("torchdiffeq")(torch.zeros(3, 1, dtype=torch.float64), torch.tensor(y))
        .detach()
        .numpy(),
        "numpy": field("scratch")(0.0, y),
    }
    for library, value in got.items():
        np.testing.assert_allclose(value, expected, rtol=1e-5, atol=1e-6, err_msg=library)
    np.testing.assert_allclose(got["torch"], got["pyode"], rtol=1e-13, err_msg="float64 libraries")
    np.testing.assert_allclose(got["numpy"], got["pyode"], rtol=1e-13, err_msg="float64 libraries")

    spiral = precision_problem("spiral", settings)
    bench_spiral = spiral_problem(settings["spiral"], dtype="float64")
    np.testing.assert_array_equal(spiral.case.params["weight_0"], bench_spiral.weights[0][0])
    assert spiral.case.y0.dtype == np.float64 and spiral.describe()["time_input"]


def test_sde_batch_points_hold_time_per_step_and_skip_what_would_not_fit(tmp_path):
    """Diffrax's ItoMilstein on the whole batch builds a paths^3 array: past the memory limit (10 kB here,
    12^3 float64 numbers are 13.8 kB) its point is skipped with the size; pyode's Milstein is timed."""
    from pyode.bench import main

    out = tmp_path / "sde_batch.json"
    main(
        ["sde-batch", "--paths", "3", "12", "--methods", "milstein", "diffrax-milstein", "--steps", "2"]
        + ["--repetitions", "1", "--warmup", "0", "--min-sample-seconds", "0", "--memory-limit-gib"]
        + [str(10_000 / 2**30), "--out", str(out)]
    )
    points = {(p["method"], p["paths"]): p for p in json.loads(out.read_text())["points"]}
    assert (
        points["milstein", 12]["largest_array_bytes"] < 10_000
        and points["milstein", 12]["step"]["median"] > 0
    )
    assert points["diffrax-milstein", 3]["step"]["median"] > 0
    assert "its largest array would take" in points["diffrax-milstein", 12]["skipped"]
