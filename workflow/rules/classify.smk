# Classification in the plane (pyode.experiments.classify): per data set, data; per data set and
# model, a training run and its evaluation (metrics.json and three figures).
from pyode.experiments import classify

CLASSIFY = plan(classify)
for _run, _settings in CLASSIFY.items():
    settings_file(f"classify/{_run}", _settings.to_dict())
    settings_file(f"classify/data/{_settings.dataset}", _settings.part(classify.DataSettings).to_dict())


wildcard_constraints:
    dataset=alternatives({run.split("/")[0] for run in CLASSIFY}),
    model=alternatives({run.split("/")[1] for run in CLASSIFY}),


CLASSIFY_OUTPUTS = [
    f"results/classify/{run}/{name}"
    for run in CLASSIFY
    for name in ("metrics.json", "loss.png", "dynamics.png", "decision.png")
]
FINAL_OUTPUTS["classify"] = CLASSIFY_OUTPUTS
SUMMARY_METRICS["classify"] = [path for path in CLASSIFY_OUTPUTS if path.endswith("metrics.json")]


rule classify_data:
    input:
        settings="results/settings/classify/data/{dataset}.json",
    output:
        "results/classify/data/{dataset}.npz",
    params:
        code=CODE["classify"],
    log:
        "logs/classify/data/{dataset}.log",
    benchmark:
        "benchmarks/classify/data/{dataset}.tsv"
    threads: 1
    shell:
        "pyode --threads 1 classify-data --settings {input.settings} --out {output} > {log} 2>&1"


rule classify_train:
    input:
        data="results/classify/data/{dataset}.npz",
        settings="results/settings/classify/{dataset}/{model}.json",
    output:
        model="results/classify/{dataset}/{model}/model.npz",
        history="results/classify/{dataset}/{model}/history.jsonl",
    params:
        code=CODE["classify"],
        out=lambda w, output: os.path.dirname(output.model),
        jax_threads=jax_threads,
    log:
        "logs/classify/train/{dataset}/{model}.log",
    benchmark:
        "benchmarks/classify/train/{dataset}/{model}.tsv"
    threads: 2
    shell:
        "pyode --threads {params.jax_threads} classify-train --data {input.data} "
        "--settings {input.settings} --out {params.out} --no-progress > {log} 2>&1"


rule classify_evaluate:
    input:
        model="results/classify/{dataset}/{model}/model.npz",
        history="results/classify/{dataset}/{model}/history.jsonl",
        data="results/classify/data/{dataset}.npz",
    output:
        metrics="results/classify/{dataset}/{model}/metrics.json",
        loss=report(
            "results/classify/{dataset}/{model}/loss.png",
            caption="../report/classify_loss.rst",
            category="Classification",
            subcategory="{dataset}",
            labels={"model": "{model}", "figure": "loss"},
        ),
        dynamics=report(
            "results/classify/{dataset}/{model}/dynamics.png",
            caption="../report/classify_dynamics.rst",
            category="Classification",
            subcategory="{dataset}",
            labels={"model": "{model}", "figure": "dynamics"},
        ),
        decision=report(
            "results/classify/{dataset}/{model}/decision.png",
            caption="../report/classify_decision.rst",
            category="Classification",
            subcategory="{dataset}",
            labels={"model": "{model}", "figure": "decision"},
        ),
    params:
        code=CODE["classify"],
        run_dir=lambda w, output: os.path.dirname(output.metrics),
        jax_threads=jax_threads,
    log:
        "logs/classify/evaluate/{dataset}/{model}.log",
    benchmark:
        "benchmarks/classify/evaluate/{dataset}/{model}.tsv"
    threads: 2
    shell:
        "pyode --threads {params.jax_threads} classify-evaluate --run-dir {params.run_dir} "
        "--data {input.data} --run {wildcards.dataset}/{wildcards.model} > {log} 2>&1"
