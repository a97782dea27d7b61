# Shared by all the rules: the config check, the experiments' plans, settings files, thread bounds.
# Each experiment's .smk plans its runs (pyode.experiments.*.plan resolves and checks every run's
# settings here, before any job starts) and registers the settings file each command reads.
import os

import jsonschema
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version

from pyode.experiments import SettingsError

min_version("8.0")


def stop(message):
    """End the workflow before any job with one line naming what is wrong (no traceback)."""
    logger.error(f"Error: {message}")
    raise SystemExit(1)


def validate_config(config, schema_path):
    """Check the merged config against the schema; the first error names the key path, value and rule."""
    with open(schema_path) as f:  # libyaml's loader where PyYAML has it: 5x faster on the schema
        schema = yaml.load(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(config))
    if error is not None:
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path).lstrip(".")
        presets = list(map(str, workflow.overwrite_configfiles))
        files = " merged with ".join([f for f in map(str, workflow.configfiles) if f not in presets] + presets)
        stop(f"config ({files or 'the config'}): {path or 'top level'}: {error.message}")


validate_config(config, workflow.source_path("../schemas/config.schema.yaml"))

SETTINGS = {}
"""Settings files (key -> content), which settings.smk writes to results/settings/{key}.json."""

JAX_CACHE = "resources/jax-cache"
"""JAX's persistent compilation cache, shared by every job (a second process skips compilation);
the `pyode` command reads it from PYODE_COMPILATION_CACHE."""


def plan(experiment):
    """The runs of an experiment's config section, resolved and checked (a bad value stops here)."""
    try:
        return experiment.plan(config[experiment.EXPERIMENT], seed=config["seed"])
    except SettingsError as error:
        stop(f"config: {error}")


def settings_file(key, content):
    """Register `content` as the settings file of `key` and return its path."""
    SETTINGS[key] = content
    return f"results/settings/{key}.json"


def alternatives(names):
    """A wildcard constraint matching exactly these names."""
    return "|".join(sorted(map(str, names), key=len, reverse=True))


def jax_threads(wildcards, threads):
    """CPU threads one job may use: its share of this machine, so --cores above nproc cannot oversubscribe."""
    try:
        cores = workflow.cores
    except WorkflowError:  # without --cores (a dry run, --rulegraph, --dag, --lint)
        cores = None
    cores = cores if isinstance(cores, int) and cores > 0 else (os.cpu_count() or 1)
    return max(1, threads * (os.cpu_count() or 1) // cores)


os.environ.setdefault("PYODE_COMPILATION_CACHE", JAX_CACHE)
