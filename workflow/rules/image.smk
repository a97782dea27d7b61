# Image ODE-Net (Chen et al. 2018): data -> one job per (data set, run) -> table and figures per data set.
# Runs: odenet/{solver}-{adjoint} over the grid, and the baselines. Config section: `image`; docs/image.md.


rule image_data:
    output:
        "results/image/data/{image_dataset}.npz",
    params:
        settings=image_data_settings,
    wildcard_constraints:
        image_dataset="digits|mnist",
    conda:
        "../envs/pyode.yaml"
    log:
        "logs/image/data/{image_dataset}.log",
    benchmark:
        "benchmarks/image/data/{image_dataset}.tsv"
    threads: 1
    shell:
        "pyode --threads 1 image-data --dataset {wildcards.image_dataset} "
        "--settings '{params.settings}' --out {output} > {log} 2>&1"


rule image_train:
    input:
        "results/image/data/{image_dataset}.npz",
    output:
        metrics="results/image/{image_dataset}/{image_run}/metrics.json",
        history="results/image/{image_dataset}/{image_run}/history.jsonl",
    params:
        settings=image_run_settings,
        out=lambda w, output: os.path.dirname(output.metrics),
        jax_threads=jax_threads,
    wildcard_constraints:
        image_dataset="digits|mnist",
        image_run="|".join(image_runs()),
    conda:
        "../envs/pyode.yaml"
    log:
        "logs/image/train/{image_dataset}/{image_run}.log",
    benchmark:
        "benchmarks/image/train/{image_dataset}/{image_run}.tsv"
    threads: 1
    shell:
        "pyode --threads {params.jax_threads} image-train --no-progress --data {input} "
        "--settings '{params.settings}' --out {params.out} > {log} 2>&1"


rule image_summary:
    input:
        lambda w: [f"results/image/{w.image_dataset}/{run}/metrics.json" for run in image_runs()],
    output:
        csv=report(
            "results/image/{image_dataset}/summary.csv",
            caption="../report/image_summary.rst",
            category="Image ODE-Net",
            subcategory="{image_dataset}",
        ),
        markdown="results/image/{image_dataset}/summary.md",
        accuracy=report(
            "results/image/{image_dataset}/accuracy.png",
            caption="../report/image_accuracy.rst",
            category="Image ODE-Net",
            subcategory="{image_dataset}",
        ),
        nfe=report(
            "results/image/{image_dataset}/nfe.png",
            caption="../report/image_nfe.rst",
            category="Image ODE-Net",
            subcategory="{image_dataset}",
        ),
        time=report(
            "results/image/{image_dataset}/time.png",
            caption="../report/image_time.rst",
            category="Image ODE-Net",
            subcategory="{image_dataset}",
        ),
    params:
        out_dir=lambda w, output: os.path.dirname(output.csv),
    wildcard_constraints:
        image_dataset="digits|mnist",
    conda:
        "../envs/pyode.yaml"
    log:
        "logs/image/summary/{image_dataset}.log",
    benchmark:
        "benchmarks/image/summary/{image_dataset}.tsv"
    threads: 1
    shell:
        "pyode --threads 1 image-summary {input} --dataset {wildcards.image_dataset} "
        "--out-dir {params.out_dir} > {log} 2>&1"
