"""The claims ledger: its schema and names, what each claim reads, and the verdicts on synthetic results
(holds, fails, not run, several seeds); the workflow's own run is in test_workflow.py."""

import copy
import dataclasses
import json
import math
import os
import signal
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from snakemake.utils import update_config
from test_workflow import _copy_project

import pyode
from pyode import bench
from pyode.crossval import PairError
from pyode.data import MNIST_FILES
from pyode.experiments import EXPERIMENTS, sde
from pyode.experiments import claims as ledger

ROOT = Path(__file__).resolve().parents[1]
LEDGER = ROOT / ledger.LEDGER
SCHEMA = ROOT / ledger.SCHEMA
CLAIMS = ledger.load_ledger(LEDGER, schema=SCHEMA)


def _preset_config(name: str) -> dict:
    """A preset's config as the workflow merges it (Snakemake's update_config over config.yaml)."""
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    if name != ledger.DEFAULT_PRESET:
        update_config(config, yaml.safe_load((ROOT / "config" / f"{name}.yaml").read_text()))
    return config


# --- the ledger --------------------------------------------------------------------------------


def test_the_ledger_passes_its_schema_and_names_every_effect_the_readme_states():
    assert len(CLAIMS) >= 25
    ids = {claim["id"] for claim in CLAIMS}
    for prefix in (
        "spiral-anode",
        "circles-",
        "digits-odenet",
        "mnist-",
        "latent-beats-rnn",
        "sonode-",
        "cnf-",
    ):
        assert any(i.startswith(prefix) for i in ids), prefix
    for effect in ("sde-recovers-coefficients", "sde-euler-maruyama-orders", "crossval-pass-rule"):
        assert effect in ids
    assert sum(i.startswith("bench-") for i in ids) >= 3
    for claim in CLAIMS:  # every preset named is a config file
        for preset in claim["presets"]:
            assert preset == "default" or (ROOT / "config" / f"{preset}.yaml").exists(), (claim["id"], preset)


@pytest.mark.parametrize(
    "change, says",
    [
        (lambda c: c["require"][0].update(op="=<"), "op: '=<' is not one of"),
        (lambda c: c["metrics"]["anode"].pop("run"), "'run' is a required property"),
        (lambda c: c["metrics"]["anode"].update(file="classify/x y/metrics.json"), "does not match"),
        (lambda c: c["require"][0].update(tolerance=0.1), "should not be valid"),
        (lambda c: c.update(presets=[]), "should be non-empty"),
    ],
)
def test_the_schema_names_what_is_wrong(change, says):
    claim = copy.deepcopy(next(c for c in CLAIMS if c["id"] == "circles-anode-separates"))
    change(claim)
    with pytest.raises(ledger.LedgerError, match="circles-anode-separates") as raised:
        ledger.check_schema({"claims": [claim]}, SCHEMA, where="claims.yaml")
    assert says in str(raised.value)


@pytest.mark.parametrize(
    "change, says",
    [
        (lambda c: c["require"].append({"left": "nope", "op": "<", "right": 1}), "left is 'nope'"),
        (lambda c: c["require"].append({"left": "anode", "op": "<", "right": "nope"}), "right is 'nope'"),
        (lambda c: c["require"].append({"left": "anode", "op": "<", "right": "published"}), "is not given"),
        (lambda c: c.update(published={"nope": 1.0}), "not one of its metrics"),
    ],
)
def test_the_ledger_check_names_what_the_schema_cannot(change, says):
    claim = copy.deepcopy(next(c for c in CLAIMS if c["id"] == "circles-anode-separates"))
    change(claim)
    with pytest.raises(ledger.LedgerError, match=says):
        ledger.check_claims([claim])
    with pytest.raises(ledger.LedgerError, match="two claims have the id"):
        ledger.check_claims([CLAIMS[0], CLAIMS[0]])


def _planned_runs(experiment: str, file: str, preset: str) -> set[str]:
    """The runs an experiment's plan makes for a preset's config (the SDE's convergence: `gbm/<solver>`)."""
    config = _preset_config(preset)
    if file.startswith("sde/convergence/"):
        return {f"gbm/{s}" for s in sde.plan_convergence(config["sde"], seed=config["seed"]).solvers}
    return set(EXPERIMENTS[experiment].plan(config[experiment], seed=config["seed"]))


