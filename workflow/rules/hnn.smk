# Hamiltonian neural networks (pyode.experiments.hnn): per system, its data (SciPy, float64); per system
# and model (baseline field, HNN, separable HNN), a training run on the time derivatives (float32); per
# system, one evaluation of its models (float64 rollouts: metrics.json, energy drift, phase portraits,
# training curves); across systems, summary.md beside the paper's Table 1.
from pyode.experiments import hnn

HNN = plan(hnn)
HNN_SYSTEMS = {}
for _run, _settings in HNN.items():
    settings_file(f"hnn/{_run}", _settings.to_dict())
    settings_file(f"hnn/data/{_settings.system}", _settings.part(hnn.DataSettings).to_dict())
    HNN_SYSTEMS.setdefault(_settings.system, []).append(_settings.model.name)


wildcard_constraints:
    hnn_system=alternatives(HNN_SYSTEMS),
    hnn_model=alternatives({name for names in HNN_SYSTEMS.values() for name in names}),


HNN_METRICS = [f"results/hnn/{system}/metrics.json" for system in HNN_SYSTEMS]
FINAL_OUTPUTS["hnn"] = (
    HNN_METRICS
    + [
        f"results/hnn/{system}/{name}"
        for system in HNN_SYSTEMS
        for name in ("energy.png", "phase.png", "loss.png")
    ]
    + ["results/hnn/summary.md"]
)
SUMMARY_METRICS["hnn"] = HNN_METRICS


rule hnn_data:
    input:
        settings="results/settings/hnn/data/{hnn_system}.json",
    output:
        "results/hnn/{hnn_system}/data.npz",
    params:
        code=CODE["hnn"],
    log:
        "logs/hnn/data/{hnn_system}.log",
    benchmark:
        "benchmarks/hnn/data/{hnn_system}.tsv"
    threads: 1
    shell:
        "pyode --threads 1 hnn-data --settings {input.settings} --out {output} > {log} 2>&1"


rule hnn_train:
    input:
        data="results/hnn/{hnn_system}/data.npz",
        settings="results/settings/hnn/{hnn_system}/{hnn_model}.json",
    output:
        model="results/hnn/{hnn_system}/{hnn_model}/model.npz",
        history="results/hnn/{hnn_system}/{hnn_model}/history.jsonl",
        validation="results/hnn/{hnn_system}/{hnn_model}/validation.jsonl",
    params:
        code=CODE["hnn"],
        out=lambda w, output: os.path.dirname(output.model),
        jax_threads=jax_threads,
    log:
        "logs/hnn/train/{hnn_system}/{hnn_model}.log",
    benchmark:
        "benchmarks/hnn/train/{hnn_system}/{hnn_model}.tsv"
    threads: 1
    shell:
        "pyode --threads {params.jax_threads} hnn-train --data {input.data} "
        "--settings {input.settings} --out {params.out} --no-progress > {log} 2>&1"


rule hnn_evaluate:
    input:
        data="results/hnn/{hnn_system}/data.npz",
        runs=lambda w: [
            f"results/hnn/{w.hnn_system}/{model}/{name}"
            for model in HNN_SYSTEMS[w.hnn_system]
            for name in ("model.npz", "history.jsonl", "validation.jsonl")
        ],
    output:
        metrics="results/hnn/{hnn_system}/metrics.json",
        energy=report(
            "results/hnn/{hnn_system}/energy.png",
            caption="../report/hnn_energy.rst",
            category="Hamiltonian NNs",
            subcategory="{hnn_system}",
            labels={"figure": "energy"},
        ),
        phase=report(
            "results/hnn/{hnn_system}/phase.png",
            caption="../report/hnn_phase.rst",
            category="Hamiltonian NNs",
            subcategory="{hnn_system}",
            labels={"figure": "phase"},
        ),
        loss=report(
            "results/hnn/{hnn_system}/loss.png",
            caption="../report/hnn_loss.rst",
            category="Hamiltonian NNs",
            subcategory="{hnn_system}",
            labels={"figure": "loss"},
        ),
    params:
        code=CODE["hnn"],
        runs=lambda w: [f"results/hnn/{w.hnn_system}/{model}" for model in HNN_SYSTEMS[w.hnn_system]],
        out=lambda w, output: os.path.dirname(output.metrics),
        jax_threads=jax_threads,
    log:
        "logs/hnn/evaluate/{hnn_system}.log",
    benchmark:
        "benchmarks/hnn/evaluate/{hnn_system}.tsv"
    threads: 1
    shell:
        "pyode --threads {params.jax_threads} hnn-evaluate --data {input.data} "
        "--runs {params.runs} --out {params.out} > {log} 2>&1"


rule hnn_summary:
    input:
        HNN_METRICS,
    output:
        "results/hnn/summary.md",
    params:
        code=CODE["hnn"],
    log:
        "logs/hnn/summary.log",
    benchmark:
        "benchmarks/hnn/summary.tsv"
    threads: 1
    shell:
        "pyode --threads 1 hnn-summary {input} --out {output} > {log} 2>&1"
