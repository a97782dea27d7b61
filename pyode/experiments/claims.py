"""The claims ledger: every claim the lab makes about its experiments, judged on a results folder.

`config/claims.yaml` lists the claims (its schema: `workflow/schemas/claims.schema.yaml`). A claim
names the metrics it reads (a metrics.json run's metric, or a field of another JSON or CSV result),
the conditions they must meet (`left OP times * right + plus`, `right` a number, another metric or
the published value), the paper and table it comes from with the published value, and the presets
it is expected to hold for. `judge_claims` reads each metric over seeds (mean, sample standard
deviation, n and the values), judges each condition on the means and gives each claim a verdict:
holds, fails, or not run (its results are absent, or this run is not one of its presets);
`write_claims` writes claims.json (with the date, machine, code and software versions, so that a
documented run's file can be kept as a reference), claims.md and the figure. A failing claim is a
result, not an error.

Seeds. A metric names a run without its seed; every seed of that run found in the results is
read: in a metrics.json, every entry of the run (the same name repeated, or `RUN/seedN`), in the
named file and in the same file under `seedN/` folders beside it (`DIR/seedN/metrics.json`). So a
ledger written for one seed reads several once they exist.

Nothing here imports JAX (the workflow plans with it); the figure's code is in `pyode.plots`.
"""

import csv
import datetime
import math
import operator
import os
import platform
import posixpath
import re
import statistics
from pathlib import Path
from typing import Any

from .. import UserError, atomic_write, code_version, read_json, versions, write_json

EXPERIMENT = "claims"
LEDGER = "config/claims.yaml"
SCHEMA = "workflow/schemas/claims.schema.yaml"
DEFAULT_PRESET = "default"
"""The preset of config/config.yaml alone; any other is config/NAME.yaml merged over it."""

HOLDS, FAILS, NOT_RUN = "holds", "fails", "not run"
VERDICTS = (HOLDS, FAILS, NOT_RUN)

OPERATORS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
SYMBOLS = {"<": "<", "<=": "≤", ">": ">", ">=": "≥"}
PUBLISHED = "published"
"""A condition's `right` that means the published value of its `left` metric."""

SEED_RUN = re.compile(r"^(?P<run>.+)/seed(?P<seed>\d+)$")
"""A run entry of one seed, `RUN/seedN`."""
SEED_FOLDER = re.compile(r"^seed(?P<seed>\d+)$")
"""A folder of one seed's results, `seedN`, beside the file a metric names."""


class LedgerError(UserError):
    """The ledger is not one the claims can be judged from; the message names the claim and why."""


class Unreadable(Exception):
    """A metric these results do not give (absent, skipped, another run's): a reason, not an error."""


# --- the ledger --------------------------------------------------------------------------------


def load_ledger(path: str | Path = LEDGER, *, schema: str | Path | None = None) -> list[dict]:
    """The claims of the ledger at `path`, checked against `schema` (when given) and by `check_claims`."""
    import yaml

    path = Path(path)
    try:
        ledger = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise LedgerError(f"{path} does not exist") from None
    except yaml.YAMLError as error:
        raise LedgerError(f"{path} is not YAML: {error}") from None
    if schema is not None:
        check_schema(ledger, schema, where=str(path))
    if not isinstance(ledger, dict) or not isinstance(ledger.get("claims"), list):
        raise LedgerError(f"{path}: the ledger is a mapping with a list `claims`")
    check_claims(ledger["claims"], where=str(path))
    return ledger["claims"]


def check_schema(ledger, schema: str | Path, *, where: str) -> None:
    """Raise a LedgerError naming the key path and the rule when `ledger` breaks the JSON schema."""
    import jsonschema
    import yaml

    rules = yaml.safe_load(Path(schema).read_text())
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(rules).iter_errors(ledger))
    if error is not None:
        at = list(error.absolute_path)
        claim = _claim_at(ledger, at)
        if claim:
            at = at[2:]
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in at).lstrip(".")
        raise LedgerError(f"{where}: {claim}{path or 'top level'}: {error.message}")