def _unit_names(experiment: str) -> set[str]:
    """Every metric an experiment's records declare a unit for (its UNITS tables)."""
    module = EXPERIMENTS[experiment]
    return {key for name in dir(module) if name.endswith("UNITS") for key in getattr(module, name)}


def test_every_claim_reads_a_run_and_metric_its_experiment_writes():
    """metrics.json: the run is one the experiment's plan makes for each of the claim's presets, the key
    one its units table declares; crossval CSVs: the columns of a pair's comparison; bench files: names
    of the benchmarked methods and solvers."""
    columns = {field.name for field in dataclasses.fields(PairError)}
    methods = {f"{library}-{method}" for library, methods in bench.METHODS.items() for method in methods}
    solvers = {f"pyode-{s}" for s in pyode.SOLVER_NAMES} | {
        f"{library}-{s}" for library, names in bench.PRECISION_SOLVERS.items() for s in names
    }
    checked = 0
    for claim in CLAIMS:
        for name, metric in claim["metrics"].items():
            where, experiment = f"{claim['id']}.{name}", metric["file"].split("/")[0]
            if "run" in metric:
                assert metric["key"] in _unit_names(experiment), where
                for preset in claim["presets"]:
                    assert metric["run"] in _planned_runs(experiment, metric["file"], preset), (where, preset)
            elif experiment == "crossval":
                assert metric["file"] in ("crossval/summary.csv", "crossval/sweep.csv"), where
                assert {metric["key"], *metric.get("where", {})} <= columns, where
            else:
                assert experiment == "bench", where
                names = [v for k, v in metric["where"].items() if k in ("name", "pyode", "other")]
                assert names and set(names) <= methods | solvers, where
            checked += 1
    assert checked == sum(len(claim["metrics"]) for claim in CLAIMS)


def test_the_workflow_writes_every_file_a_claim_reads_in_its_presets(tmp_path):
    """Parsing the workflow under each preset stops when a claim declared for it reads a file no rule
    writes (claims.smk, `unwritten`): every preset parses, and a misspelt file or a ledger that breaks
    its schema stops the default run in one line (the parses run side by side)."""
    project = _copy_project(tmp_path / "project")
    mnist = tmp_path / "shared" / "data" / "mnist"  # config/mnist-cpu.yaml's folder, with the files' names
    mnist.mkdir(parents=True)
    for name in MNIST_FILES.values():
        (mnist / name).touch()
    misspelt = _copy_project(tmp_path / "misspelt")
    text = LEDGER.read_text().replace("classify/circles/anode/", "classify/circle/anode/", 1)
    (misspelt / ledger.LEDGER).write_text(text)
    broken = _copy_project(tmp_path / "broken")
    (broken / ledger.LEDGER).write_text(LEDGER.read_text().replace('op: ">="', 'op: "=>"', 1))
    presets = ledger.presets_of(CLAIMS)
    assert {"default", "latent-paper", "mnist-cpu"} <= set(presets)
    parses = {
        (preset, folder): subprocess.Popen(
            [sys.executable, "-m", "snakemake", "--list-rules"]
            + ([] if preset == "default" else ["--configfile", f"config/{preset}.yaml"]),
            cwd=folder,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"),
        )
        for preset, folder in [
            *((preset, project) for preset in presets),
            ("default", misspelt),
            ("default", broken),
        ]
    }
    outputs = {key: (parse.communicate()[0], parse.returncode) for key, parse in parses.items()}
    for preset in presets:
        output, status = outputs[preset, project]
        assert status == 0 and "claims" in output.split(), f"{preset}: {output[-2000:]}"
    output, status = outputs["default", misspelt]
    assert status != 0
    assert (
        "Error: config/claims.yaml: claim 'circles-anode-separates' (preset default) reads "
        "results/classify/circle/anode/metrics.json, which no rule of this workflow writes for this config\n"
    ) in output, output[-2000:]
    output, status = outputs["default", broken]
    assert status != 0
    assert (
        "Error: config/claims.yaml: claim 'spiral-anode-beats-node': require[0].op: '=>' is not one of "
        "['<', '<=', '>', '>=', 'within']\n"
    ) in output, output[-2000:]


# --- verdicts on synthetic results ---------------------------------------------------------------


