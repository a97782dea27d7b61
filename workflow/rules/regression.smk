# The A-to-B regression from scratch (pyode.experiments.regression): NumPy solvers, the
# hand-written adjoint and NumPy Adam, through the shared training loop; no autodiff library.
from pyode.experiments import regression

REGRESSION = plan(regression)
settings_file("regression", REGRESSION["a_to_b"].to_dict())
FINAL_OUTPUTS["regression"] = SUMMARY_METRICS["regression"] = ["results/regression/metrics.json"]


rule regression:
    input:
        settings="results/settings/regression.json",
    output:
        metrics="results/regression/metrics.json",
        history="results/regression/history.jsonl",
        model="results/regression/model.npz",
        loss=report(
            "results/regression/loss.png",
            caption="../report/regression_loss.rst",
            category="From scratch (NumPy)",
            labels={"figure": "loss"},
        ),
        trajectory=report(
            "results/regression/trajectory.png",
            caption="../report/regression_trajectory.rst",
            category="From scratch (NumPy)",
            labels={"figure": "trajectory"},
        ),
    params:
        code=CODE["regression"],
        out=lambda w, output: os.path.dirname(output.metrics),
    log:
        "logs/regression.log",
    benchmark:
        "benchmarks/regression.tsv"
    threads: 1
    shell:
        "pyode --threads 1 regression --settings {input.settings} --out {params.out} --no-progress > {log} 2>&1"
