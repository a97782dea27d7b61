# Learning dynamics (issue 3): Van der Pol, linear and two-layer spirals, A-to-B regression.
# Each system: noisy trajectories (float64 truth) -> one training run per fit (float32) ->
# one evaluation of all its fits. Helpers dynamics_* live in common.smk.

wildcard_constraints:
    system="|".join(dynamics_systems()),
    fit="[A-Za-z0-9_-]+",


rule dynamics_data:
    output:
        "results/dynamics/{system}/data.npz",
    params:
        settings=dynamics_data_settings,
    conda:
        "../envs/pyode.yaml"
    log:
        "logs/dynamics/data/{system}.log",
    benchmark:
        "benchmarks/dynamics/data/{system}.tsv"
    threads: 1
    shell:
        "pyode --threads 1 dynamics-data --system {wildcards.system} "
        "--settings '{params.settings}' --out {output} > {log} 2>&1"


rule dynamics_train:
    input:
        "results/dynamics/{system}/data.npz",
    output:
        model="results/dynamics/{system}/{fit}/model.eqx",
        model_meta="results/dynamics/{system}/{fit}/model.json",
        history="results/dynamics/{system}/{fit}/history.jsonl",
        snapshots="results/dynamics/{system}/{fit}/snapshots.npz",
    params:
        settings=dynamics_run_settings,
        out=lambda w, output: os.path.dirname(output.model),
        jax_threads=jax_threads,
    conda:
        "../envs/pyode.yaml"
    log:
        "logs/dynamics/train/{system}/{fit}.log",
    benchmark:
        "benchmarks/dynamics/train/{system}/{fit}.tsv"
    threads: 2
    shell:
        "pyode --threads {params.jax_threads} dynamics-train --data {input} --fit {wildcards.fit} "
        "--settings '{params.settings}' --out {params.out} --no-progress > {log} 2>&1"


rule dynamics_evaluate:
    input:
        unpack(dynamics_evaluate_inputs),
    output:
        metrics="results/dynamics/{system}/metrics.json",
        loss=report(
            "results/dynamics/{system}/loss.png",
            caption="../report/dynamics_loss.rst",
            category="Dynamics",
            subcategory="{system}",
        ),
        trajectories=report(
            "results/dynamics/{system}/trajectories.png",
            caption="../report/dynamics_trajectories.rst",
            category="Dynamics",
            subcategory="{system}",
        ),
        field=report(
            "results/dynamics/{system}/field.png",
            caption="../report/dynamics_field.rst",
            category="Dynamics",
            subcategory="{system}",
        ),
        snapshots=report(
            "results/dynamics/{system}/snapshots.png",
            caption="../report/dynamics_snapshots.rst",
            category="Dynamics",
            subcategory="{system}",
        ),
        animation=report(
            "results/dynamics/{system}/training.gif",
            caption="../report/dynamics_animation.rst",
            category="Dynamics",
            subcategory="{system}",
        ),
    params:
        runs=lambda w: [f"results/dynamics/{w.system}/{fit}" for fit in dynamics_fits(w.system)],
        out=lambda w, output: os.path.dirname(output.metrics),
        jax_threads=jax_threads,
    conda:
        "../envs/pyode.yaml"
    log:
        "logs/dynamics/evaluate/{system}.log",
    benchmark:
        "benchmarks/dynamics/evaluate/{system}.tsv"
    threads: 2
    shell:
        "pyode --threads {params.jax_threads} dynamics-evaluate --data {input.data} "
        "--runs {params.runs} --out {params.out} > {log} 2>&1"