def _record(runs: dict, *, status="ok", reason="", seeds=None) -> dict:
    """A metrics.json record: `runs` maps a run's name to its metrics (a list: one entry per seed)."""
    entries = []
    for run, metrics in runs.items():
        for index, values in enumerate(metrics if isinstance(metrics, list) else [metrics]):
            seed = {} if seeds is None else {"seed": seeds[index]}
            entries.append({"run": run, "metrics": values, "settings": seed})
    record = {"experiment": "toy", "status": status, "runs": entries, "units": {}}
    return record | ({"reason": reason} if reason else {})


def _write(results: Path, file: str, content) -> None:
    path = results / file
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content if isinstance(content, str) else json.dumps(content))


def _claim(name: str, require: list, metrics: dict, **more) -> dict:
    return {
        "id": name,
        "statement": f"the claim {name}",
        "presets": ["default"],
        "metrics": metrics,
        "require": require,
    } | more


ACCURACY = {"file": "toy/a/metrics.json", "run": "a/model", "key": "accuracy"}
BASELINE = {"file": "toy/b/metrics.json", "run": "b/model", "key": "accuracy"}


def test_verdicts_hold_fail_and_not_run_with_their_reasons(tmp_path):
    results = tmp_path / "results"
    _write(results, "toy/a/metrics.json", _record({"a/model": {"accuracy": 0.9, "nfe": 30}}))
    _write(results, "toy/b/metrics.json", _record({"b/model": {"accuracy": 0.95}}))
    _write(results, "toy/skipped/metrics.json", _record({"s/model": {}}, status="skipped", reason="no data"))
    claims = [
        _claim(
            "holds", [{"left": "a", "op": ">=", "right": "b", "plus": -0.1}], {"a": ACCURACY, "b": BASELINE}
        ),
        _claim(
            "fails",
            [{"left": "a", "op": ">", "right": "b"}, {"left": "a", "op": "<", "right": 1}],
            {"a": ACCURACY, "b": BASELINE},
        ),
        _claim(
            "absent",
            [{"left": "c", "op": "<", "right": 1}],
            {"c": {**ACCURACY, "file": "toy/c/metrics.json"}},
        ),
        _claim(
            "skipped",
            [{"left": "s", "op": "<", "right": 1}],
            {"s": {**ACCURACY, "file": "toy/skipped/metrics.json", "run": "s/model"}},
        ),
        _claim("other-run", [{"left": "x", "op": "<", "right": 1}], {"x": {**ACCURACY, "run": "a/other"}}),
        _claim("other-key", [{"left": "x", "op": "<", "right": 1}], {"x": {**ACCURACY, "key": "loss"}}),
        _claim(
            "paper",
            [{"left": "a", "op": "within", "right": "published", "tolerance": 0.01}],
            {"a": ACCURACY},
            presets=["paper"],
            published={"a": 0.5},
        ),
    ]
    ledger.check_claims(claims)
    judged = {claim["id"]: claim for claim in ledger.judge_claims(claims, results)}
    assert {name: claim["verdict"] for name, claim in judged.items()} == {
        "holds": "holds",
        "fails": "fails",
        "absent": "not run",
        "skipped": "not run",
        "other-run": "not run",
        "other-key": "not run",
        "paper": "not run",
    }
    assert judged["fails"]["reason"] == "a > b is false (a = 0.9)"
    assert [c["holds"] for c in judged["fails"]["conditions"]] == [False, True]
    assert judged["holds"]["conditions"][0]["bound"] == pytest.approx(0.85)
    assert judged["holds"]["conditions"][0]["margin"] == pytest.approx(0.05)
    assert judged["absent"]["reason"] == "c: no toy/c/metrics.json in these results"
    assert judged["skipped"]["reason"] == "s: toy/skipped/metrics.json: skipped: no data"
    assert judged["other-run"]["reason"] == "x: toy/a/metrics.json has no run 'a/other'"
    assert judged["other-key"]["reason"] == "x: toy/a/metrics.json: run 'a/model' has no metric 'loss'"
    assert judged["paper"]["reason"] == "declared for paper; these results are default's"
    assert judged["paper"]["would"] == "fails"  # read where present: 0.9 is not within 0.01 of 0.5
    assert judged["paper"]["conditions"][0]["text"] == "a within 0.01 of published (0.5)"
    assert judged["holds"]["metrics"]["a"] | {"values": None} == {
        **ACCURACY,
        "values": None,
        "seeds": [None],
        "files": ["toy/a/metrics.json"],
        "mean": 0.9,
        "sd": None,
        "n": 1,
    }
    assert (
        ledger.tally(list(judged.values()))
        == "1 of 2 claims hold; failing: fails; not run: 5 (absent, skipped, other-run, other-key, paper)"
    )
    # in the workflow, a file this run does not write is not read even when an older run left it there
    only_b = ledger.judge_claims(
        claims[:1], results, available={"toy/b/metrics.json"}, applies={"holds": {"preset": "default"}}
    )
    assert only_b[0]["verdict"] == "not run" and "no toy/a/metrics.json" in only_b[0]["reason"]


