# Cross-validation: cases -> one process per (case, backend) -> pairwise comparison; and a tolerance sweep.
# Backends and the comparison rule: docs/crossval.md. Config section: `crossval`.


wildcard_constraints:
    case="|".join(crossval_cases()),
    backend="[a-z0-9-]+",


rule crossval_case:
    input:
        crossval_case_inputs,
    output:
        npz="results/crossval/cases/{case}.npz",
        meta="results/crossval/cases/{case}.json",
    params:
        spec=crossval_case_spec,
        seed=config["seed"],
        rtol=config["crossval"]["rtol"],
        atol=config["crossval"]["atol"],
        jax_threads=jax_threads,
    conda:
        "../envs/pyode.yaml"
    log:
        "logs/crossval/cases/{case}.log",
    benchmark:
        "benchmarks/crossval/cases/{case}.tsv"
    threads: 1
    shell:
        "pyode --threads {params.jax_threads} crossval make-case --name {wildcards.case} "
        "--spec '{params.spec}' --seed {params.seed} --rtol {params.rtol} --atol {params.atol} "
        "--out {output.npz} > {log} 2>&1"


rule crossval_run:
    input:
        npz="results/crossval/cases/{case}.npz",
        meta="results/crossval/cases/{case}.json",
    output:
        "results/crossval/runs/{case}/{backend}.npz",
    params:
        julia=crossval_julia_mode(),
        jax_threads=jax_threads,
    conda:
        "../envs/pyode.yaml"
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
        [
            f"results/crossval/runs/{case}/{backend}.npz"
            for case in crossval_cases()
            for backend in config["crossval"]["backends"]
        ],
    output:
        csv=report(
            "results/crossval/summary.csv",
            caption="../report/crossval_summary.rst",
            category="Cross-validation",
        ),
        markdown="results/crossval/summary.md",
        backends="results/crossval/backends.csv",
        nfe=report(
            "results/crossval/nfe.png",
            caption="../report/crossval_nfe.rst",
            category="Cross-validation",
        ),
    params:
        out_dir=lambda w, output: os.path.dirname(output.csv),
        jax_threads=jax_threads,
    conda:
        "../envs/pyode.yaml"
    log:
        "logs/crossval/summary.log",
    benchmark:
        "benchmarks/crossval/summary.tsv"
    threads: 1
    shell:
        "pyode --threads {params.jax_threads} crossval summarise --results {input} "
        "--out-dir {params.out_dir} --nfe-figure {output.nfe} > {log} 2>&1"


rule crossval_sweep_run:
    input:
        npz=lambda w: f"results/crossval/cases/{config['crossval']['sweep']['case']}.npz",
        meta=lambda w: f"results/crossval/cases/{config['crossval']['sweep']['case']}.json",
    output:
        [
            f"results/crossval/sweep/{{backend}}/rtol_{crossval_rtol_tag(r)}.npz"
            for r in config["crossval"]["sweep"]["rtols"]
        ],
    params:
        tolerances=",".join(str(float(r)) for r in config["crossval"]["sweep"]["rtols"]),
        julia=crossval_julia_mode(),
        jax_threads=jax_threads,
    conda:
        "../envs/pyode.yaml"
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
        [f for backend in config["crossval"]["sweep"]["backends"] for f in crossval_sweep_files(backend)],
    output:
        csv="results/crossval/sweep.csv",
        figure=report(
            "results/crossval/sweep.png",
            caption="../report/crossval_sweep.rst",
            category="Cross-validation",
        ),
    params:
        jax_threads=jax_threads,
    conda:
        "../envs/pyode.yaml"
    log:
        "logs/crossval/sweep_summary.log",
    benchmark:
        "benchmarks/crossval/sweep_summary.tsv"
    threads: 1
    shell:
        "pyode --threads {params.jax_threads} crossval sweep-summary --results {input} "
        "--out-csv {output.csv} --figure {output.figure} > {log} 2>&1"