def _claim_at(ledger, path: list) -> str:
    """`claim 'ID': ` when `path` is inside a claim that has an id, else nothing."""
    if len(path) >= 2 and path[0] == "claims" and isinstance(path[1], int):
        try:
            return f"claim {ledger['claims'][path[1]]['id']!r}: "
        except (KeyError, TypeError, IndexError):
            return ""
    return ""


def check_claims(claims: list[dict], *, where: str = LEDGER) -> None:
    """What the schema cannot say: ids unique, every name a condition uses is one of the claim's
    metrics, `published` given for the metrics a condition compares with their published value."""
    seen = set()
    for claim in claims:
        name = claim["id"]
        if name in seen:
            raise LedgerError(f"{where}: two claims have the id {name!r}")
        seen.add(name)
        metrics, published = claim["metrics"], claim.get("published", {})
        if PUBLISHED in metrics:
            raise LedgerError(f"{where}: claim {name!r}: no metric may be called {PUBLISHED!r}")
        for metric in published:
            if metric not in metrics:
                raise LedgerError(
                    f"{where}: claim {name!r}: published value of {metric!r}, not one of its metrics"
                )
        for index, condition in enumerate(claim["require"]):
            at = f"{where}: claim {name!r}: require[{index}]"
            if condition["left"] not in metrics:
                raise LedgerError(
                    f"{at}: left is {condition['left']!r}; its metrics are {', '.join(metrics)}"
                )
            right = condition["right"]
            if right == PUBLISHED and condition["left"] not in published:
                raise LedgerError(
                    f"{at}: compares {condition['left']!r} with its published value, which is not given"
                )
            if isinstance(right, str) and right != PUBLISHED and right not in metrics:
                raise LedgerError(
                    f"{at}: right is {right!r}; its metrics are {', '.join(metrics)}, or {PUBLISHED!r}"
                )


def presets_of(claims: list[dict]) -> list[str]:
    """Every preset a claim is declared for, in order of first mention."""
    return list(dict.fromkeys(preset for claim in claims for preset in claim["presets"]))


def preset_config(name: str, base: str | Path) -> dict:
    """The config of preset `name`: the base config file (`default`), or config NAME.yaml beside it
    merged over it as Snakemake merges a --configfile (`snakemake.utils.update_config`)."""
    import yaml
    from snakemake.utils import update_config

    base = Path(base)
    merged = yaml.safe_load(base.read_text())
    if name != DEFAULT_PRESET:
        preset = base.parent / f"{name}.yaml"
        if not preset.exists():
            raise LedgerError(f"{LEDGER}: a claim is declared for preset {name!r}, but there is no {preset}")
        update_config(merged, yaml.safe_load(preset.read_text()) or {})
    return merged


def sections_of(claim: dict) -> list[str]:
    """The config sections a claim's results come from: the first folder of each file it reads."""
    return sorted({metric["file"].split("/")[0] for metric in claim["metrics"].values()})


def applicability(claims: list[dict], config: dict, presets: dict[str, dict]) -> dict[str, dict]:
    """Whether this run is one of each claim's presets: {"preset": NAME} when, for every config
    section the claim reads, this run's section equals that preset's (`presets`: each preset's
    merged config); else {"reason": ...}. The seed is not compared: a claim holds over seeds."""
    found = {}
    for claim in claims:
        sections = sections_of(claim)
        matched = next(
            (
                name
                for name in claim["presets"]
                if name in presets and all(config.get(s) == presets[name].get(s) for s in sections)
            ),
            None,
        )
        if matched is not None:
            found[claim["id"]] = {"preset": matched}
        else:
            declared = ", ".join(claim["presets"])
            found[claim["id"]] = {
                "reason": f"declared for {declared}; this run's {', '.join(sections)} "
                f"config {'section is' if len(sections) == 1 else 'sections are'} not "
                f"{'that preset' if len(claim['presets']) == 1 else 'any of those presets'}'s"
            }
    return found


