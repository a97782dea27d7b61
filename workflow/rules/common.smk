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


def classify_datasets():
    """Data set name -> generator options, in config order."""
    return {d["name"]: {k: v for k, v in d.items() if k != "name"} for d in config["classify"]["datasets"]}


def classify_models():
    """Model name -> model options, in config order."""
    return {m["name"]: {k: v for k, v in m.items() if k != "name"} for m in config["classify"]["models"]}


def classify_runs():
    """(dataset, model) pairs of the classification experiment."""
    return [(d, m) for d in classify_datasets() for m in classify_models()]


def classify_run_settings(wildcards):
    """The resolved training settings of one classification run."""
    section = config["classify"]
    return settings_json(
        {
            "seed": config["seed"],
            "model": {"t1": section.get("t1", 1.0), **classify_models()[wildcards.model]},
            "field": section["field"],
            "solve": {k: v for k, v in section["solve"].items() if v is not None},
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


# Cross-validation (workflow/rules/crossval.smk)


def crossval_cases():
    """Case name -> its config entry, in config order (a list in the config, as presets replace lists whole)."""
    return {c["name"]: {k: v for k, v in c.items() if k != "name"} for c in config["crossval"]["cases"]}


def crossval_case_spec(wildcards):
    """The config entry of one case, as JSON."""
    return settings_json(crossval_cases()[wildcards.case])


def crossval_case_inputs(wildcards):
    """A case exported from a trained classifier needs its model file; a generated one nothing."""
    field = crossval_cases()[wildcards.case]["field"]
    if field["kind"] == "classifier":
        return [field["model"], os.path.splitext(field["model"])[0] + ".json"]
    return []


def crossval_julia_mode():
    """auto, require or off (an unquoted YAML `off` reads as false)."""
    mode = config["crossval"]["julia"]
    return "off" if mode is False else mode


def crossval_rtol_tag(rtol):
    """A file-name tag for a tolerance of the sweep (1e-05)."""
    return f"{float(rtol):.0e}"


def crossval_sweep_files(backend):
    """The result files of one backend across the sweep, in the order of its tolerances."""
    return [
        f"results/crossval/sweep/{backend}/rtol_{crossval_rtol_tag(r)}.npz"
        for r in config["crossval"]["sweep"]["rtols"]
    ]


def crossval_outputs():
    """Every file the cross-validation ends with (for `rule all`)."""
    return [
        "results/crossval/summary.csv",
        "results/crossval/summary.md",
        "results/crossval/backends.csv",
        "results/crossval/nfe.png",
        "results/crossval/sweep.csv",
        "results/crossval/sweep.png",
    ]
