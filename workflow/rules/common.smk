# Shared by all the rules: the config check, the experiments' plans, settings files, thread bounds.
# Each experiment's .smk plans its runs (pyode.experiments.*.plan resolves and checks every run's
# settings here, before any job starts), registers the settings file each command reads and adds
# its final outputs and metrics to FINAL_OUTPUTS and SUMMARY_METRICS.
import glob
import os
import time
from pathlib import Path

import jsonschema
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version

from pyode import CorruptFile, code_digest, experiment_modules, read_json, verify_seal, write_json
from pyode.experiments import EXPERIMENTS, SettingsError

min_version("8.0")


def stop(message):
    """End the workflow before any job with one line naming what is wrong (no traceback)."""
    logger.error(f"Error: {message}")
    raise SystemExit(1)


def validate_config(config, schema_path):
    """Check the merged config against the schema (a section it does not name must be an experiment's);
    the first error names the key path, value and rule."""
    with open(schema_path) as f:  # libyaml's loader where PyYAML has it: 5x faster on the schema
        schema = yaml.load(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    sections = set(schema["properties"]) | set(EXPERIMENTS)
    unknown = sorted(set(config) - sections)
    if unknown:
        stop(f"config: top level: unknown section {unknown[0]!r}; the sections are {', '.join(sorted(sections))}")
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(config))
    if error is not None:
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path).lstrip(".")
        presets = list(map(str, workflow.overwrite_configfiles))
        files = " merged with ".join([f for f in map(str, workflow.configfiles) if f not in presets] + presets)
        stop(f"config ({files or 'the config'}): {path or 'top level'}: {error.message}")


validate_config(config, workflow.source_path("../schemas/config.schema.yaml"))

CODE = {
    **{name: code_digest(name) for name in experiment_modules()},
    "crossval": code_digest(None, julia=True),
    "bench": code_digest(None),
}
"""The digest of the code that each job runs (pyode.code_digest), passed as a param so that Snakemake
reruns a job whose code changed; an experiment's digest covers the package without the other
experiments' modules. `--rerun-triggers mtime input` keeps results made by older code (README)."""

SETTINGS = {}
"""Settings files (key -> content), which settings.smk writes to results/settings/{key}.json."""

FINAL_OUTPUTS = {}
"""The files that `all` asks for, by experiment (each .smk adds its own)."""

SUMMARY_METRICS = {}
"""The metrics.json files that the summary gathers, by experiment (each experiment's .smk adds its own)."""


def get_final_output():
    """Every file that `all` asks for: each experiment's final outputs (FINAL_OUTPUTS)."""
    return [path for paths in FINAL_OUTPUTS.values() for path in paths]

JAX_CACHE = "resources/jax-cache"
"""JAX's persistent compilation cache, shared by every job (a second process skips compilation);
the `pyode` command reads it from PYODE_COMPILATION_CACHE."""


def plan(experiment):
    """The runs of an experiment's config section, resolved and checked (a bad value stops here)."""
    try:
        return experiment.plan(config.get(experiment.EXPERIMENT), seed=config["seed"])
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


INTERRUPT_STATUSES = (130, 143)
"""Exit statuses of a job that SIGINT or SIGTERM stopped (a pyode command saves its state first)."""


def report_interrupt(logs):
    """After a failed run: when every failed job was interrupted (Ctrl-C, SIGTERM), say in one line
    what was saved and that the same command resumes, and exit with Snakemake's status (1)."""
    import re

    logs = [logs] if isinstance(logs, str) else logs
    text = "".join(open(path).read() for path in logs if os.path.exists(path))
    statuses = [int(s) for s in re.findall(r"returned non-zero exit status (-?\d+)", text)]
    if not statuses or any(status not in INTERRUPT_STATUSES for status in statuses):
        return
    job_logs = set(re.findall(r"^\s+log: (\S+) \(check log file", text, flags=re.MULTILINE))
    saved = sorted(
        {
            folder
            for path in job_logs
            if os.path.exists(path)
            for folder in re.findall(r"the state is saved in (\S+) and", open(path).read())
        }
    )
    kept = f"training state saved in {', '.join(saved)}" if saved else "no training was under way"
    logger.error(
        f"Interrupted: {len(statuses)} job(s) stopped; {kept}. "
        "Run the same command again to resume (finished outputs are kept)."
    )
    raise SystemExit(1)


CLAIMS_JSON = "results/claims.json"
"""The claims' verdicts (rules/claims.smk), whose tally line a successful run ends with."""
STARTED = time.time()


def report_claims(path=CLAIMS_JSON):
    """After a successful run: the claims' tally (`23 of 25 claims hold; failing: ...; not run: ...`)
    in one line, when this run asked for the claims (`all`) or wrote them. A failing claim is a result:
    the run still succeeds."""
    try:
        targets = {rule.name for rule in workflow.dag.targetrules} | set(map(str, workflow.dag.targetfiles))
    except AttributeError:
        targets = set()
    if os.path.exists(path) and (os.path.getmtime(path) >= STARTED or targets & {"all", "claims", path}):
        logger.info(f"Claims: {read_json(path)['tally']}")


SEALED_CHECKED = ".snakemake/pyode-sealed.json"
"""Sealed files already found intact, by path -> [size, mtime in ns], so each is hashed only once."""


def verify_sealed_results(results="results"):
    """Stop before any job if a sealed file under `results/` (data, models: pyode.save_arrays) is
    corrupt, so that Snakemake deletes no output of a job that would only fail on it. The
    cross-validation's files are plain .npz for other languages, and training states check
    themselves (a corrupt checkpoint falls back to the previous one)."""
    try:
        checked = read_json(SEALED_CHECKED)
    except (OSError, ValueError):
        checked = {}
    intact = {}
    for path in sorted(glob.glob(f"{results}/**/*.npz", recursive=True)):
        if path.startswith(f"{results}/crossval/") or "/train-state/" in path:
            continue
        status = os.stat(path)
        stamp = [status.st_size, status.st_mtime_ns]
        if checked.get(path) != stamp:
            try:
                verify_seal(path)
            except CorruptFile as error:
                stop(f"{error}: restore it or delete it (the workflow then makes it again); no job was started")
        intact[path] = stamp
    if intact != checked:
        write_json(SEALED_CHECKED, intact)


verify_sealed_results()
