# Continuous normalising flows (pyode.experiments.cnf): per density, training and test points; per
# density and model, a training run and its evaluation (metrics.json and three figures).
from pyode.experiments import cnf

CNF = plan(cnf)
for _run, _settings in CNF.items():
    settings_file(f"cnf/{_run}", _settings.to_dict())
    settings_file(f"cnf/data/{_settings.density}", _settings.part(cnf.DataSettings).to_dict())


wildcard_constraints:
    density=alternatives({run.split("/")[0] for run in CNF}),
    flow=alternatives({run.split("/")[1] for run in CNF}),


CNF_OUTPUTS = [
    f"results/cnf/{run}/{name}" for run in CNF for name in ("metrics.json", "loss.png", "density.png", "flow.gif")
]
FINAL_OUTPUTS["cnf"] = CNF_OUTPUTS
SUMMARY_METRICS["cnf"] = [path for path in CNF_OUTPUTS if path.endswith("metrics.json")]


rule cnf_data:
    input:
        settings="results/settings/cnf/data/{density}.json",
    output:
        "results/cnf/data/{density}.npz",
    params:
        code=CODE["cnf"],
    log:
        "logs/cnf/data/{density}.log",
    benchmark:
        "benchmarks/cnf/data/{density}.tsv"
    threads: 1
    shell:
        "pyode --threads 1 cnf-data --settings {input.settings} --out {output} > {log} 2>&1"


rule cnf_train:
    input:
        data="results/cnf/data/{density}.npz",
        settings="results/settings/cnf/{density}/{flow}.json",
    output:
        model="results/cnf/{density}/{flow}/model.npz",
        history="results/cnf/{density}/{flow}/history.jsonl",
    params:
        code=CODE["cnf"],
        out=lambda w, output: os.path.dirname(output.model),
        jax_threads=jax_threads,
    log:
        "logs/cnf/train/{density}/{flow}.log",
    benchmark:
        "benchmarks/cnf/train/{density}/{flow}.tsv"
    threads: 1
    shell:
        "pyode --threads {params.jax_threads} cnf-train --data {input.data} "
        "--settings {input.settings} --out {params.out} --no-progress > {log} 2>&1"


rule cnf_evaluate:
    input:
        model="results/cnf/{density}/{flow}/model.npz",
        history="results/cnf/{density}/{flow}/history.jsonl",
        data="results/cnf/data/{density}.npz",
    output:
        metrics="results/cnf/{density}/{flow}/metrics.json",
        loss=report(
            "results/cnf/{density}/{flow}/loss.png",
            caption="../report/cnf_loss.rst",
            category="Continuous normalising flows",
            subcategory="{density}",
            labels={"flow": "{flow}", "figure": "loss"},
        ),
        density=report(
            "results/cnf/{density}/{flow}/density.png",
            caption="../report/cnf_density.rst",
            category="Continuous normalising flows",
            subcategory="{density}",
            labels={"flow": "{flow}", "figure": "density"},
        ),
        animation=report(
            "results/cnf/{density}/{flow}/flow.gif",
            caption="../report/cnf_flow.rst",
            category="Continuous normalising flows",
            subcategory="{density}",
            labels={"flow": "{flow}", "figure": "animation"},
        ),
    params:
        code=CODE["cnf"],
        run_dir=lambda w, output: os.path.dirname(output.metrics),
        jax_threads=jax_threads,
    log:
        "logs/cnf/evaluate/{density}/{flow}.log",
    benchmark:
        "benchmarks/cnf/evaluate/{density}/{flow}.tsv"
    threads: 1
    shell:
        "pyode --threads {params.jax_threads} cnf-evaluate --run-dir {params.run_dir} "
        "--data {input.data} --run {wildcards.density}/{wildcards.flow} > {log} 2>&1"
