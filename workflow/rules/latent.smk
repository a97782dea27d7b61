# Latent ODEs on the bi-directional spirals (pyode.experiments.latent): per observation count, the data;
# per count and model, a training run (float32); per count, one evaluation of its models (metrics.json
# and three figures); across counts, RMSE against the number of observations and a table.
from pyode.experiments import latent

LATENT = plan(latent)
LATENT_MODELS = {}
for _run, _settings in LATENT.items():
    settings_file(f"latent/{_run}", _settings.to_dict())
    settings_file(f"latent/data/obs{_settings.observations}", _settings.part(latent.DataSettings).to_dict())
    LATENT_MODELS.setdefault(_settings.observations, []).append(_settings.model)


wildcard_constraints:
    observed=alternatives(LATENT_MODELS),
    latent_model=alternatives(latent.MODELS),


LATENT_METRICS = [f"results/latent/obs{observed}/metrics.json" for observed in LATENT_MODELS]
LATENT_OUTPUTS = (
    LATENT_METRICS
    + [
        f"results/latent/obs{observed}/{name}"
        for observed in LATENT_MODELS
        for name in ("spirals.png", "latent.png", "loss.png")
    ]
    + ["results/latent/rmse.png", "results/latent/summary.md"]
)
FINAL_OUTPUTS["latent"] = LATENT_OUTPUTS
SUMMARY_METRICS["latent"] = LATENT_METRICS


rule latent_data:
    input:
        settings="results/settings/latent/data/obs{observed}.json",
    output:
        "results/latent/data/obs{observed}.npz",
    params:
        code=CODE["latent"],
    log:
        "logs/latent/data/obs{observed}.log",
    benchmark:
        "benchmarks/latent/data/obs{observed}.tsv"
    threads: 1
    shell:
        "pyode --threads 1 latent-data --settings {input.settings} --out {output} > {log} 2>&1"


rule latent_train:
    input:
        data="results/latent/data/obs{observed}.npz",
        settings="results/settings/latent/obs{observed}/{latent_model}.json",
    output:
        model="results/latent/obs{observed}/{latent_model}/model.npz",
        history="results/latent/obs{observed}/{latent_model}/history.jsonl",
    params:
        code=CODE["latent"],
        out=lambda w, output: os.path.dirname(output.model),
        jax_threads=jax_threads,
    log:
        "logs/latent/train/obs{observed}/{latent_model}.log",
    benchmark:
        "benchmarks/latent/train/obs{observed}/{latent_model}.tsv"
    threads: 1
    shell:
        "pyode --threads {params.jax_threads} latent-train --data {input.data} "
        "--settings {input.settings} --out {params.out} --no-progress > {log} 2>&1"


rule latent_evaluate:
    input:
        data="results/latent/data/obs{observed}.npz",
        runs=lambda w: [
            f"results/latent/obs{w.observed}/{model}/{name}"
            for model in LATENT_MODELS[int(w.observed)]
            for name in ("model.npz", "history.jsonl")
        ],
    output:
        metrics="results/latent/obs{observed}/metrics.json",
        spirals=report(
            "results/latent/obs{observed}/spirals.png",
            caption="../report/latent_spirals.rst",
            category="Latent ODE",
            subcategory="{observed} observations",
            labels={"figure": "spirals"},
        ),
        latent=report(
            "results/latent/obs{observed}/latent.png",
            caption="../report/latent_trajectories.rst",
            category="Latent ODE",
            subcategory="{observed} observations",
            labels={"figure": "latent"},
        ),
        loss=report(
            "results/latent/obs{observed}/loss.png",
            caption="../report/latent_loss.rst",
            category="Latent ODE",
            subcategory="{observed} observations",
            labels={"figure": "loss"},
        ),
    params:
        code=CODE["latent"],
        runs=lambda w: [f"results/latent/obs{w.observed}/{model}" for model in LATENT_MODELS[int(w.observed)]],
        out=lambda w, output: os.path.dirname(output.metrics),
        jax_threads=jax_threads,
    log:
        "logs/latent/evaluate/obs{observed}.log",
    benchmark:
        "benchmarks/latent/evaluate/obs{observed}.tsv"
    threads: 1
    shell:
        "pyode --threads {params.jax_threads} latent-evaluate --data {input.data} "
        "--runs {params.runs} --out {params.out} > {log} 2>&1"


rule latent_summary:
    input:
        LATENT_METRICS,
    output:
        rmse=report("results/latent/rmse.png", caption="../report/latent_rmse.rst", category="Latent ODE"),
        table="results/latent/summary.md",
    params:
        code=CODE["latent"],
        out=lambda w, output: os.path.dirname(output.table),
    log:
        "logs/latent/summary.log",
    benchmark:
        "benchmarks/latent/summary.tsv"
    threads: 1
    shell:
        "pyode --threads 1 latent-summary {input} --out-dir {params.out} > {log} 2>&1"
