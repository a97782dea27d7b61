# Universal differential equations (pyode.experiments.ude): the Lotka-Volterra data (SciPy, float64); per
# model (the UDE, a pure neural ODE), a fit to the training window (Adam then L-BFGS, float32); one
# evaluation of them (float64): SINDy on the UDE's learnt terms and on the data, refits, extrapolations,
# metrics.json and figures; summary.md with the discovered equations beside the true one.
from pyode.experiments import ude

UDE = plan(ude)
for _run, _settings in UDE.items():
    settings_file(f"ude/{_run}", _settings.to_dict())
settings_file("ude/data", next(iter(UDE.values())).part(ude.DataSettings).to_dict())


wildcard_constraints:
    ude_model=alternatives(UDE),


FINAL_OUTPUTS["ude"] = [
    f"results/ude/{name}" for name in ("metrics.json", "terms.png", "extrapolation.png", "loss.png", "summary.md")
]
SUMMARY_METRICS["ude"] = ["results/ude/metrics.json"]


rule ude_data:
    input:
        settings="results/settings/ude/data.json",
    output:
        "results/ude/data.npz",
    params:
        code=CODE["ude"],
    log:
        "logs/ude/data.log",
    benchmark:
        "benchmarks/ude/data.tsv"
    threads: 1
    shell:
        "pyode --threads 1 ude-data --settings {input.settings} --out {output} > {log} 2>&1"


rule ude_train:
    input:
        data="results/ude/data.npz",
        settings="results/settings/ude/{ude_model}.json",
    output:
        model="results/ude/{ude_model}/model.npz",
        history="results/ude/{ude_model}/history.jsonl",
        validation="results/ude/{ude_model}/validation.jsonl",
    params:
        code=CODE["ude"],
        out=lambda w, output: os.path.dirname(output.model),
        jax_threads=jax_threads,
    log:
        "logs/ude/train/{ude_model}.log",
    benchmark:
        "benchmarks/ude/train/{ude_model}.tsv"
    threads: 1
    shell:
        "pyode --threads {params.jax_threads} ude-train --data {input.data} "
        "--settings {input.settings} --out {params.out} --no-progress > {log} 2>&1"


rule ude_evaluate:
    input:
        data="results/ude/data.npz",
        runs=[
            f"results/ude/{model}/{name}"
            for model in UDE
            for name in ("model.npz", "history.jsonl", "validation.jsonl")
        ],
    output:
        metrics="results/ude/metrics.json",
        terms=report(
            "results/ude/terms.png",
            caption="../report/ude_terms.rst",
            category="Universal differential equations",
            labels={"figure": "terms"},
        ),
        extrapolation=report(
            "results/ude/extrapolation.png",
            caption="../report/ude_extrapolation.rst",
            category="Universal differential equations",
            labels={"figure": "extrapolation"},
        ),
        loss=report(
            "results/ude/loss.png",
            caption="../report/ude_loss.rst",
            category="Universal differential equations",
            labels={"figure": "loss"},
        ),
    params:
        code=CODE["ude"],
        runs=[f"results/ude/{model}" for model in UDE],
        out=lambda w, output: os.path.dirname(output.metrics),
        jax_threads=jax_threads,
    log:
        "logs/ude/evaluate.log",
    benchmark:
        "benchmarks/ude/evaluate.tsv"
    threads: 1
    shell:
        "pyode --threads {params.jax_threads} ude-evaluate --data {input.data} "
        "--runs {params.runs} --out {params.out} > {log} 2>&1"


rule ude_summary:
    input:
        "results/ude/metrics.json",
    output:
        "results/ude/summary.md",
    params:
        code=CODE["ude"],
    log:
        "logs/ude/summary.log",
    benchmark:
        "benchmarks/ude/summary.tsv"
    threads: 1
    shell:
        "pyode --threads 1 ude-summary {input} --out {output} > {log} 2>&1"