def test_a_non_finite_metric_fails_its_claim(tmp_path):
    results = tmp_path / "results"
    _write(
        results, "toy/a/metrics.json", _record({"a/model": {"accuracy": None}})
    )  # write_metrics: NaN -> null
    judged = ledger.judge_claims(
        [_claim("nan", [{"left": "a", "op": "<", "right": 1}], {"a": ACCURACY})], results
    )
    assert judged[0]["verdict"] == "fails" and math.isnan(judged[0]["metrics"]["a"]["mean"])


SEEDS = [0.90, 0.94, 0.89]


@pytest.mark.parametrize("layout", ["repeated run", "run/seedN entries", "seedN folders"])
def test_several_seeds_of_a_run_aggregate_without_changing_the_ledger(tmp_path, layout):
    """The ledger names the run as for one seed; the seeds are found however the results hold them."""
    results = tmp_path / "results"
    if layout == "repeated run":
        _write(
            results,
            "toy/a/metrics.json",
            _record({"a/model": [{"accuracy": v} for v in SEEDS]}, seeds=[1, 2, 3]),
        )
    elif layout == "run/seedN entries":
        runs = {f"a/model/seed{seed}": {"accuracy": v} for seed, v in zip([1, 2, 3], SEEDS)}
        _write(results, "toy/a/metrics.json", _record(runs | {"a/modelx": {"accuracy": 0.0}}))
    else:
        for seed, value in zip([1, 2, 3], SEEDS):
            _write(results, f"toy/a/seed{seed}/metrics.json", _record({"a/model": {"accuracy": value}}))
        _write(results, "toy/a/seedling/metrics.json", _record({"a/model": {"accuracy": 0.0}}))
    _write(results, "toy/b/metrics.json", _record({"b/model": [{"accuracy": 0.85}, {"accuracy": 0.87}]}))
    claim = _claim("seeds", [{"left": "a", "op": ">", "right": "b"}], {"a": ACCURACY, "b": BASELINE})
    (judged,) = ledger.judge_claims([claim], results)
    measured = judged["metrics"]["a"]
    assert measured["values"] == SEEDS and measured["n"] == 3
    assert measured["seeds"] == ([1, 2, 3] if layout == "repeated run" else ["1", "2", "3"])
    assert measured["mean"] == pytest.approx(statistics.fmean(SEEDS))
    assert measured["sd"] == pytest.approx(statistics.stdev(SEEDS))
    condition = judged["conditions"][0]
    spread = math.hypot(statistics.stdev(SEEDS), statistics.stdev([0.85, 0.87]))
    assert judged["verdict"] == "holds" and condition["bound"] == pytest.approx(0.86)
    assert condition["margin_sd"] == pytest.approx((statistics.fmean(SEEDS) - 0.86) / spread)
    assert ledger.reads([claim], "toy/a/seed2/metrics.json") and not ledger.reads(
        [claim], "toy/a/seedx/metrics.json"
    )


CROSSVAL_CSV = """case,backend_a,backend_b,quantity,max_rel,passed
tanh2d,pyode-checkpoint,scipy,trajectory,1e-10,True
tanh2d,pyode-checkpoint,scipy,grad_y0,2e-9,True
vdp_stiff,pyode-checkpoint,scipy,grad_y0,3e-9,True
vdp_stiff,pyode-backsolve,scipy,grad_y0,0.14,False
vdp_stiff,scipy,torchdiffeq-adjoint,grad_y0,0.18,False
"""