def seed_files(file: str, available) -> list[str]:
    """`file` and its seeds' copies (`DIR/seedN/NAME`) among `available` (paths under the results)."""
    folder, name = posixpath.split(file)
    prefix = f"{folder}/" if folder else ""
    found = []
    for path in sorted(available):
        if path == file:
            found.append(path)
        elif path.startswith(prefix) and path.endswith(f"/{name}"):
            middle = path[len(prefix) : -len(name) - 1]
            if SEED_FOLDER.match(middle):
                found.append(path)
    return found


def unwritten(claims: list[dict], applies: dict[str, dict], written) -> list[str]:
    """One line per file that a claim this run is a preset of reads and that is not among `written`
    (paths under the results that the workflow's rules write for this config): a ledger to fix."""
    return [
        f"claim {claim['id']!r} (preset {applies[claim['id']]['preset']}) reads results/{metric['file']}, "
        "which no rule of this workflow writes for this config"
        for claim in claims
        if "preset" in applies[claim["id"]]
        for metric in claim["metrics"].values()
        if not seed_files(metric["file"], written)
    ]


def reads(claims: list[dict], path: str) -> bool:
    """Whether some claim reads `path` (under the results): one of its files or a seed's copy."""
    return any(seed_files(metric["file"], [path]) for claim in claims for metric in claim["metrics"].values())


# --- reading metrics ---------------------------------------------------------------------------


def _number(value) -> float:
    if isinstance(value, bool):
        return float(value)
    if value is None:
        return math.nan
    if isinstance(value, (int, float)):
        return float(value)
    raise Unreadable(f"{value!r} is not a number")


def _seed_of(path: str) -> str | None:
    folder = posixpath.basename(posixpath.dirname(path))
    match = SEED_FOLDER.match(folder)
    return match["seed"] if match else None


def _run_entries(record: dict, run: str) -> list[tuple[Any, dict]]:
    """(seed, entry) of every entry of `run` in a metrics.json record: the name itself or `run/seedN`."""
    found = []
    for entry in record.get("runs", []):
        name = entry.get("run")
        match = SEED_RUN.match(name or "")
        if name == run or (match and match["run"] == run):
            seed = (entry.get("settings") or {}).get("seed", match["seed"] if match else None)
            found.append((seed, entry))
    return found


def _cell(text: str):
    """A CSV cell as the value it writes: true/false, a number, or the text."""
    if text in ("True", "true"):
        return True
    if text in ("False", "false"):
        return False
    try:
        return float(text)
    except ValueError:
        return text


def _dig(value, dotted: str, where: str):
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            raise Unreadable(f"{where} has no {dotted!r}")
        value = value[part]
    return value


def _equal(value, wanted) -> bool:
    if isinstance(value, bool) or isinstance(wanted, bool):
        return value is wanted or (isinstance(value, str) and value.lower() == str(wanted).lower())
    if isinstance(value, (int, float)) and isinstance(wanted, (int, float)):
        return math.isclose(value, wanted, rel_tol=1e-12, abs_tol=0.0)
    return str(value) == str(wanted)


def _selected(row: dict, where: dict) -> bool:
    for field, test in where.items():
        if field not in row:
            return False
        value = row[field]
        if not isinstance(test, dict):
            ok = _equal(value, test)
        else:
            ((kind, argument),) = test.items()
            if kind == "not":
                ok = not _equal(value, argument)
            elif kind == "in":
                ok = any(_equal(value, a) for a in argument)
            elif kind == "match":
                ok = re.search(argument, str(value)) is not None
            elif kind == "not_match":
                ok = re.search(argument, str(value)) is None
            else:
                ok = isinstance(value, (int, float)) and not isinstance(value, bool)
                ok = ok and (value <= argument if kind == "at_most" else value >= argument)
        if not ok:
            return False
    return True


REDUCERS = {
    "min": min,
    "max": max,
    "mean": statistics.fmean,
    "sum": math.fsum,
    "all": lambda values: float(all(values)),
    "fraction": lambda values: sum(map(bool, values)) / len(values),
}


