wildcard_constraints:
    dataset="|".join(classify_datasets()),
    model="|".join(classify_models()),


rule classify_data:
    output:
        "results/classify/data/{dataset}.npz",
    params:
        settings=lambda w: settings_json(
            {"seed": config["seed"], **classify_datasets()[w.dataset]}
        ),
    conda:
        "../envs/pyode.yaml"
    log:
        "logs/classify/data/{dataset}.log",
    benchmark:
        "benchmarks/classify/data/{dataset}.tsv"
    threads: 1
    shell:
        "pyode --threads 1 classify-data --dataset {wildcards.dataset} "
        "--settings '{params.settings}' --out {output} > {log} 2>&1"
