# The claims ledger (config/claims.yaml; pyode.experiments.claims): every claim the lab makes about its
# experiments, judged on this run's results into results/claims.json, claims.md and claims.png, and
# tallied in one line when the run ends (common.smk's `report_claims`, the Snakefile's onsuccess).
# Included after every other .smk: its inputs are the files the claims read that this config's rules
# write, so it reruns when they change and works with whatever subset of the experiments a config
# runs. The benchmarks' files (not part of `all`) are read when present; their digests are in its
# settings, so a new bench run reruns it. A failing claim is a result: the rule succeeds.
from pyode import file_digest
from pyode.experiments import claims as claims_ledger

CLAIMS_LEDGER = claims_ledger.LEDGER
CLAIMS_SCHEMA = claims_ledger.SCHEMA
# This run is a claim's preset when the config sections the claim reads are that preset's.
_claims_presets = [os.path.relpath(f) for f in workflow.overwrite_configfiles]
_claims_base = next(
    (os.path.relpath(f) for f in workflow.configfiles if os.path.relpath(f) not in _claims_presets),
    "config/config.yaml",
)
try:
    CLAIMS = claims_ledger.load_ledger(CLAIMS_LEDGER, schema=CLAIMS_SCHEMA)
    _claims_preset_configs = {
        name: claims_ledger.preset_config(name, _claims_base) for name in claims_ledger.presets_of(CLAIMS)
    }
except claims_ledger.LedgerError as error:
    stop(str(error))
CLAIMS_APPLY = claims_ledger.applicability(CLAIMS, config, _claims_preset_configs)
CLAIMS_RUN = " merged with ".join([_claims_base, *_claims_presets]) + (
    f" (preset {', '.join(Path(f).stem for f in _claims_presets) or claims_ledger.DEFAULT_PRESET})"
)

# What this run writes (every experiment's final outputs and metrics), and what the bench writes when
# it runs (the inputs of its plots and tables), as paths under results/.
_written = {
    path.removeprefix("results/"): path
    for paths in [*FINAL_OUTPUTS.values(), *SUMMARY_METRICS.values()]
    for path in paths
}
_bench = {
    str(path).removeprefix("results/"): str(path)
    for path in [*rules.bench_plots.input, *rules.bench_work_precision_table.input]
}
for _line in claims_ledger.unwritten(CLAIMS, CLAIMS_APPLY, [*_written, *_bench])[:1]:
    stop(f"{CLAIMS_LEDGER}: {_line}")
CLAIMS_INPUTS = sorted(path for file, path in _written.items() if claims_ledger.reads(CLAIMS, file))
CLAIMS_BENCH = {
    file: file_digest(path)
    for file, path in sorted(_bench.items())
    if claims_ledger.reads(CLAIMS, file) and os.path.exists(path)
}
settings_file(
    "claims",
    {
        "run": CLAIMS_RUN,
        "applies": CLAIMS_APPLY,
        "readable": sorted([*(path.removeprefix("results/") for path in CLAIMS_INPUTS), *CLAIMS_BENCH]),
        "bench_digests": CLAIMS_BENCH,
    },
)
FINAL_OUTPUTS["claims"] = [CLAIMS_JSON, "results/claims.md", "results/claims.png"]


rule claims:
    input:
        results=CLAIMS_INPUTS,
        ledger=CLAIMS_LEDGER,
        schema=CLAIMS_SCHEMA,
        settings="results/settings/claims.json",
    output:
        json=CLAIMS_JSON,
        markdown="results/claims.md",
        figure=report(
            "results/claims.png",
            caption="../report/claims.rst",
            category="Claims",
            labels={"figure": "every claim against its bound"},
        ),
    params:
        code=CODE["claims"],
    log:
        "logs/claims.log",
    benchmark:
        "benchmarks/claims.tsv"
    threads: 1
    shell:
        "pyode --threads 1 claims --ledger {input.ledger} --schema {input.schema} --settings {input.settings} "
        "--results results --out-json {output.json} --out-md {output.markdown} --figure {output.figure} "
        "> {log} 2>&1"
