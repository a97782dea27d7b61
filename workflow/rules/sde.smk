# Neural SDEs (pyode.experiments.sde): per process, exact paths, a fit and its evaluation (metrics.json
# and four figures); and the SDE solvers' strong and weak convergence orders on geometric Brownian motion.
from pyode.experiments import sde

SDE = plan(sde)
try:
    SDE_CONVERGENCE = sde.plan_convergence(config["sde"], seed=config["seed"])
except SettingsError as error:
    stop(f"config: {error}")
settings_file("sde/convergence", SDE_CONVERGENCE.to_dict())
for _run, _settings in SDE.items():
    settings_file(f"sde/{_run}", _settings.to_dict())
    settings_file(f"sde/data/{_run}", _settings.part(sde.DataSettings).to_dict())


wildcard_constraints:
    process=alternatives(SDE),


SDE_OUTPUTS = [
    f"results/sde/{run}/{name}"
    for run in SDE
    for name in ("metrics.json", "loss.png", "coefficients.png", "paths.png", "marginals.png")
] + ["results/sde/convergence/metrics.json", "results/sde/convergence/convergence.png"]
FINAL_OUTPUTS["sde"] = SDE_OUTPUTS
SUMMARY_METRICS["sde"] = [path for path in SDE_OUTPUTS if path.endswith("metrics.json")]


rule sde_data:
    input:
        settings="results/settings/sde/data/{process}.json",
    output:
        "results/sde/data/{process}.npz",
    params:
        code=CODE["sde"],
    log:
        "logs/sde/data/{process}.log",
    benchmark:
        "benchmarks/sde/data/{process}.tsv"
    threads: 1
    shell:
        "pyode --threads 1 sde-data --settings {input.settings} --out {output} > {log} 2>&1"


rule sde_train:
    input:
        data="results/sde/data/{process}.npz",
        settings="results/settings/sde/{process}.json",
    output:
        model="results/sde/{process}/model.npz",
        history="results/sde/{process}/history.jsonl",
    params:
        code=CODE["sde"],
        out=lambda w, output: os.path.dirname(output.model),
        jax_threads=jax_threads,
    log:
        "logs/sde/train/{process}.log",
    benchmark:
        "benchmarks/sde/train/{process}.tsv"
    threads: 1
    shell:
        "pyode --threads {params.jax_threads} sde-train --data {input.data} "
        "--settings {input.settings} --out {params.out} --no-progress > {log} 2>&1"


rule sde_evaluate:
    input:
        model="results/sde/{process}/model.npz",
        history="results/sde/{process}/history.jsonl",
        data="results/sde/data/{process}.npz",
    output:
        metrics="results/sde/{process}/metrics.json",
        loss=report(
            "results/sde/{process}/loss.png",
            caption="../report/sde_loss.rst",
            category="Neural SDEs",
            subcategory="{process}",
            labels={"process": "{process}", "figure": "loss"},
        ),
        coefficients=report(
            "results/sde/{process}/coefficients.png",
            caption="../report/sde_coefficients.rst",
            category="Neural SDEs",
            subcategory="{process}",
            labels={"process": "{process}", "figure": "coefficients"},
        ),
        paths=report(
            "results/sde/{process}/paths.png",
            caption="../report/sde_paths.rst",
            category="Neural SDEs",
            subcategory="{process}",
            labels={"process": "{process}", "figure": "paths"},
        ),
        marginals=report(
            "results/sde/{process}/marginals.png",
            caption="../report/sde_marginals.rst",
            category="Neural SDEs",
            subcategory="{process}",
            labels={"process": "{process}", "figure": "marginals"},
        ),
    params:
        code=CODE["sde"],
        run_dir=lambda w, output: os.path.dirname(output.metrics),
        jax_threads=jax_threads,
    log:
        "logs/sde/evaluate/{process}.log",
    benchmark:
        "benchmarks/sde/evaluate/{process}.tsv"
    threads: 1
    shell:
        "pyode --threads {params.jax_threads} sde-evaluate --run-dir {params.run_dir} "
        "--data {input.data} > {log} 2>&1"


rule sde_convergence:
    input:
        settings="results/settings/sde/convergence.json",
    output:
        metrics="results/sde/convergence/metrics.json",
        figure=report(
            "results/sde/convergence/convergence.png",
            caption="../report/sde_convergence.rst",
            category="Neural SDEs",
            subcategory="solver convergence",
        ),
    params:
        code=CODE["sde"],
        out=lambda w, output: os.path.dirname(output.metrics),
        jax_threads=jax_threads,
    log:
        "logs/sde/convergence.log",
    benchmark:
        "benchmarks/sde/convergence.tsv"
    threads: 1
    shell:
        "pyode --threads {params.jax_threads} sde-convergence --settings {input.settings} "
        "--out {params.out} > {log} 2>&1"