def test_csv_and_json_rows_are_selected_and_reduced(tmp_path):
    results = tmp_path / "results"
    _write(results, "crossval/summary.csv", CROSSVAL_CSV)
    steps = {
        "speedups": [{"pyode": "pyode-checkpoint", "other": "torchdiffeq-odeint", "speedup": 6.9}],
        "results": [
            {"name": "pyode-checkpoint", "training_loop": {"counting_cost": 1.07}},
            {"name": "x"},
            {"name": "x"},
        ],
    }
    _write(results, "bench/steps.json", steps)
    backsolve = "backsolve|torchdiffeq-adjoint"
    metrics = {
        "non_stiff": {
            "file": "crossval/summary.csv",
            "where": {"case": {"not": "vdp_stiff"}},
            "key": "passed",
            "reduce": "fraction",
        },
        "stiff": {
            "file": "crossval/summary.csv",
            "where": {"case": "vdp_stiff"},
            "key": "passed",
            "reduce": "fraction",
        },
        "stiff_explicit": {
            "file": "crossval/summary.csv",
            "where": {
                "case": "vdp_stiff",
                "backend_a": {"not_match": backsolve},
                "backend_b": {"not_match": backsolve},
            },
            "key": "passed",
            "reduce": "all",
        },
        "worst": {
            "file": "crossval/summary.csv",
            "where": {"max_rel": {"at_most": 1e-8}},
            "key": "max_rel",
            "reduce": "max",
        },
        "pairs": {
            "file": "crossval/summary.csv",
            "where": {"backend_a": {"in": ["pyode-backsolve", "scipy"]}},
            "key": "passed",
            "reduce": "count",
        },
        "speedup": {
            "file": "bench/steps.json",
            "path": "speedups",
            "where": {"other": "torchdiffeq-odeint"},
            "key": "speedup",
        },
        "cost": {
            "file": "bench/steps.json",
            "path": "results",
            "where": {"name": "pyode-checkpoint"},
            "key": "training_loop.counting_cost",
        },
    }
    require = [{"left": name, "op": ">=", "right": 0} for name in metrics]
    (judged,) = ledger.judge_claims([_claim("rows", require, metrics)], results)
    means = {name: entry["mean"] for name, entry in judged["metrics"].items()}
    assert means == {
        "non_stiff": 1.0,
        "stiff": pytest.approx(1 / 3),
        "stiff_explicit": 1.0,
        "worst": 3e-9,
        "pairs": 2.0,
        "speedup": 6.9,
        "cost": 1.07,
    }
    ambiguous = {"x": {"file": "bench/steps.json", "path": "results", "where": {"name": "x"}, "key": "name"}}
    (judged,) = ledger.judge_claims(
        [_claim("two", [{"left": "x", "op": ">", "right": 0}], ambiguous)], results
    )
    assert (
        judged["verdict"] == "not run"
        and "2 rows match {'name': 'x'}; the claim reads exactly one" in judged["reason"]
    )


def test_a_run_is_a_claims_preset_when_the_sections_it_reads_are_that_presets():
    claims = [
        _claim(
            "classify-only",
            [{"left": "a", "op": ">", "right": 0}],
            {"a": {**ACCURACY, "file": "classify/x/metrics.json"}},
        ),
        _claim(
            "latent-paper",
            [{"left": "a", "op": ">", "right": 0}],
            {"a": {**ACCURACY, "file": "latent/x/metrics.json"}},
            presets=["default", "paper"],
        ),
    ]
    default = {"seed": 42, "classify": {"steps": 10}, "latent": {"steps": 2000}}
    presets = {"default": default, "paper": default | {"latent": {"steps": 20000}}}
    paper_run = default | {"latent": {"steps": 20000}, "seed": 7}  # the seed is not compared
    assert ledger.applicability(claims, paper_run, presets) == {
        "classify-only": {"preset": "default"},
        "latent-paper": {"preset": "paper"},
    }
    tiny = default | {"classify": {"steps": 1}}
    found = ledger.applicability(claims, tiny, presets)
    assert found["classify-only"] == {
        "reason": "declared for default; this run's classify config section is not that preset's"
    }
    assert found["latent-paper"] == {"preset": "default"}


