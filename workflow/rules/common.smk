# Helpers shared by the workflow: config validation, targets, thread bounds.
import json
import os

from snakemake.utils import validate


validate(config, schema="../schemas/config.schema.yaml")


def settings_json(settings):
    """A config section as the JSON string a `pyode ... --settings` option takes."""
    return json.dumps(settings, sort_keys=True)


def jax_threads(wildcards, threads):
    """CPU threads one job may use: its share of this machine, so --cores above nproc cannot oversubscribe."""
    return max(1, threads * (os.cpu_count() or 1) // max(workflow.cores, 1))


def classify_runs():
    """(dataset, model) pairs of the classification experiment."""
    return [(d, m) for d in config["classify"]["datasets"] for m in config["classify"]["models"]]


def classify_run_settings(wildcards):
    """The resolved training settings of one classification run."""
    section = config["classify"]
    return settings_json(
        {
            "seed": config["seed"],
            "model": {"t1": section.get("t1", 1.0), **section["models"][wildcards.model]},
            "field": section["field"],
            "solve": section["solve"],
            "train": section["train"],
        }
    )


def classify_outputs():
    """Every file the classification experiment ends with."""
    return [
        f"results/classify/{d}/{m}/{name}"
        for d, m in classify_runs()
        for name in ("metrics.json", "loss.png", "dynamics.png", "decision.png")
    ]
