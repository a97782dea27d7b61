# Cross-validation: cases -> one process per (case, backend) -> pairwise comparison; and a tolerance sweep.
# Backends and the comparison rule: docs/crossval.md. Config section: `crossval`.
import importlib.util

from pyode.reference import julia_unavailable_reason

CROSSVAL = config["crossval"]
CROSSVAL_CASES = {case["name"]: {k: v for k, v in case.items() if k != "name"} for case in CROSSVAL["cases"]}
CROSSVAL_JULIA = "off" if CROSSVAL["julia"] is False else CROSSVAL["julia"]
if len(CROSSVAL_CASES) != len(CROSSVAL["cases"]):
    stop("config: crossval.cases: two cases share a name")
if CROSSVAL["sweep"]["case"] not in CROSSVAL_CASES:
    stop(f"config: crossval.sweep.case is {CROSSVAL['sweep']['case']!r}; the cases are {', '.join(CROSSVAL_CASES)}")
_configured = set(CROSSVAL["backends"]) | set(CROSSVAL["sweep"]["backends"])
_julia = sorted(name for name in _configured if name.startswith("diffeqflux"))
if CROSSVAL_JULIA == "require" and _julia:
    _reason = julia_unavailable_reason("require")
    if _reason:
        stop(f"config: crossval.julia is require, so {', '.join(_julia)} must run, but: {_reason}")
_torch = sorted(name for name in _configured if name.startswith("torchdiffeq"))
if _torch and importlib.util.find_spec("torch") is None:
    stop(f"config: crossval lists {', '.join(_torch)}, but torch is not installed: pip install -e '.[torch]'")
for _name, _spec in CROSSVAL_CASES.items():
    settings_file(
        f"crossval/{_name}",
        {"name": _name, "spec": _spec, "seed": config["seed"], "rtol": CROSSVAL["rtol"], "atol": CROSSVAL["atol"]},
    )


wildcard_constraints:
    case=alternatives(CROSSVAL_CASES),
    backend="[a-z0-9-]+",


CROSSVAL_SWEEP_FILES = {  # backend -> its result files, one per tolerance of the sweep (rtol_1e-05.npz)
    backend: [f"results/crossval/sweep/{backend}/rtol_{float(r):.0e}.npz" for r in CROSSVAL["sweep"]["rtols"]]
    for backend in set(CROSSVAL["sweep"]["backends"]) | {"{backend}"}
}
CROSSVAL_MODELS = {  # a case exported from a trained model (classifier, flow, latent ODE, SONODE) needs its files
    name: [spec["field"][key] for key in ("model", "data") if key in spec["field"]]
    for name, spec in CROSSVAL_CASES.items()
}
_MADE_HERE = {  # the model and data files this workflow's own runs write
    f"results/{experiment}/{run}/model.npz"
    for experiment, runs in (("classify", CLASSIFY), ("cnf", CNF), ("latent", LATENT), ("sonode", SONODE))
    for run in runs
} | {f"results/cnf/data/{run.split('/')[0]}.npz" for run in CNF}
for _name, _paths in CROSSVAL_MODELS.items():
    for _path in _paths:
        if _path not in _MADE_HERE and not os.path.exists(_path):
            stop(f"config: crossval case {_name!r} reads {_path}, which neither exists nor is written by a run of this config")
CROSSVAL_OUTPUTS = [
    f"results/crossval/{name}"
    for name in ("summary.csv", "summary.html", "summary.md", "backends.csv", "nfe.png", "sweep.csv", "sweep.png")
]
FINAL_OUTPUTS["crossval"] = CROSSVAL_OUTPUTS


rule crossval_case:
    input:
        lambda w: CROSSVAL_MODELS[w.case],
        settings="results/settings/crossval/{case}.json",
    output:
        npz="results/crossval/cases/{case}.npz",
        meta="results/crossval/cases/{case}.json",
    params:
        code=CODE["crossval"],
        jax_threads=jax_threads,
    log:
        "logs/crossval/cases/{case}.log",
    benchmark:
        "benchmarks/crossval/cases/{case}.tsv"
    threads: 1
    shell:
        "pyode --threads {params.jax_threads} crossval make-case --settings {input.settings} "
        "--out {output.npz} > {log} 2>&1"


