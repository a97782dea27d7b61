# Every experiment's runs side by side: results/summary.csv (a tidy table: experiment, run, metric,
# value, unit, and the settings that differ) and results/summary.json (with the config and versions).
settings_file("workflow-config", config)
FINAL_OUTPUTS["summary"] = ["results/summary.csv", "results/summary.html"]


rule summary:
    input:
        metrics=[path for paths in SUMMARY_METRICS.values() for path in paths],
        config="results/settings/workflow-config.json",
    output:
        csv="results/summary.csv",
        table=report(
            "results/summary.html",
            caption="../report/summary.rst",
            category="Summary",
            labels={"table": "every run's metrics"},
        ),
        json="results/summary.json",
    params:
        code=CODE["summary"],
    log:
        "logs/summary.log",
    benchmark:
        "benchmarks/summary.tsv"
    threads: 1
    shell:
        "(pyode summary {input.metrics} --config {input.config} --out-csv {output.csv} "
        "--out-json {output.json} && pyode table {output.csv} --out {output.table} "
        "--title 'Every run and metric') > {log} 2>&1"