def _rows_value(rows: list, metric: dict, where: str) -> float:
    """One number from the rows of a JSON list or a CSV file: `where` selects, `key` reads, `reduce`."""
    chosen = [row for row in rows if isinstance(row, dict) and _selected(row, metric.get("where", {}))]
    reduce = metric.get("reduce", "only")
    if reduce == "count":
        return float(len(chosen))
    selection = f"{where}: {len(chosen)} row{'s' if len(chosen) != 1 else ''} match {metric.get('where', {})}"
    if not chosen:
        raise Unreadable(selection)
    if reduce == "only" and len(chosen) > 1:
        raise Unreadable(f"{selection}; the claim reads exactly one")
    values = [_dig(row, metric["key"], where) for row in chosen]
    if reduce == "only":
        return _number(values[0])
    if reduce in ("all", "fraction"):
        return REDUCERS[reduce](values)
    return float(REDUCERS[reduce]([_number(v) for v in values]))


def _file_value(path: Path, metric: dict, where: str) -> float:
    """The number a metric reads from one JSON (not metrics.json) or CSV file."""
    if path.suffix == ".csv":
        with open(path, newline="") as f:
            rows = [{k: _cell(v) for k, v in row.items()} for row in csv.DictReader(f)]
        return _rows_value(rows, metric, where)
    value = read_json(path)
    if "path" in metric:
        value = _dig(value, metric["path"], where)
    if isinstance(value, list):
        return _rows_value(value, metric, where)
    if "where" in metric:
        raise Unreadable(f"{where}: {metric.get('path', 'the file')} is not a list of rows to select from")
    return _number(_dig(value, metric["key"], where))


def read_metric(metric: dict, results: str | Path, available) -> dict:
    """A metric's value for every seed found among `available` (paths under `results`): the values,
    their seeds and files. Raises Unreadable with the reason when these results do not give it."""
    results = Path(results)
    files = seed_files(metric["file"], available)
    if not files:
        raise Unreadable(f"no {metric['file']} in these results")
    values, seeds = [], []
    for file in files:
        path = results / file
        if not path.exists():
            raise Unreadable(f"{file} is absent")
        folder_seed = _seed_of(file)
        if "run" not in metric:
            values.append(_file_value(path, metric, file))
            seeds.append(folder_seed)
            continue
        record = read_json(path)
        if not isinstance(record, dict) or not isinstance(record.get("runs"), list):
            raise Unreadable(f"{file} is not an experiment's metrics record")
        if record.get("status", "ok") != "ok":
            reason = f": {record['reason']}" if record.get("reason") else ""
            raise Unreadable(f"{file}: {record['status']}{reason}")
        entries = _run_entries(record, metric["run"])
        if not entries:
            raise Unreadable(f"{file} has no run {metric['run']!r}")
        for seed, entry in entries:
            measured = entry.get("metrics") or {}
            if metric["key"] not in measured:
                raise Unreadable(f"{file}: run {metric['run']!r} has no metric {metric['key']!r}")
            values.append(_number(measured[metric["key"]]))
            seeds.append(seed if seed is not None else folder_seed)
    return {"values": values, "seeds": seeds, "files": files, **aggregate(values)}


def aggregate(values: list[float]) -> dict:
    """Mean, sample standard deviation (None for one value) and n of one metric's seeds."""
    n = len(values)
    finite = all(math.isfinite(v) for v in values)
    mean = statistics.fmean(values) if n else math.nan
    sd = statistics.stdev(values) if n >= 2 and finite else None
    return {"mean": mean, "sd": sd, "n": n}


# --- judging -----------------------------------------------------------------------------------


def _format(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:.4g}"


