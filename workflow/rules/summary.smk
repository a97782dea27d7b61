# Every experiment's runs side by side: results/summary.csv (a tidy table: experiment, run, metric,
# value, unit, and the settings that differ) and results/summary.json (with the config and versions).
settings_file("workflow-config", config)


rule summary:
    input:
        metrics=[path for path in CLASSIFY_OUTPUTS + DYNAMICS_OUTPUTS if path.endswith("metrics.json")]
        + IMAGE_METRICS
        + ["results/regression/metrics.json"]
        + LATENT_METRICS
        + [path for path in SONODE_OUTPUTS if path.endswith("metrics.json")],
        config="results/settings/workflow-config.json",
    output:
        csv=report("results/summary.csv", caption="../report/summary.rst", category="Summary"),
        json="results/summary.json",
    log:
        "logs/summary.log",
    benchmark:
        "benchmarks/summary.tsv"
    conda:
        "../envs/pyode.yaml"
    threads: 1
    shell:
        "pyode summary {input.metrics} --config {input.config} "
        "--out-csv {output.csv} --out-json {output.json} > {log} 2>&1"
