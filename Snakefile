# pyode workflow: data -> train -> evaluate -> figures and summary. Rules live in workflow/rules/.
configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/dynamics.smk"
include: "workflow/rules/image.smk"
include: "workflow/rules/scratch.smk"
include: "workflow/rules/crossval.smk"
include: "workflow/rules/bench.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        classify_outputs(),
        dynamics_outputs(),
        image_outputs(),
        "results/scratch/metrics.json",
        crossval_outputs(),
        "results/summary.csv",