def condition_text(condition: dict, published: dict | None = None) -> str:
    """A condition as read: `anode ≥ 0.99`, `node_nfe > 2 × anode_nfe`, `order within 0.15 of 0.5`."""
    right = condition["right"]
    if right == PUBLISHED and published is not None and condition["left"] in published:
        right = f"published ({_format(published[condition['left']])})"
    right = _format(right) if isinstance(right, (int, float)) else str(right)
    times, plus = condition.get("times"), condition.get("plus")
    bound = f"{_format(times)} × {right}" if times is not None else right
    if plus:
        bound += f" {'+' if plus > 0 else '-'} {_format(abs(plus))}"
    if condition["op"] == "within":
        return f"{condition['left']} within {_format(condition['tolerance'])} of {bound}"
    return f"{condition['left']} {SYMBOLS[condition['op']]} {bound}"


def judge_condition(condition: dict, measured: dict[str, dict], published: dict) -> dict:
    """One condition on the means: the bound, whether it holds, the margin (positive: it holds by that
    much, in the left metric's unit) and the margin in standard deviations when seeds give one."""
    left = measured[condition["left"]]
    right = condition["right"]
    if isinstance(right, (int, float)):
        right_mean, right_sd = float(right), None
    elif right == PUBLISHED:
        right_mean, right_sd = float(published[condition["left"]]), None
    else:
        right_mean, right_sd = measured[right]["mean"], measured[right]["sd"]
    times, plus = condition.get("times", 1.0), condition.get("plus", 0.0)
    bound = times * right_mean + plus
    value = left["mean"]
    if condition["op"] == "within":
        margin = condition["tolerance"] - abs(value - bound)
        holds = abs(value - bound) <= condition["tolerance"]
    else:
        margin = bound - value if condition["op"] in ("<", "<=") else value - bound
        holds = OPERATORS[condition["op"]](value, bound)
    spreads = [s for s in (left["sd"], None if right_sd is None else abs(times) * right_sd) if s]
    spread = math.sqrt(sum(s * s for s in spreads)) if spreads else None
    finite = math.isfinite(value) and math.isfinite(bound)
    return {
        "text": condition_text(condition, published),
        "left": condition["left"],
        "op": condition["op"],
        "value": value,
        "sd": left["sd"],
        "n": left["n"],
        "values": left["values"],
        "bound": bound,
        **({"tolerance": condition["tolerance"]} if condition["op"] == "within" else {}),
        "holds": bool(holds) and finite,
        "margin": margin if finite else None,
        "margin_sd": margin / spread if finite and spread else None,
    }


def judge_claim(claim: dict, results: str | Path, available, applies: dict) -> dict:
    """A claim's verdict and everything it was read from. `applies` is {"preset": NAME} when this run
    is one of its presets, else {"reason": ...}; a claim for another preset is not run here, but its
    metrics are read where present and `would` says what its verdict would be."""
    published = claim.get("published", {})
    measured, unreadable = {}, {}
    for name, metric in claim["metrics"].items():
        entry = {
            key: metric[key] for key in ("file", "run", "key", "path", "where", "reduce") if key in metric
        }
        if name in published:
            entry["published"] = published[name]
        try:
            entry.update(read_metric(metric, results, available))
        except Unreadable as why:
            entry["unreadable"] = unreadable[name] = str(why)
        measured[name] = entry
    conditions, would = [], None
    if not unreadable:
        conditions = [judge_condition(c, measured, published) for c in claim["require"]]
        would = HOLDS if all(c["holds"] for c in conditions) else FAILS
    if "preset" not in applies:
        verdict, reason = NOT_RUN, applies.get("reason", "not declared for this run")
    elif unreadable:
        verdict = NOT_RUN
        grouped: dict[str, list[str]] = {}
        for name, why in unreadable.items():
            grouped.setdefault(why, []).append(name)
        reason = "; ".join(f"{', '.join(names)}: {why}" for why, names in grouped.items())
    else:
        verdict = would
        failed = [c for c in conditions if not c["holds"]]
        reason = "; ".join(f"{c['text']} is false ({c['left']} = {_format(c['value'])})" for c in failed)
    files = sorted({f for entry in measured.values() for f in entry.get("files", [entry["file"]])})
    return {
        "id": claim["id"],
        "statement": claim["statement"],
        "presets": claim["presets"],
        "preset": applies.get("preset"),
        "verdict": verdict,
        "reason": reason,
        "would": would if verdict == NOT_RUN else None,
        **({"paper": claim["paper"]} if "paper" in claim else {}),
        "published": published,
        "metrics": measured,
        "conditions": conditions,
        "require": [condition_text(c, published) for c in claim["require"]],
        "files": files,
        **({"note": claim["note"]} if "note" in claim else {}),
    }


