rule classify_train:
    input:
        "results/classify/data/{dataset}.npz",
    output:
        model="results/classify/{dataset}/{model}/model.eqx",
        model_meta="results/classify/{dataset}/{model}/model.json",
        history="results/classify/{dataset}/{model}/history.jsonl",
    params:
        settings=classify_run_settings,
        out=lambda w, output: os.path.dirname(output.model),
        jax_threads=jax_threads,
    conda:
        "../envs/pyode.yaml"
    log:
        "logs/classify/train/{dataset}/{model}.log",
    benchmark:
        "benchmarks/classify/train/{dataset}/{model}.tsv"
    threads: 2
    shell:
        "pyode --threads {params.jax_threads} classify-train --data {input} "
        "--settings '{params.settings}' --out {params.out} 2> {log}"
