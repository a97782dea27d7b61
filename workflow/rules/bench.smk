# Benchmarks: pyode against torchdiffeq and the scratch adjoint on identical problems.
# Run alone, one job at a time: `snakemake --cores 1 bench` (not part of `all`). docs/bench.md.
# Every job uses one CPU thread for JAX and for torch alike (`pyode --threads 1`).
from pyode.bench import check_precision_solvers, check_precision_tolerances


wildcard_constraints:
    problem="spiral|sequence",
    dtype="float32|float64",


BENCH = config["bench"]


# The problems file (docs/bench.md): the classify experiment's spiral run with bench.field, and the
# dynamics experiment's nn_spiral fit at its defaults, as resolved by pyode.
_spiral = (CLASSIFY.get("spiral/node") or classify.resolve({"seed": config["seed"]})).overlay(
    {"field": BENCH.get("field", {})}, "bench"
)
_sequence = dynamics.resolve({"system": "nn_spiral"})
_problems = {
    "spiral": {
        "seed": _spiral.seed,
        "data": _spiral.data,
        "model": _spiral.model_spec(),
        "batch_size": _spiral.train.batch_size,
        "count_every": _spiral.train.count_every,
    },
    "sequence": {
        "seed": _sequence.seed,
        "data": _sequence.data,
        "model": _sequence.model()[1],
        "solve": _sequence.solve.options(),
        "count_every": _sequence.train.count_every,
    },
}
BENCH_PROBLEMS = settings_file("bench/problems", _problems)
BENCH_ADJOINT = _spiral.solve.adjoint
if BENCH["norms"]["case"] not in CROSSVAL_CASES:
    stop(f"config: bench.norms.case is {BENCH['norms']['case']!r}; the cross-validation cases are {', '.join(CROSSVAL_CASES)}")
BENCH_TIMING = f"--repetitions {BENCH['repetitions']} --warmup {BENCH['warmup']}"

# Work-precision: one settings file per problem, so that changing one problem reruns only it.
WP = BENCH["work_precision"]
try:
    check_precision_solvers(WP["solvers"])
except ValueError as error:
    stop(f"config: bench.work_precision.solvers: {error}")
try:
    check_precision_tolerances(WP["rtols"], WP["atol_ratio"], WP["reference_tolerance"])
except ValueError as error:
    stop(f"config: bench.work_precision: {error}")
WP_SETTINGS = {
    problem: settings_file(
        f"bench/work_precision_{problem}",
        {
            "problem": problem,
            problem: _problems["spiral"] if problem == "spiral" else WP[problem],
            "rtols": WP["rtols"],
            "atol_ratio": WP["atol_ratio"],
            "reference_tolerance": WP["reference_tolerance"],
            "repetitions": WP["repetitions"],
            "warmup": WP["warmup"],
            "min_sample_seconds": BENCH["min_sample_seconds"],
            "solvers": WP["solvers"],
        },
    )
    for problem in WP["problems"]
}


rule bench_steps:
    input:
        problems=BENCH_PROBLEMS,
    output:
        "results/bench/steps_{problem}_{dtype}.json",
    params:
        code=CODE["bench"],
        libraries=" ".join(config["bench"]["libraries"]),
        timing=BENCH_TIMING,
        min_sample=config["bench"]["min_sample_seconds"],
    log:
        "logs/bench/steps_{problem}_{dtype}.log",
    benchmark:
        "benchmarks/bench/steps_{problem}_{dtype}.tsv"
    threads: 1
    shell:
        "pyode --threads 1 bench steps --problem {wildcards.problem} --dtype {wildcards.dtype} "
        "--libraries {params.libraries} {params.timing} --min-sample-seconds {params.min_sample} "
        "--problems {input.problems} --out {output} > {log} 2>&1"


rule bench_compile:
    input:
        problems=BENCH_PROBLEMS,
    output:
        "results/bench/compile.json",
    params:
        code=CODE["bench"],
        repetitions=config["bench"]["compile_repetitions"],
        method=BENCH_ADJOINT,
    log:
        "logs/bench/compile.log",
    benchmark:
        "benchmarks/bench/compile.tsv"
    threads: 1
    shell:
        "pyode --threads 1 bench compile --problem spiral --dtype float32 --method {params.method} "
        "--repetitions {params.repetitions} --problems {input.problems} --out {output} > {log} 2>&1"


rule bench_length:
    input:
        problems=BENCH_PROBLEMS,
    output:
        "results/bench/length.json",
    params:
        code=CODE["bench"],
        steps=" ".join(str(s) for s in config["bench"]["length"]["steps"]),
        dt=config["bench"]["length"]["dt"],
        methods=" ".join(config["bench"]["length"]["methods"]),
        timing=BENCH_TIMING,
    log:
        "logs/bench/length.log",
    benchmark:
        "benchmarks/bench/length.tsv"
    threads: 1
    shell:
        "pyode --threads 1 bench length --steps {params.steps} --dt {params.dt} --methods {params.methods} "
        "{params.timing} --problems {input.problems} --out {output} > {log} 2>&1"