def available_files(results: str | Path) -> set[str]:
    """Every JSON and CSV file under `results`, as paths relative to it (training states left out)."""
    results = Path(results)
    return {
        path.relative_to(results).as_posix()
        for pattern in ("*.json", "*.csv")
        for path in results.rglob(pattern)
        if "train-state" not in path.parts and path.parts[len(results.parts)] != "settings"
    }


def judge_claims(
    claims: list[dict],
    results: str | Path,
    *,
    available=None,
    applies: dict[str, dict] | None = None,
    preset: str = DEFAULT_PRESET,
) -> list[dict]:
    """Every claim judged on `results`. The workflow gives `available` (the files this run writes
    that the claims read) and `applies` (`applicability`); alone, every JSON and CSV file under
    `results` is read and the claims declared for `preset` are judged."""
    if available is None:
        available = available_files(results)
    if applies is None:
        applies = {
            claim["id"]: {"preset": preset}
            if preset in claim["presets"]
            else {"reason": f"declared for {', '.join(claim['presets'])}; these results are {preset}'s"}
            for claim in claims
        }
    available = set(available)
    return [judge_claim(claim, results, available, applies[claim["id"]]) for claim in claims]


MAX_NAMED = 10
"""The tally line names the claims not run when there are at most this many."""


def tally(judged: list[dict]) -> str:
    """One line: `23 of 25 claims hold; failing: a, b; not run: 3 (c, d, e)`."""
    by = {verdict: [claim["id"] for claim in judged if claim["verdict"] == verdict] for verdict in VERDICTS}
    held, failing, not_run = by[HOLDS], by[FAILS], by[NOT_RUN]
    line = f"{len(held)} of {len(held) + len(failing)} claims hold; failing: {', '.join(failing) or 'none'}"
    line += f"; not run: {len(not_run)}"
    if not_run:
        named = ", ".join(not_run) if len(not_run) <= MAX_NAMED else "results/claims.md says why"
        line += f" ({named})"
    return line


# --- writing -----------------------------------------------------------------------------------


WOULD = {HOLDS: "hold", FAILS: "fail"}


def _ours(entry: dict) -> str:
    if "unreadable" in entry:
        return "—"
    sd = "—" if entry["sd"] is None else _format(entry["sd"])
    return f"{_format(entry['mean'])} ± {sd} ({entry['n']})"


