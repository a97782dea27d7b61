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