def test_pyode_claims_writes_the_json_the_table_and_the_figure(tmp_path, capsys, monkeypatch):
    from pyode.cli import main

    monkeypatch.setattr(signal, "signal", lambda signum, handler: None)  # keep pytest's own handlers
    results = tmp_path / "results"
    for seed, value in zip([1, 2, 3], SEEDS):
        _write(results, f"toy/a/seed{seed}/metrics.json", _record({"a/model": {"accuracy": value}}))
    claims = {
        "claims": [
            _claim(
                "near-paper",
                [{"left": "a", "op": ">=", "right": "published", "times": 0.95}],
                {"a": ACCURACY},
                paper={"cite": "Someone (2020)", "table": "Table 9"},
                published={"a": 0.93},
                note="a note",
            ),
            _claim("elsewhere", [{"left": "b", "op": "<", "right": 1}], {"b": BASELINE}),
        ]
    }
    (tmp_path / "claims.yaml").write_text(yaml.safe_dump(claims))
    out = {name: tmp_path / "out" / f"claims.{name}" for name in ("json", "md", "png")}
    main(
        [
            "claims",
            "--ledger",
            str(tmp_path / "claims.yaml"),
            "--schema",
            str(SCHEMA),
            "--results",
            str(results),
            "--out-json",
            str(out["json"]),
            "--out-md",
            str(out["md"]),
            "--figure",
            str(out["png"]),
        ]
    )
    line = "1 of 1 claims hold; failing: none; not run: 1 (elsewhere)"
    assert capsys.readouterr().out.strip() == line
    written = json.loads(out["json"].read_text())
    assert written["tally"] == line and written["counts"] == {"holds": 1, "fails": 0, "not run": 1}
    assert written["code"]["experiment"] == "claims" and written["versions"]["python"] and written["written"]
    table = out["md"].read_text()
    row = next(r for r in table.splitlines() if r.startswith("| `near-paper`"))
    mean, sd = statistics.fmean(SEEDS), statistics.stdev(SEEDS)
    assert f"a: {mean:.4g} ± {sd:.4g} (3)" in row and "a: 0.93<br>(Someone (2020), Table 9)" in row
    assert "`toy/a/seed1/metrics.json`<br>`toy/a/seed2/metrics.json`" in row and "| holds |" in row
    assert "- `elsewhere`: not run: b: no toy/b/metrics.json in these results" in table
    assert out["png"].stat().st_size > 10_000
    # a result folder whose summary.json holds its config: its preset is found as the workflow finds it
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"seed": 1, "toy": {"x": 1}}))
    _write(results, "summary.json", {"config": {"seed": 2, "toy": {"x": 2}}, "runs": []})
    arguments = ["claims", "--ledger", str(tmp_path / "claims.yaml"), "--results", str(results)]
    arguments += ["--out-json", str(out["json"]), "--out-md", str(out["md"])]
    main(arguments)
    assert (
        capsys.readouterr().out.strip()
        == "0 of 0 claims hold; failing: none; not run: 2 (near-paper, elsewhere)"
    )
    near = json.loads(out["json"].read_text())["claims"][0]
    assert near["reason"] == "declared for default; this run's toy config section is not that preset's"
    assert near["would"] == "holds"
    _write(results, "summary.json", {"config": {"seed": 2, "toy": {"x": 1}}, "runs": []})
    main(arguments)
    assert capsys.readouterr().out.strip() == line


def test_a_claim_that_reads_a_file_no_rule_writes_is_named():
    """The check the workflow stops on (claims.smk): only for claims this run is a preset of."""
    claims = [
        _claim("here", [{"left": "a", "op": ">", "right": 0}], {"a": ACCURACY}),
        _claim(
            "misspelt",
            [{"left": "a", "op": ">", "right": 0}],
            {"a": {**ACCURACY, "file": "toy/x/metrics.json"}},
        ),
        _claim(
            "elsewhere",
            [{"left": "a", "op": ">", "right": 0}],
            {"a": {**ACCURACY, "file": "toy/y/metrics.json"}},
        ),
    ]
    applies = {"here": {"preset": "default"}, "misspelt": {"preset": "default"}, "elsewhere": {"reason": "r"}}
    assert ledger.unwritten(claims, applies, ["toy/a/seed1/metrics.json"]) == [
        "claim 'misspelt' (preset default) reads results/toy/x/metrics.json, "
        "which no rule of this workflow writes for this config"
    ]