rule crossval_run:
    input:
        npz="results/crossval/cases/{case}.npz",
        meta="results/crossval/cases/{case}.json",
    output:
        "results/crossval/runs/{case}/{backend}.npz",
    params:
        code=CODE["crossval"],
        julia=CROSSVAL_JULIA,
        jax_threads=jax_threads,
    log:
        "logs/crossval/runs/{case}/{backend}.log",
    benchmark:
        "benchmarks/crossval/runs/{case}/{backend}.tsv"
    threads: 1
    shell:
        "pyode --threads {params.jax_threads} crossval run --backend {wildcards.backend} "
        "--case {input.npz} --out {output} --julia {params.julia} > {log} 2>&1"


rule crossval_summary:
    input:
        [f"results/crossval/runs/{case}/{backend}.npz" for case in CROSSVAL_CASES for backend in CROSSVAL["backends"]],
    output:
        csv="results/crossval/summary.csv",
        table=report(
            "results/crossval/summary.html",
            caption="../report/crossval_summary.rst",
            category="Cross-validation",
            labels={"figure": "pairwise errors (table)"},
        ),
        markdown="results/crossval/summary.md",
        backends="results/crossval/backends.csv",
        nfe=report(
            "results/crossval/nfe.png",
            caption="../report/crossval_nfe.rst",
            category="Cross-validation",
            labels={"figure": "function evaluations"},
        ),
    params:
        code=CODE["crossval"],
        out_dir=lambda w, output: os.path.dirname(output.csv),
        jax_threads=jax_threads,
    log:
        "logs/crossval/summary.log",
    benchmark:
        "benchmarks/crossval/summary.tsv"
    threads: 1
    shell:
        "(pyode --threads {params.jax_threads} crossval summarise --results {input} "
        "--out-dir {params.out_dir} --nfe-figure {output.nfe} && pyode table {output.csv} "
        "--out {output.table} --title 'Cross-validation: every pair of backends') > {log} 2>&1"


rule crossval_sweep_run:
    input:
        npz=f"results/crossval/cases/{CROSSVAL['sweep']['case']}.npz",
        meta=f"results/crossval/cases/{CROSSVAL['sweep']['case']}.json",
    output:
        CROSSVAL_SWEEP_FILES["{backend}"],
    params:
        code=CODE["crossval"],
        tolerances=",".join(str(float(r)) for r in CROSSVAL["sweep"]["rtols"]),
        julia=CROSSVAL_JULIA,
        jax_threads=jax_threads,
    log:
        "logs/crossval/sweep/{backend}.log",
    benchmark:
        "benchmarks/crossval/sweep/{backend}.tsv"
    threads: 1
    shell:
        "pyode --threads {params.jax_threads} crossval run --backend {wildcards.backend} "
        "--case {input.npz} --out {output} --tolerances {params.tolerances} "
        "--julia {params.julia} > {log} 2>&1"


rule crossval_sweep_summary:
    input:
        [path for backend in CROSSVAL["sweep"]["backends"] for path in CROSSVAL_SWEEP_FILES[backend]],
    output:
        csv="results/crossval/sweep.csv",
        figure=report(
            "results/crossval/sweep.png",
            caption="../report/crossval_sweep.rst",
            category="Cross-validation",
            labels={"figure": "tolerance sweep"},
        ),
    params:
        code=CODE["crossval"],
        jax_threads=jax_threads,
    log:
        "logs/crossval/sweep_summary.log",
    benchmark:
        "benchmarks/crossval/sweep_summary.tsv"
    threads: 1
    shell:
        "pyode --threads {params.jax_threads} crossval sweep-summary --results {input} "
        "--out-csv {output.csv} --figure {output.figure} > {log} 2>&1"
