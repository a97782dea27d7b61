rule summary:
    input:
        metrics=[f"results/classify/{d}/{m}/metrics.json" for d, m in classify_runs()]
        + [path for path in dynamics_outputs() if path.endswith("metrics.json")]
        + ["results/scratch/metrics.json"],
    output:
        csv=report("results/summary.csv", caption="../report/summary.rst", category="Summary"),
        json="results/summary.json",
    params:
        config=settings_json(config),
    conda:
        "../envs/pyode.yaml"
    log:
        "logs/summary.log",
    benchmark:
        "benchmarks/summary.tsv"
    threads: 1
    shell:
        "pyode summary {input.metrics} --config '{params.config}' "
        "--out-csv {output.csv} --out-json {output.json} > {log} 2>&1"
