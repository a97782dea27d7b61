# Benchmarks (issue 7): pyode against torchdiffeq and the scratch adjoint on identical problems.
# Run alone, one job at a time: `snakemake --cores 1 bench` (not part of `all`). docs/bench.md.
# Every job uses one CPU thread for JAX and for torch alike (`pyode --threads 1`).

wildcard_constraints:
    problem="spiral|sequence",
    dtype="float32|float64",


# The classify section's spiral classifier (field as bench.field changes it, solve, t1, batch size,
# seed) and its spiral data's generator options (the generator's defaults if it has none), as JSON; the repetition options.
BENCH_CLASSIFIER = settings_json(
    {
        "seed": config["seed"],
        "model": {"t1": config["classify"].get("t1", 1.0)},
        "field": {**config["classify"]["field"], **config["bench"].get("field", {})},
        "solve": {k: v for k, v in config["classify"]["solve"].items() if v is not None},
        "train": {"batch_size": config["classify"]["train"]["batch_size"]},
    }
)
BENCH_SPIRAL = settings_json(
    next(
        ({k: v for k, v in d.items() if k != "name"} for d in config["classify"]["datasets"] if d["name"] == "spiral"),
        {},
    )
)
BENCH_TIMING = f"--repetitions {config['bench']['repetitions']} --warmup {config['bench']['warmup']}"


rule bench_steps:
    output:
        "results/bench/steps_{problem}_{dtype}.json",
    params:
        classifier=BENCH_CLASSIFIER,
        data=BENCH_SPIRAL,
        libraries=" ".join(config["bench"]["libraries"]),
        timing=BENCH_TIMING,
        min_sample=config["bench"]["min_sample_seconds"],
    conda:
        "../envs/pyode.yaml"
    log:
        "logs/bench/steps_{problem}_{dtype}.log",
    benchmark:
        "benchmarks/bench/steps_{problem}_{dtype}.tsv"
    threads: 1
    shell:
        "pyode --threads 1 bench steps --problem {wildcards.problem} --dtype {wildcards.dtype} "
        "--libraries {params.libraries} {params.timing} --min-sample-seconds {params.min_sample} "
        "--classifier '{params.classifier}' --data '{params.data}' --out {output} > {log} 2>&1"


rule bench_compile:
    output:
        "results/bench/compile.json",
    params:
        classifier=BENCH_CLASSIFIER,
        data=BENCH_SPIRAL,
        repetitions=config["bench"]["compile_repetitions"],
        method=config["classify"]["solve"]["adjoint"],
    conda:
        "../envs/pyode.yaml"
    log:
        "logs/bench/compile.log",
    benchmark:
        "benchmarks/bench/compile.tsv"
    threads: 1
    shell:
        "pyode --threads 1 bench compile --problem spiral --dtype float32 --method {params.method} "
        "--repetitions {params.repetitions} --classifier '{params.classifier}' --data '{params.data}' "
        "--out {output} > {log} 2>&1"


rule bench_length:
    output:
        "results/bench/length.json",
    params:
        classifier=BENCH_CLASSIFIER,
        data=BENCH_SPIRAL,
        steps=" ".join(str(s) for s in config["bench"]["length"]["steps"]),
        dt=config["bench"]["length"]["dt"],
        methods=" ".join(config["bench"]["length"]["methods"]),
        timing=BENCH_TIMING,
    conda:
        "../envs/pyode.yaml"
    log:
        "logs/bench/length.log",
    benchmark:
        "benchmarks/bench/length.tsv"
    threads: 1
    shell:
        "pyode --threads 1 bench length --steps {params.steps} --dt {params.dt} --methods {params.methods} "
        "{params.timing} --classifier '{params.classifier}' --data '{params.data}' --out {output} > {log} 2>&1"


rule bench_size:
    output:
        "results/bench/size.json",
    params:
        classifier=BENCH_CLASSIFIER,
        data=BENCH_SPIRAL,
        batches=" ".join(str(b) for b in config["bench"]["size"]["batches"]),
        widths=" ".join(str(w) for w in config["bench"]["size"]["widths"]),
        methods=" ".join(config["bench"]["size"]["methods"]),
        timing=BENCH_TIMING,
        min_sample=config["bench"]["min_sample_seconds"],
    conda:
        "../envs/pyode.yaml"
    log:
        "logs/bench/size.log",
    benchmark:
        "benchmarks/bench/size.tsv"
    threads: 1
    shell:
        "pyode --threads 1 bench size --batches {params.batches} --widths {params.widths} "
        "--methods {params.methods} {params.timing} --min-sample-seconds {params.min_sample} "
        "--classifier '{params.classifier}' --data '{params.data}' --out {output} > {log} 2>&1"


rule bench_plots:
    input:
        steps=[
            f"results/bench/steps_{problem}_{dtype}.json"
            for problem in config["bench"]["problems"]
            for dtype in config["bench"]["dtypes"]
        ],
        compile="results/bench/compile.json",
        length="results/bench/length.json",
        sizes="results/bench/size.json",
    output:
        speedup=report(
            "results/bench/speedup.png", caption="../report/bench_speedup.rst", category="Benchmarks"
        ),
        overhead=report(
            "results/bench/overhead.png", caption="../report/bench_overhead.rst", category="Benchmarks"
        ),
        length=report("results/bench/length.png", caption="../report/bench_length.rst", category="Benchmarks"),
        sizes=report("results/bench/size.png", caption="../report/bench_size.rst", category="Benchmarks"),
        summary="results/bench/summary.md",
    params:
        out_dir=lambda w, output: os.path.dirname(output.summary),
    conda:
        "../envs/pyode.yaml"
    log:
        "logs/bench/plots.log",
    benchmark:
        "benchmarks/bench/plots.tsv"
    threads: 1
    shell:
        "pyode --threads 1 bench plot --results {input} --out-dir {params.out_dir} > {log} 2>&1"


rule bench:
    input:
        rules.bench_plots.output,
