# Second-order neural ODEs (pyode.experiments.sonode): per task, its position-only series; per task and
# model (NODE, ANODE, SONODE), a training run (float32); per task, one evaluation of its models
# (metrics.json, the training curves and the models' trajectories).
from pyode.experiments import sonode

SONODE = plan(sonode)
SONODE_TASKS = {}
for _run, _settings in SONODE.items():
    settings_file(f"sonode/{_run}", _settings.to_dict())
    settings_file(f"sonode/data/{_settings.task}", _settings.part(sonode.DataSettings).to_dict())
    SONODE_TASKS.setdefault(_settings.task, []).append(_settings.model.name)


wildcard_constraints:
    task=alternatives(SONODE_TASKS),
    sonode_model=alternatives({name for names in SONODE_TASKS.values() for name in names}),


SONODE_OUTPUTS = [
    f"results/sonode/{task}/{name}"
    for task in SONODE_TASKS
    for name in ("metrics.json", "loss.png", "trajectories.png")
]
FINAL_OUTPUTS["sonode"] = SONODE_OUTPUTS
SUMMARY_METRICS["sonode"] = [path for path in SONODE_OUTPUTS if path.endswith("metrics.json")]


rule sonode_data:
    input:
        settings="results/settings/sonode/data/{task}.json",
    output:
        "results/sonode/{task}/data.npz",
    params:
        code=CODE["sonode"],
    log:
        "logs/sonode/data/{task}.log",
    benchmark:
        "benchmarks/sonode/data/{task}.tsv"
    threads: 1
    shell:
        "pyode --threads 1 sonode-data --settings {input.settings} --out {output} > {log} 2>&1"


rule sonode_train:
    input:
        data="results/sonode/{task}/data.npz",
        settings="results/settings/sonode/{task}/{sonode_model}.json",
    output:
        model="results/sonode/{task}/{sonode_model}/model.npz",
        history="results/sonode/{task}/{sonode_model}/history.jsonl",
    params:
        code=CODE["sonode"],
        out=lambda w, output: os.path.dirname(output.model),
        jax_threads=jax_threads,
    log:
        "logs/sonode/train/{task}/{sonode_model}.log",
    benchmark:
        "benchmarks/sonode/train/{task}/{sonode_model}.tsv"
    threads: 1
    shell:
        "pyode --threads {params.jax_threads} sonode-train --data {input.data} "
        "--settings {input.settings} --out {params.out} --no-progress > {log} 2>&1"


rule sonode_evaluate:
    input:
        data="results/sonode/{task}/data.npz",
        runs=lambda w: [
            f"results/sonode/{w.task}/{model}/{name}"
            for model in SONODE_TASKS[w.task]
            for name in ("model.npz", "history.jsonl")
        ],
    output:
        metrics="results/sonode/{task}/metrics.json",
        loss=report(
            "results/sonode/{task}/loss.png",
            caption="../report/sonode_loss.rst",
            category="Second-order ODEs",
            subcategory="{task}",
            labels={"figure": "loss"},
        ),
        trajectories=report(
            "results/sonode/{task}/trajectories.png",
            caption="../report/sonode_trajectories.rst",
            category="Second-order ODEs",
            subcategory="{task}",
            labels={"figure": "trajectories"},
        ),
    params:
        code=CODE["sonode"],
        runs=lambda w: [f"results/sonode/{w.task}/{model}" for model in SONODE_TASKS[w.task]],
        out=lambda w, output: os.path.dirname(output.metrics),
        jax_threads=jax_threads,
    log:
        "logs/sonode/evaluate/{task}.log",
    benchmark:
        "benchmarks/sonode/evaluate/{task}.tsv"
    threads: 1
    shell:
        "pyode --threads {params.jax_threads} sonode-evaluate --data {input.data} "
        "--runs {params.runs} --out {params.out} > {log} 2>&1"
