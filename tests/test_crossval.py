"""Cases from the config and from trained models, the comparison rule, the summary and the CLI."""

import csv
import json

import jax
import numpy as np
import pytest

from pyode.crossval import (
    IMPLICIT_SOLVERS,
    allowed_error,
    case_from_classifier,
    compare_results,
    disagreeing_backends,
    main,
    make_case,
    worst_errors,
    write_case,
    write_summary,
)
from pyode.experiments import classify
from pyode.models import build_model, save_model
from pyode.reference import Result, Skipped, load_case, load_result, pyode_field

jax.config.update("jax_enable_x64", True)

MLP_SPEC = {
    "field": {"kind": "mlp", "dim": 3, "width": 5, "depth": 2, "activation": "softplus", "time_input": True}
}


def test_cases_are_seeded_and_shaped_by_the_config():
    a = make_case("c", {**MLP_SPEC, "batch": 2, "times": 6, "t1": 2.0}, seed=1, rtol=1e-6, atol=1e-7)
    b = make_case("c", {**MLP_SPEC, "batch": 2, "times": 6, "t1": 2.0}, seed=1, rtol=1e-6, atol=1e-7)
    other = make_case("d", {**MLP_SPEC, "batch": 2, "times": 6, "t1": 2.0}, seed=1, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(a.params["weight_0"], b.params["weight_0"])
    assert not np.array_equal(a.y0, other.y0)
    assert a.field["sizes"] == [4, 5, 5, 3] and a.y0.shape == (2, 3) and a.cotangent.shape == (6, 2, 3)
    assert a.ts[0] == 0.0 and a.ts[-1] == 2.0 and (a.rtol, a.atol) == (1e-6, 1e-7)


def test_stiff_case_chooses_implicit_solvers():
    case = make_case("v", {"field": {"kind": "vdp", "mu": 10.0}, "stiff": True}, seed=0, rtol=1e-6, atol=1e-6)
    assert case.solvers == IMPLICIT_SOLVERS and case.params["theta"].tolist() == [10.0]


def tiny_classifier_settings(augment: int, **changes):
    """The classify experiment's settings for a small (A)NODE on a small spiral."""
    return classify.resolve(
        {
            "data": {"points_per_class": 20},
            "model": {"augment": augment},
            "field": {"width": 6, "depth": 1, "time_input": True},
            "train": {"batch_size": 8},
            **changes,
        }
    )


def assert_case_holds_the_classifier(case, classifier, batch: int, augment: int):
    field = classifier.ode.field
    for k, (weight, bias) in enumerate(field.weights()):
        np.testing.assert_array_equal(case.params[f"weight_{k}"], np.asarray(weight))
        np.testing.assert_array_equal(case.params[f"bias_{k}"], np.asarray(bias))
    assert case.y0.shape == (batch, 2 + augment) and case.ts[-1] == classifier.ode.t1
    if augment:
        assert np.all(case.y0[:, -1] == 0)
    t, y = 0.4, case.y0
    np.testing.assert_allclose(pyode_field(case)(t, y), field(t, jax.numpy.asarray(y)), rtol=1e-6)


@pytest.mark.parametrize("augment", [0, 1])
def test_case_exported_from_a_classifier_holds_its_field(augment, tmp_path):
    """A classifier saved as the classify experiment saves it (model.npz), exported by `write_case`."""
    spec = tiny_classifier_settings(augment).model_spec()
    classifier = build_model("classifier", spec, key=jax.random.PRNGKey(3))
    save_model(tmp_path / "model.npz", classifier, kind="classifier", spec=spec)
    entry = {"field": {"kind": "classifier", "model": str(tmp_path / "model.npz")}, "batch": 5}
    written = write_case("spiral", entry, tmp_path / "spiral.npz", seed=0, rtol=1e-9, atol=1e-9)
    case = load_case(tmp_path / "spiral.npz")
    assert case.name == "spiral" and (case.rtol, case.atol) == (1e-9, 1e-9)
    assert str(tmp_path / "model.npz") in case.source
    np.testing.assert_array_equal(case.y0, written.y0)
    assert_case_holds_the_classifier(case, classifier, 5, augment)
    direct = case_from_classifier("spiral", classifier, {"batch": 5}, seed=0, rtol=1e-9, atol=1e-9)
    np.testing.assert_array_equal(direct.y0, case.y0)


def test_exporting_a_model_that_is_no_classifier_is_refused(tmp_path):
    spec = {"dim": 2, "width": 4, "depth": 1, "activation": "tanh", "time_input": False}
    save_model(
        tmp_path / "field.npz",
        build_model("mlp_field", spec, key=jax.random.PRNGKey(0)),
        kind="mlp_field",
        spec=spec,
    )
    entry = {"field": {"kind": "classifier", "model": str(tmp_path / "field.npz")}}
    with pytest.raises(ValueError, match="not a classifier"):
        write_case("f", entry, tmp_path / "f.npz", seed=0, rtol=1e-6, atol=1e-6)
    assert not (tmp_path / "f.npz").exists()


def test_a_generated_second_order_case_holds_position_and_velocity():
    field = {"kind": "sonode", "dim": 2, "width": 5, "depth": 1, "activation": "tanh", "time_input": True}
    case = make_case("s", {"field": field, "batch": 3, "times": 4}, seed=2, rtol=1e-8, atol=1e-8)
    assert case.field == {"kind": "sonode", "sizes": [5, 5, 2], "activation": "tanh", "time_input": True}
    assert case.y0.shape == (3, 4) and case.cotangent.shape == (4, 3, 4)
    assert case.params["weight_1"].shape == (2, 5)


SOLVE = {"solver": "rk4", "steps": 4}


@pytest.mark.parametrize("kind", ["latent_ode", "sonode", "anode"])
def test_trained_latent_and_position_models_export_their_fields(kind, tmp_path):
    """A `trained` case holds the model's field (an mlp, or a sonode for a SONODE) and lifts its states
    as the model does."""
    import jax.numpy as jnp

    from pyode.models import MLPField, SecondOrderField

    if kind == "latent_ode":
        model_kind, spec = "latent_ode", {"latent": 3, "field_width": 7, "solve_options": SOLVE}
    else:
        model_kind, spec = "position_ode", {"kind": kind, "dim": 1, "width": 6, "solve_options": SOLVE}
    model = build_model(model_kind, spec, key=jax.random.PRNGKey(1))
    save_model(tmp_path / "model.npz", model, kind=model_kind, spec=spec)
    entry = {
        "field": {"kind": "trained", "model": str(tmp_path / "model.npz")},
        "batch": 4,
        "times": 3,
        "t1": 2.0,
    }
    case = write_case(kind, entry, tmp_path / "case.npz", seed=0, rtol=1e-9, atol=1e-9)
    field = pyode_field(load_case(tmp_path / "case.npz"))
    exported = model.field.acceleration if kind == "sonode" else model.field
    assert isinstance(field, SecondOrderField if kind == "sonode" else MLPField)
    assert case.field["kind"] == ("sonode" if kind == "sonode" else "mlp") and case.ts[-1] == 2.0
    inner = field.acceleration if kind == "sonode" else field
    for (w, b), (w_model, b_model) in zip(inner.weights(), exported.weights(), strict=True):
        np.testing.assert_array_equal(w, np.asarray(w_model, np.float64))
        np.testing.assert_array_equal(b, np.asarray(b_model, np.float64))
    if kind != "latent_ode":
        lifted = model.initial_state(jnp.asarray(case.y0[:, :1], jnp.float32))
        np.testing.assert_allclose(case.y0, np.asarray(lifted, np.float64), rtol=1e-6)
        assert case.y0.shape == (4, 2)


def test_command_line_exports_a_classifier_trained_by_the_classify_experiment(tmp_path):
    from pyode.models import load_model

    settings = tiny_classifier_settings(1, train={"steps": 1, "batch_size": 8})
    classify.make_data(settings, tmp_path / "data.npz")
    classify.train(tmp_path / "data.npz", settings, tmp_path / "run", progress=False)
    model_path = tmp_path / "run" / "model.npz"
    case_settings = {
        "name": "spiral_anode",
        "spec": {"field": {"kind": "classifier", "model": str(model_path)}, "batch": 4, "times": 3},
        "seed": 1,
        "rtol": 1e-7,
        "atol": 1e-8,
    }
    (tmp_path / "case.json").write_text(json.dumps(case_settings))
    main(["make-case", "--settings", str(tmp_path / "case.json"), "--out", str(tmp_path / "case.npz")])
    case = load_case(tmp_path / "case.npz")
    assert case.name == "spiral_anode" and (case.rtol, case.atol) == (1e-7, 1e-8) and len(case.ts) == 3
    classifier, _ = load_model(model_path)
    assert_case_holds_the_classifier(case, classifier, 4, 1)


def fake_result(backend, offset, rtol=1e-6):
    return Result(
        backend=backend,
        case="c",
        trajectory=np.ones((3, 2, 2)) + offset,
        grad_y0=np.full((2, 2), 2.0),
        grad_params={"weight_0": np.ones((2, 2)), "bias_0": np.zeros(2)},
        nfe_forward=10,
        nfe_backward=20,
        wall_time=0.1,
        method="fake",
        rtol=rtol,
        atol=rtol,
    )


def test_comparison_rule_passes_close_results_and_fails_far_ones():
    close = allowed_error(2.0, 1e-6, 1e-6) * 0.5
    results = [
        fake_result("a", 0.0),
        fake_result("b", close),
        fake_result("c", 1e-2),
        Skipped("d", "c", "no d here"),
    ]
    rows = compare_results(results)
    assert {(r.backend_a, r.backend_b) for r in rows} == {("a", "b"), ("a", "c"), ("b", "c")}
    verdict = {(r.backend_a, r.backend_b, r.quantity): r.passed for r in rows}
    assert verdict[("a", "b", "trajectory")] and not verdict[("a", "c", "trajectory")]
    assert verdict[("a", "c", "grad_y0")]
    assert allowed_error(1.0, 1e-10, 1e-10) == pytest.approx(2e-7 + 1000 * np.finfo(float).eps)


def test_summary_names_the_backends_every_failure_involves():
    results = [
        fake_result("a", 0.0),
        fake_result("b", 1e-12),
        fake_result("c", 2e-12),
        fake_result("odd", 0.5),
    ]
    pairs = compare_results(results)
    assert disagreeing_backends(pairs) == {"c": ["odd"]}
    text = "\n".join(worst_errors(pairs))
    assert "every failing comparison involves odd" in text
    assert "trajectory: 2.0e-12 (c, a against c" in text


def test_summary_says_what_ran_and_what_was_skipped(tmp_path):
    results = [
        fake_result("a", 0.0),
        fake_result("b", 0.0),
        Skipped("diffeqflux-gauss", "c", "no Julia found"),
        Skipped("pyode-backsolve", "c", "EquinoxRuntimeError: max steps", status="failed"),
    ]
    write_summary(results, tmp_path)
    text = (tmp_path / "summary.md").read_text()
    assert "Backends that ran: a, b." in text
    assert "**diffeqflux-gauss** on c: no Julia found" in text
    assert "Failed" in text and "EquinoxRuntimeError" in text
    assert "3 of 3 comparisons pass" in text  # only a/b compared; skipped never counted
    with open(tmp_path / "backends.csv") as f:
        statuses = {row["backend"]: row["status"] for row in csv.DictReader(f)}
    assert statuses == {"a": "ran", "b": "ran", "diffeqflux-gauss": "skipped", "pyode-backsolve": "failed"}


def test_figures_draw_from_the_tables(tmp_path):
    from pyode.crossval._compare import QUANTITY_NAMES
    from pyode.plots import crossval_error_sweep, crossval_nfe, save_figure

    rows = [
        {"backend_a": "a", "backend_b": "b", "quantity": q, "rtol": r, "max_rel": r / 10}
        for q in ("trajectory", "grad_y0", "grad_theta")
        for r in (1e-3, 1e-6, 1e-9)
    ]
    sweep = crossval_error_sweep(rows, QUANTITY_NAMES)
    assert [ax.get_title() for ax in sweep.axes] == list(QUANTITY_NAMES.values())
    save_figure(sweep, tmp_path / "sweep.png")
    backends = [
        {"case": "c", "backend": "a", "status": "ran", "nfe_forward": "10", "nfe_backward": "30"},
        {"case": "c", "backend": "b", "status": "skipped", "nfe_forward": "", "nfe_backward": ""},
    ]
    save_figure(crossval_nfe(backends), tmp_path / "nfe.png")
    assert (tmp_path / "sweep.png").stat().st_size > 0 and (tmp_path / "nfe.png").stat().st_size > 0


def test_command_line_runs_the_stage(tmp_path):
    spec = {"field": {"kind": "mlp", "dim": 2, "width": 4, "depth": 1, "activation": "tanh"}, "batch": 2}
    settings = {"name": "t", "spec": spec, "seed": 0, "rtol": 1e-8, "atol": 1e-8}
    (tmp_path / "t.json").write_text(json.dumps(settings))
    case = str(tmp_path / "cases" / "t.npz")
    main(["make-case", "--settings", str(tmp_path / "t.json"), "--out", case])
    made = load_case(case)
    expected = make_case("t", spec, seed=0, rtol=1e-8, atol=1e-8)
    assert made.name == "t" and (made.rtol, made.atol) == (1e-8, 1e-8)
    np.testing.assert_array_equal(made.params["weight_0"], expected.params["weight_0"])
    np.testing.assert_array_equal(made.y0, expected.y0)
    runs = []
    for backend in ("scipy", "scratch", "diffeqflux-interpolating"):
        runs.append(str(tmp_path / "runs" / f"{backend}.npz"))
        main(["run", "--backend", backend, "--case", case, "--out", runs[-1], "--julia", "off"])
    main(
        [
            "summarise",
            "--results",
            *runs,
            "--out-dir",
            str(tmp_path),
            "--nfe-figure",
            str(tmp_path / "nfe.png"),
        ]
    )
    assert "disabled in the config (julia: off)" in (tmp_path / "summary.md").read_text()
    sweep = [
        str(tmp_path / "sweep" / f"{backend}_{i}.npz") for backend in ("scipy", "scratch") for i in range(3)
    ]
    for backend in ("scipy", "scratch"):
        outs = [s for s in sweep if f"/{backend}_" in s]
        main(["run", "--backend", backend, "--case", case, "--out", *outs, "--tolerances", "1e-4,1e-6,1e-8"])
    assert [load_result(s).rtol for s in sweep[:3]] == [1e-4, 1e-6, 1e-8]
    main(
        [
            "sweep-summary",
            "--results",
            *sweep,
            "--out-csv",
            str(tmp_path / "sweep.csv"),
            "--figure",
            str(tmp_path / "s.png"),
        ]
    )
    with open(tmp_path / "sweep.csv") as f:
        rows = list(csv.DictReader(f))
    errors = [float(r["max_rel"]) for r in rows if r["quantity"] == "trajectory"]
    assert len(errors) == 3 and errors[-1] < errors[0]


def test_stiff_van_der_pol_agrees_across_implicit_and_restarted_backends(tmp_path):
    """pyode with kvaerno5, scipy with Radau, scratch restarting every step, torchdiffeq's dopri5."""
    from pyode.reference import get_backend, run_backend

    spec = {"field": {"kind": "vdp", "mu": 10.0}, "stiff": True, "batch": 1, "times": 3, "t1": 1.0}
    case = make_case("v", spec, seed=0, rtol=1e-9, atol=1e-9)
    names = ["pyode-checkpoint", "scratch", "scipy", "torchdiffeq-odeint"]
    results = [get_backend(name).run(case)[0] for name in names]
    assert "kvaerno5" in results[0].method and "restart='steps'" in results[1].method
    assert "Radau" in results[2].method
    assert results[0].nfe_forward > 0 and results[0].nfe_backward > 0
    assert all(p.passed and p.max_rel < 1e-6 for p in compare_results(results))
    unknown = type(case)(**{**case.__dict__, "solvers": dict(case.solvers, pyode="radau")})
    unknown.save(tmp_path / "u.npz")
    (skipped,) = run_backend("pyode-checkpoint", tmp_path / "u.npz", [tmp_path / "r.npz"])
    assert skipped.status == "skipped" and "'radau'" in skipped.reason
