# Image ODE-Net (pyode.experiments.image): per data set, its data; per data set and run (the
# solver x gradient-method grid and the baselines), a training run evaluated after every epoch;
# per data set, a table and three figures. docs/image.md.
from pathlib import Path

from pyode.data import MNIST_FILES, cifar10_inputs, cifar10_lacks, find_mnist_file
from pyode.experiments import image

IMAGE = plan(image)
IMAGE_RUNS = {}
for _run, _settings in IMAGE.items():
    settings_file(f"image/{_run}", _settings.to_dict())
    settings_file(f"image/data/{_settings.dataset}", _settings.part(image.DataSettings).to_dict())
    IMAGE_RUNS.setdefault(_settings.dataset, []).append(_settings.run_name())


_mnist = config["image"]["mnist"]
_found = {name: find_mnist_file(_mnist["folder"], name) for name in MNIST_FILES.values()}
MNIST_INPUTS = [str(path) for path in _found.values() if path] if "mnist" in IMAGE_RUNS else []
# The MNIST files present are inputs of its data rule, so that adding or fixing them reruns it.
_missing = [name for name, path in _found.items() if path is None]
_downloads = Path(_mnist["folder"]).resolve() == Path("resources/mnist").resolve()
if "mnist" in IMAGE_RUNS and _mnist["policy"] == "require" and _missing and not _downloads:
    stop(f"config: image.mnist.policy is require but {_mnist['folder']} lacks {', '.join(_missing)}")

# CIFAR-10 likewise: the batch files or the archive present are inputs of its data rule; under
# `require` a folder that lacks them and is not the download folder stops the workflow here.
_cifar10 = config["image"]["cifar10"]
CIFAR10_INPUTS = [str(path) for path in cifar10_inputs(_cifar10["folder"])] if "cifar10" in IMAGE_RUNS else []
_cifar10_lacks = cifar10_lacks(_cifar10["folder"])
_cifar10_downloads = Path(_cifar10["folder"]).resolve() == Path(image.FETCHED["cifar10"][0]).resolve()
if "cifar10" in IMAGE_RUNS and _cifar10["policy"] == "require" and _cifar10_lacks and not _cifar10_downloads:
    stop(f"config: image.cifar10.policy is require but {_cifar10['folder']} lacks {_cifar10_lacks}")
IMAGE_DATA_INPUTS = {"mnist": MNIST_INPUTS, "cifar10": CIFAR10_INPUTS}


wildcard_constraints:
    image_dataset=alternatives(IMAGE_RUNS),
    image_run=alternatives({run for runs in IMAGE_RUNS.values() for run in runs}),


IMAGE_OUTPUTS = [
    f"results/image/{dataset}/{name}"
    for dataset in IMAGE_RUNS
    for name in ("summary.csv", "summary.html", "summary.md", "accuracy.png", "nfe.png", "time.png")
]
IMAGE_METRICS = [f"results/image/{dataset}/{run}/metrics.json" for dataset, runs in IMAGE_RUNS.items() for run in runs]
FINAL_OUTPUTS["image"] = IMAGE_OUTPUTS
SUMMARY_METRICS["image"] = IMAGE_METRICS


rule image_data:
    input:
        settings="results/settings/image/data/{image_dataset}.json",
        files=lambda w: IMAGE_DATA_INPUTS.get(w.image_dataset, []),
    output:
        "results/image/data/{image_dataset}.npz",
    params:
        code=CODE["image"],
    log:
        "logs/image/data/{image_dataset}.log",
    benchmark:
        "benchmarks/image/data/{image_dataset}.tsv"
    threads: 1
    shell:
        "pyode --threads 1 image-data --settings {input.settings} --out {output} > {log} 2>&1"


rule image_train:
    input:
        data="results/image/data/{image_dataset}.npz",
        settings="results/settings/image/{image_dataset}/{image_run}.json",
    output:
        metrics="results/image/{image_dataset}/{image_run}/metrics.json",
        history="results/image/{image_dataset}/{image_run}/history.jsonl",
    params:
        code=CODE["image"],
        out=lambda w, output: os.path.dirname(output.metrics),
        jax_threads=jax_threads,
    log:
        "logs/image/train/{image_dataset}/{image_run}.log",
    benchmark:
        "benchmarks/image/train/{image_dataset}/{image_run}.tsv"
    threads: 1
    shell:
        "pyode --threads {params.jax_threads} image-train --no-progress --data {input.data} "
        "--settings {input.settings} --out {params.out} > {log} 2>&1"


rule image_summary:
    input:
        lambda w: [f"results/image/{w.image_dataset}/{run}/metrics.json" for run in IMAGE_RUNS[w.image_dataset]],
    output:
        csv="results/image/{image_dataset}/summary.csv",
        table=report(
            "results/image/{image_dataset}/summary.html",
            caption="../report/image_summary.rst",
            category="Image ODE-Net",
            subcategory="{image_dataset}",
            labels={"figure": "table of runs"},
        ),
        markdown="results/image/{image_dataset}/summary.md",
        accuracy=report(
            "results/image/{image_dataset}/accuracy.png",
            caption="../report/image_accuracy.rst",
            category="Image ODE-Net",
            subcategory="{image_dataset}",
            labels={"figure": "accuracy"},
        ),
        nfe=report(
            "results/image/{image_dataset}/nfe.png",
            caption="../report/image_nfe.rst",
            category="Image ODE-Net",
            subcategory="{image_dataset}",
            labels={"figure": "function evaluations"},
        ),
        time=report(
            "results/image/{image_dataset}/time.png",
            caption="../report/image_time.rst",
            category="Image ODE-Net",
            subcategory="{image_dataset}",
            labels={"figure": "time"},
        ),
    params:
        code=CODE["image"],
        out_dir=lambda w, output: os.path.dirname(output.csv),
    log:
        "logs/image/summary/{image_dataset}.log",
    benchmark:
        "benchmarks/image/summary/{image_dataset}.tsv"
    threads: 1
    shell:
        "(pyode --threads 1 image-summary {input} --dataset {wildcards.image_dataset} "
        "--out-dir {params.out_dir} && pyode table {output.csv} --out {output.table} "
        "--title 'Image ODE-Net runs on {wildcards.image_dataset}') > {log} 2>&1"
