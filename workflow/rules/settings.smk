# The settings files every command reads: each experiment's .smk registers them in SETTINGS
# (common.smk: settings_file); this rule writes them, so a changed setting reruns what reads it.
from pyode import write_json


rule settings:
    output:
        "results/settings/{key}.json",
    params:
        content=lambda w: SETTINGS[w.key],
    wildcard_constraints:
        key="[A-Za-z0-9_./-]+",
    log:
        "logs/settings/{key}.log",
    benchmark:
        "benchmarks/settings/{key}.tsv"
    threads: 1
    run:
        write_json(output[0], params.content)
        with open(log[0], "w") as f:
            print(f"wrote {output[0]}", file=f)