def _md(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown(judged: list[dict], *, run: str) -> str:
    """claims.md: the tally, then one row per claim (conditions, published value, ours as mean ± sd
    (n), verdict, the files read), then why each claim that does not hold does not."""
    lines = [
        "# Claims",
        "",
        f"Every claim of `config/claims.yaml`, judged on this run's results ({run}). Ours is the mean ± "
        "sample standard deviation over seeds (n seeds; — for one). A claim for another preset, or "
        "whose results this run does not write, is *not run*.",
        "",
        f"**{tally(judged)}**",
        "",
        "| claim | statement | requires | published | ours: mean ± sd (n) | verdict | read from |",
        "|---|---|---|---|---|---|---|",
    ]
    for claim in judged:
        published = "<br>".join(f"{k}: {_format(v)}" for k, v in claim["published"].items()) or "—"
        if "paper" in claim:
            source = claim["paper"]["cite"] + (
                f", {claim['paper']['table']}" if "table" in claim["paper"] else ""
            )
            published = f"{published}<br>({source})" if claim["published"] else f"— ({source})"
        ours = "<br>".join(f"{name}: {_ours(entry)}" for name, entry in claim["metrics"].items())
        verdict = claim["verdict"] + (f" (would {WOULD[claim['would']]})" if claim["would"] else "")
        cells = [
            f"`{claim['id']}`",
            claim["statement"],
            "<br>".join(claim["require"]),
            published,
            ours,
            f"**{verdict}**" if claim["verdict"] == FAILS else verdict,
            "<br>".join(f"`{file}`" for file in claim["files"]),
        ]
        lines.append("| " + " | ".join(map(_md, cells)) + " |")
    explained = [claim for claim in judged if claim["verdict"] != HOLDS or "note" in claim]
    if explained:
        lines += ["", "## Why, and notes", ""]
        for claim in explained:
            parts = [f"{claim['verdict']}: {claim['reason']}" if claim["verdict"] != HOLDS else ""]
            parts.append(claim.get("note", ""))
            lines.append(f"- `{claim['id']}`: " + " ".join(p for p in parts if p))
    return "\n".join(lines) + "\n"


def write_claims(
    judged: list[dict], *, out_json: str | Path, out_md: str | Path, figure: str | Path | None, run: str
) -> str:
    """claims.json, claims.md and (when `figure` is given) the figure; returns the tally line."""
    line = tally(judged)
    counts = {verdict: sum(claim["verdict"] == verdict for claim in judged) for verdict in VERDICTS}
    write_json(
        out_json,
        {
            "run": run,
            "tally": line,
            "counts": counts,
            "claims": judged,
            "written": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "machine": {
                "processor": platform.processor(),
                "cpus": os.cpu_count(),
                "platform": platform.platform(),
            },
            "code": code_version(EXPERIMENT),
            "versions": versions(),
        },
    )
    atomic_write(out_md, markdown(judged, run=run))
    if figure is not None:
        from .. import plots

        plots.claims_figure(judged, figure, title=f"Claims: {line}")
    return line


# The command (docs/architecture.md, "Adding a claim").
from ._registry import Command, Experiment, argument  # noqa: E402


def _standalone(claims: list[dict], args) -> tuple[str, dict | None]:
    """Without the workflow's settings: which preset the results are. `--preset` says so; else the
    config in the folder's summary.json is compared with the presets beside the ledger, as the
    workflow does; else they are taken for the default run's."""
    summary = Path(args.results) / "summary.json"
    if args.preset is None and summary.exists():
        config = read_json(summary).get("config")
        if isinstance(config, dict):
            base = Path(args.ledger).parent / "config.yaml"
            presets = {name: preset_config(name, base) for name in presets_of(claims)}
            return f"{summary}'s config", applicability(claims, config, presets)
    return f"preset {args.preset or DEFAULT_PRESET}", None


def _claims_command(args) -> None:
    claims = load_ledger(args.ledger, schema=args.schema)
    available = None
    if args.settings:
        settings = read_json(args.settings)
        run, available, applies = settings["run"], settings["readable"], settings["applies"]
    else:
        run, applies = _standalone(claims, args)
    judged = judge_claims(
        claims, args.results, available=available, applies=applies, preset=args.preset or DEFAULT_PRESET
    )
    print(write_claims(judged, out_json=args.out_json, out_md=args.out_md, figure=args.figure, run=run))


DECLARATION = Experiment(
    EXPERIMENT,
    commands=(
        Command(
            "claims",
            _claims_command,
            "judge the claims ledger on a results folder: claims.json, claims.md and a figure",
            (
                argument("--ledger", default=LEDGER, help=f"the claims (default {LEDGER})"),
                argument("--schema", help=f"check the ledger against this JSON schema first (e.g. {SCHEMA})"),
                argument("--results", default="results", help="the results folder (default results)"),
                argument(
                    "--preset",
                    help="the preset the results are (default: found from the results' summary.json config "
                    "and the presets beside the ledger, else default); not with --settings",
                ),
                argument(
                    "--settings",
                    help="the workflow's claims settings (what this run is and the files it writes); "
                    "without it every file under --results is read",
                ),
                argument("--out-json", required=True),
                argument("--out-md", required=True),
                argument("--figure", help="the figure to draw (.png)"),
            ),
        ),
    ),
    trains=False,
)
