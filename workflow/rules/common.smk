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
    return {
        d["name"]: {k: v for k, v in d.items() if k not in ("name", "train")}
        for d in config["classify"]["datasets"]
    }


def classify_train_settings(dataset, model):
    """Training options of one run: classify.train, updated by the data set's, then the model's `train`."""
    data_entry = next(d for d in config["classify"]["datasets"] if d["name"] == dataset)
    model_entry = next(m for m in config["classify"]["models"] if m["name"] == model)
    return {**config["classify"]["train"], **data_entry.get("train", {}), **model_entry.get("train", {})}


def classify_models():
    """Model name -> model options, in config order."""
    return {
        m["name"]: {k: v for k, v in m.items() if k not in ("name", "train")}
        for m in config["classify"]["models"]
    }


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
            "train": classify_train_settings(wildcards.dataset, wildcards.model),
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


# Dynamics (workflow/rules/dynamics.smk)


def dynamics_entries():
    """System name -> its config entry without the name, in config order."""
    return {s["name"]: {k: v for k, v in s.items() if k != "name"} for s in config["dynamics"]["systems"]}


def dynamics_systems():
    """The systems of the dynamics experiment."""
    return list(dynamics_entries())


def dynamics_fits(system):
    """The names of the fits trained on one system."""
    return [f["name"] for f in dynamics_entries()[system]["fits"]]


def dynamics_data_settings(wildcards):
    """The generator settings of one system, as JSON."""
    return settings_json({"seed": config["seed"], "data": dynamics_entries()[wildcards.system].get("data", {})})


def dynamics_run_settings(wildcards):
    """The training settings of one system (its whole config entry), as JSON."""
    return settings_json({"seed": config["seed"], **dynamics_entries()[wildcards.system]})


def dynamics_evaluate_inputs(wildcards):
    """The data and every run file of one system's fits."""
    inputs = {"data": f"results/dynamics/{wildcards.system}/data.npz"}
    for fit in dynamics_fits(wildcards.system):
        for name in ("model.eqx", "model.json", "history.jsonl", "snapshots.npz"):
            inputs[f"{fit}_{name.replace('.', '_')}"] = f"results/dynamics/{wildcards.system}/{fit}/{name}"
    return inputs


def dynamics_outputs():
    """Every file the dynamics experiment ends with (for `rule all`)."""
    return [
        f"results/dynamics/{s}/{name}"
        for s in dynamics_systems()
        for name in (
            "metrics.json",
            "loss.png",
            "trajectories.png",
            "field.png",
            "snapshots.png",
            "training.gif",
        )
    ]


# Image ODE-Net (workflow/rules/image.smk)


def image_datasets():
    """Data set name -> its entry (split, data, model, train), in config order."""
    return {d["name"]: {k: v for k, v in d.items() if k != "name"} for d in config["image"]["datasets"]}


def image_runs():
    """Runs on every data set: odenet/{solver}-{adjoint} over the grid, then the baselines."""
    section = config["image"]
    grid = [f"odenet/{s}-{a}" for s in section["solvers"] for a in section["adjoints"]]
    return grid + list(section["baselines"])


def image_mnist_policy():
    """auto, require or off (an unquoted YAML `off` reads as false)."""
    policy = config["image"]["mnist"]["policy"]
    return "off" if policy is False else policy


def image_data_settings(wildcards):
    """Options of `pyode image-data`: the digits split, or where MNIST comes from."""
    if wildcards.image_dataset == "digits":
        return settings_json(image_datasets()["digits"].get("split", {}))
    mnist = config["image"]["mnist"]
    return settings_json(
        {
            "folder": mnist["folder"],
            "policy": image_mnist_policy(),
            "download_folder": "resources/mnist",
            "mirrors": mnist["mirrors"],
            "timeout": mnist["timeout"],
        }
    )


def image_run_settings(wildcards):
    """The training settings of one run: the data set's entry, the model kind and its solve."""
    entry = image_datasets()[wildcards.image_dataset]
    model = dict(entry.get("model", {}))
    settings = {"seed": config["seed"], "data": entry.get("data", {}), "train": entry.get("train", {})}
    if wildcards.image_run.startswith("odenet/"):
        solver, adjoint = os.path.basename(wildcards.image_run).split("-", 1)
        solve = config["image"]["solve"]
        if solver in solve["adaptive"]:
            step = {"rtol": solve["rtol"], "atol": solve["atol"]}
        else:
            step = {"steps": solve["steps"]}
        settings["solve"] = {"solver": solver, "adjoint": adjoint, **step}
        model["kind"] = "odenet"
    else:
        model["kind"] = wildcards.image_run
    settings["model"] = model
    return settings_json(settings)


def image_outputs():
    """Every file the image study ends with (for `rule all`)."""
    return [
        f"results/image/{d}/{name}"
        for d in image_datasets()
        for name in ("summary.csv", "summary.md", "accuracy.png", "nfe.png", "time.png")
    ]
