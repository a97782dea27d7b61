# pyode workflow: config -> data -> train -> evaluate -> figures and summary. Rules live in workflow/rules/.
configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/settings.smk"
include: "workflow/rules/classify.smk"
include: "workflow/rules/dynamics.smk"
include: "workflow/rules/image.smk"
include: "workflow/rules/regression.smk"
include: "workflow/rules/latent.smk"
include: "workflow/rules/sonode.smk"
include: "workflow/rules/crossval.smk"
include: "workflow/rules/bench.smk"
include: "workflow/rules/summary.smk"


rule all:
    input:
        CLASSIFY_OUTPUTS,
        DYNAMICS_OUTPUTS,
        IMAGE_OUTPUTS,
        "results/regression/metrics.json",
        LATENT_OUTPUTS,
        SONODE_OUTPUTS,
        CROSSVAL_OUTPUTS,
        "results/summary.csv",
