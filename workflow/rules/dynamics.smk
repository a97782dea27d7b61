# Learning dynamics (pyode.experiments.dynamics): per system, noisy trajectories (float64 truth);
# per fit, a training run (float32); per system, one evaluation of all its fits with five figures.
from pyode.experiments import dynamics

DYNAMICS = plan(dynamics)
DYNAMICS_SYSTEMS = {}
for _run, _settings in DYNAMICS.items():
    settings_file(f"dynamics/{_run}", _settings.to_dict())
    settings_file(f"dynamics/data/{_settings.system}", _settings.part(dynamics.DataSettings).to_dict())
    DYNAMICS_SYSTEMS.setdefault(_settings.system, []).append(_settings.fit.name)


wildcard_constraints:
    system=alternatives(DYNAMICS_SYSTEMS),
    fit=alternatives({fit for fits in DYNAMICS_SYSTEMS.values() for fit in fits}),


DYNAMICS_OUTPUTS = [
    f"results/dynamics/{system}/{name}"
    for system in DYNAMICS_SYSTEMS
    for name in ("metrics.json", "loss.png", "trajectories.png", "field.png", "snapshots.png", "training.gif")
]
FINAL_OUTPUTS["dynamics"] = DYNAMICS_OUTPUTS
SUMMARY_METRICS["dynamics"] = [path for path in DYNAMICS_OUTPUTS if path.endswith("metrics.json")]


rule dynamics_data:
    input:
        settings="results/settings/dynamics/data/{system}.json",
    output:
        "results/dynamics/{system}/data.npz",
    params:
        code=CODE["dynamics"],
    log:
        "logs/dynamics/data/{system}.log",
    benchmark:
        "benchmarks/dynamics/data/{system}.tsv"
    threads: 1
    shell:
        "pyode --threads 1 dynamics-data --settings {input.settings} --out {output} > {log} 2>&1"


rule dynamics_train:
    input:
        data="results/dynamics/{system}/data.npz",
        settings="results/settings/dynamics/{system}/{fit}.json",
    output:
        model="results/dynamics/{system}/{fit}/model.npz",
        history="results/dynamics/{system}/{fit}/history.jsonl",
        snapshots="results/dynamics/{system}/{fit}/snapshots.npz",
    params:
        code=CODE["dynamics"],
        out=lambda w, output: os.path.dirname(output.model),
        jax_threads=jax_threads,
    log:
        "logs/dynamics/train/{system}/{fit}.log",
    benchmark:
        "benchmarks/dynamics/train/{system}/{fit}.tsv"
    threads: 2
    shell:
        "pyode --threads {params.jax_threads} dynamics-train --data {input.data} "
        "--settings {input.settings} --out {params.out} --no-progress > {log} 2>&1"


rule dynamics_evaluate:
    input:
        data="results/dynamics/{system}/data.npz",
        runs=lambda w: [
            f"results/dynamics/{w.system}/{fit}/{name}"
            for fit in DYNAMICS_SYSTEMS[w.system]
            for name in ("model.npz", "history.jsonl", "snapshots.npz")
        ],
    output:
        metrics="results/dynamics/{system}/metrics.json",
        loss=report(
            "results/dynamics/{system}/loss.png",
            caption="../report/dynamics_loss.rst",
            category="Dynamics",
            subcategory="{system}",
            labels={"figure": "loss"},
        ),
        trajectories=report(
            "results/dynamics/{system}/trajectories.png",
            caption="../report/dynamics_trajectories.rst",
            category="Dynamics",
            subcategory="{system}",
            labels={"figure": "trajectories"},
        ),
        field=report(
            "results/dynamics/{system}/field.png",
            caption="../report/dynamics_field.rst",
            category="Dynamics",
            subcategory="{system}",
            labels={"figure": "field"},
        ),
        snapshots=report(
            "results/dynamics/{system}/snapshots.png",
            caption="../report/dynamics_snapshots.rst",
            category="Dynamics",
            subcategory="{system}",
            labels={"figure": "snapshots"},
        ),
        animation=report(
            "results/dynamics/{system}/training.gif",
            caption="../report/dynamics_animation.rst",
            category="Dynamics",
            subcategory="{system}",
            labels={"figure": "animation"},
        ),
    params:
        code=CODE["dynamics"],
        runs=lambda w: [f"results/dynamics/{w.system}/{fit}" for fit in DYNAMICS_SYSTEMS[w.system]],
        out=lambda w, output: os.path.dirname(output.metrics),
        jax_threads=jax_threads,
    log:
        "logs/dynamics/evaluate/{system}.log",
    benchmark:
        "benchmarks/dynamics/evaluate/{system}.tsv"
    threads: 2
    shell:
        "pyode --threads {params.jax_threads} dynamics-evaluate --data {input.data} "
        "--runs {params.runs} --out {params.out} > {log} 2>&1"
