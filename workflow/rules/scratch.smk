# The from-scratch NumPy neural ODE (pyode.scratch): the A-to-B regression trained with
# the hand-written adjoint, Adam and gradient clipping; no autodiff library involved.
# Uses settings_json from common.smk (json.dumps of the config section).


rule scratch_regression:
    output:
        metrics="results/scratch/metrics.json",
        history="results/scratch/history.csv",
        loss=report(
            "results/scratch/loss.png",
            caption="../report/scratch_loss.rst",
            category="From scratch",
        ),
        trajectory=report(
            "results/scratch/trajectory.png",
            caption="../report/scratch_trajectory.rst",
            category="From scratch",
        ),
    params:
        settings=settings_json(config["scratch"]),
        out=lambda w, output: os.path.dirname(output.metrics),
    conda:
        "../envs/pyode.yaml"
    log:
        "logs/scratch/regression.log",
    benchmark:
        "benchmarks/scratch/regression.tsv"
    threads: 1
    shell:
        "pyode scratch --settings '{params.settings}' --out {params.out} > {log} 2>&1"