rule bench_size:
    input:
        problems=BENCH_PROBLEMS,
    output:
        "results/bench/size.json",
    params:
        code=CODE["bench"],
        batches=" ".join(str(b) for b in config["bench"]["size"]["batches"]),
        widths=" ".join(str(w) for w in config["bench"]["size"]["widths"]),
        methods=" ".join(config["bench"]["size"]["methods"]),
        timing=BENCH_TIMING,
        min_sample=config["bench"]["min_sample_seconds"],
    log:
        "logs/bench/size.log",
    benchmark:
        "benchmarks/bench/size.tsv"
    threads: 1
    shell:
        "pyode --threads 1 bench size --batches {params.batches} --widths {params.widths} "
        "--methods {params.methods} {params.timing} --min-sample-seconds {params.min_sample} "
        "--problems {input.problems} --out {output} > {log} 2>&1"


rule bench_sde_batch:
    output:
        "results/bench/sde_batch.json",
    params:
        code=CODE["bench"],
        paths=" ".join(str(p) for p in BENCH["sde_batch"]["paths"]),
        methods=" ".join(BENCH["sde_batch"]["methods"]),
        steps=BENCH["sde_batch"]["steps"],
        memory=BENCH["sde_batch"]["memory_limit_gib"],
        timing=BENCH_TIMING,
        min_sample=BENCH["min_sample_seconds"],
    log:
        "logs/bench/sde_batch.log",
    benchmark:
        "benchmarks/bench/sde_batch.tsv"
    threads: 1
    shell:
        "pyode --threads 1 bench sde-batch --paths {params.paths} --methods {params.methods} "
        "--steps {params.steps} --memory-limit-gib {params.memory} {params.timing} "
        "--min-sample-seconds {params.min_sample} --out {output} > {log} 2>&1"


rule bench_norms:
    input:
        npz=f"results/crossval/cases/{BENCH['norms']['case']}.npz",
        meta=f"results/crossval/cases/{BENCH['norms']['case']}.json",
    output:
        "results/bench/norms.json",
    params:
        code=CODE["bench"],
        tolerances=" ".join(str(float(t)) for t in BENCH["norms"]["tolerances"]),
    log:
        "logs/bench/norms.log",
    benchmark:
        "benchmarks/bench/norms.tsv"
    threads: 1
    shell:
        "pyode --threads 1 bench norms --case {input.npz} --tolerances {params.tolerances} "
        "--out {output} > {log} 2>&1"


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
        norms="results/bench/norms.json",
    output:
        speedup=report(
            "results/bench/speedup.png",
            caption="../report/bench_speedup.rst",
            category="Benchmarks",
            labels={"figure": "speedup"},
        ),
        overhead=report(
            "results/bench/overhead.png",
            caption="../report/bench_overhead.rst",
            category="Benchmarks",
            labels={"figure": "overhead"},
        ),
        counting=report(
            "results/bench/counting.png",
            caption="../report/bench_counting.rst",
            category="Benchmarks",
            labels={"figure": "counting"},
        ),
        length=report(
            "results/bench/length.png",
            caption="../report/bench_length.rst",
            category="Benchmarks",
            labels={"figure": "length"},
        ),
        sizes=report(
            "results/bench/size.png",
            caption="../report/bench_size.rst",
            category="Benchmarks",
            labels={"figure": "size"},
        ),
        summary="results/bench/summary.md",
    params:
        code=CODE["bench"],
        out_dir=lambda w, output: os.path.dirname(output.summary),
    log:
        "logs/bench/plots.log",
    benchmark:
        "benchmarks/bench/plots.tsv"
    threads: 1
    shell:
        "pyode --threads 1 bench plot --results {input} --out-dir {params.out_dir} > {log} 2>&1"


rule bench_work_precision:
    input:
        settings=lambda w: WP_SETTINGS[w.wp_problem],
    output:
        json="results/bench/work_precision_{wp_problem}.json",
        figure=report(
            "results/bench/work_precision_{wp_problem}.png",
            caption="../report/bench_work_precision.rst",
            category="Benchmarks",
            labels={"figure": "work-precision {wp_problem}"},
        ),
    wildcard_constraints:
        wp_problem=alternatives(WP["problems"]),
    params:
        code=CODE["bench"],
    log:
        "logs/bench/work_precision_{wp_problem}.log",
    benchmark:
        "benchmarks/bench/work_precision_{wp_problem}.tsv"
    threads: 1
    shell:
        "pyode --threads 1 bench precision --settings {input.settings} --out {output.json} "
        "--figure {output.figure} > {log} 2>&1"


rule bench_work_precision_table:
    input:
        expand("results/bench/work_precision_{wp_problem}.json", wp_problem=WP["problems"]),
    output:
        "results/bench/work_precision.md",
    params:
        code=CODE["bench"],
    log:
        "logs/bench/work_precision_table.log",
    benchmark:
        "benchmarks/bench/work_precision_table.tsv"
    threads: 1
    shell:
        "pyode --threads 1 bench precision-table --results {input} --out {output} > {log} 2>&1"


rule bench:
    input:
        rules.bench_plots.output,
        rules.bench_sde_batch.output,
        rules.bench_work_precision_table.output,
        expand("results/bench/work_precision_{wp_problem}.png", wp_problem=WP["problems"]),
