rule classify_evaluate:
    input:
        model="results/classify/{dataset}/{model}/model.eqx",
        model_meta="results/classify/{dataset}/{model}/model.json",
        history="results/classify/{dataset}/{model}/history.jsonl",
        data="results/classify/data/{dataset}.npz",
    output:
        metrics="results/classify/{dataset}/{model}/metrics.json",
        loss=report(
            "results/classify/{dataset}/{model}/loss.png",
            caption="../report/classify_loss.rst",
            category="Classification",
            subcategory="{dataset} {model}",
        ),
        dynamics=report(
            "results/classify/{dataset}/{model}/dynamics.png",
            caption="../report/classify_dynamics.rst",
            category="Classification",
            subcategory="{dataset} {model}",
        ),
        decision=report(
            "results/classify/{dataset}/{model}/decision.png",
            caption="../report/classify_decision.rst",
            category="Classification",
            subcategory="{dataset} {model}",
        ),
    params:
        out=lambda w, output: os.path.dirname(output.metrics),
        jax_threads=jax_threads,
    conda:
        "../envs/pyode.yaml"
    log:
        "logs/classify/evaluate/{dataset}/{model}.log",
    benchmark:
        "benchmarks/classify/evaluate/{dataset}/{model}.tsv"
    threads: 2
    shell:
        "pyode --threads {params.jax_threads} classify-evaluate --model {input.model} --data {input.data} "
        "--history {input.history} --dataset {wildcards.dataset} --model-name {wildcards.model} "
        "--out {params.out} > {log} 2>&1"
