"""Every run side by side, and what changed between two result folders.

`write_summary` gathers the experiments' metrics.json files into one tidy table
(`results/summary.csv`: one row per run and metric, with its unit and the settings that
differ between runs of that experiment) and one JSON file with everything. `compare` reads
two result folders and says which settings and metrics differ, with relative differences.
`write_html_table` renders any of the workflow's CSV tables as a page for `snakemake --report`.
"""

import csv
import html
import io
import math
from pathlib import Path
from typing import Any

from .. import atomic_write, code_version, read_json, versions, write_json
from ._common import check_record, load_records, shape_problem

COLUMNS = ("experiment", "run", "metric", "value", "unit")


def flatten(settings: dict, prefix: str = "") -> dict[str, Any]:
    """Nested settings as {"train.steps": 4000, ...}; lists kept whole."""
    flat = {}
    for key, value in settings.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, path + "."))
        else:
            flat[path] = value
    return flat


def varying_settings(records: list[dict]) -> dict[str, list[str]]:
    """Per experiment, the flattened setting keys whose values differ between its runs."""
    values: dict[str, dict[str, set]] = {}
    for record in records:
        for entry in record["runs"]:
            for key, value in flatten(entry["settings"]).items():
                values.setdefault(record["experiment"], {}).setdefault(key, set()).add(repr(value))
    return {
        experiment: sorted(key for key, seen in keys.items() if len(seen) > 1)
        for experiment, keys in values.items()
    }


def tidy_rows(records: list[dict]) -> tuple[list[dict], list[str]]:
    """One row per (experiment, run, metric), with the varying settings as extra columns."""
    varying = varying_settings(records)
    setting_columns = sorted({key for keys in varying.values() for key in keys})
    rows = []
    for record in records:
        for entry in record["runs"]:
            flat = flatten(entry["settings"])
            settings = {key: _cell(flat.get(key)) for key in varying.get(record["experiment"], [])}
            for metric, value in entry["metrics"].items():
                if isinstance(value, (int, float)) or value is None:
                    rows.append(
                        {
                            "experiment": record["experiment"],
                            "run": entry["run"],
                            "metric": metric,
                            "value": "" if value is None else value,
                            "unit": record["units"].get(metric, ""),
                            **settings,
                        }
                    )
            if record["status"] != "ok":
                rows.append(
                    {
                        "experiment": record["experiment"],
                        "run": entry["run"],
                        "metric": "status",
                        "value": record["status"],
                        "unit": record.get("reason", ""),
                        **settings,
                    }
                )
    return rows, setting_columns


def write_summary(
    metrics_paths: list[str | Path], csv_path: str | Path, json_path: str | Path, *, config=None
):
    """The tidy summary.csv and summary.json (every record, the workflow config, software versions)."""
    records = load_records(metrics_paths)
    rows, setting_columns = tidy_rows(records)
    table = io.StringIO()
    writer = csv.DictWriter(table, fieldnames=[*COLUMNS, *setting_columns], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(csv_path, table.getvalue())
    write_json(json_path, {"config": config, "versions": versions(), "code": code_version(), "runs": records})
    return rows


def _cell(value) -> str:
    return "" if value is None else str(value)


TABLE_STYLE = """
body { font: 13px/1.4 system-ui, sans-serif; margin: 0.5em; color: #222; }
table { border-collapse: collapse; }
th, td { padding: 2px 8px; border-bottom: 1px solid #ddd; text-align: left; white-space: nowrap; }
th { position: sticky; top: 0; background: #f3f3f3; }
td.number { text-align: right; font-variant-numeric: tabular-nums; }
"""


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return text.strip().lower() not in ("nan", "inf", "-inf", "infinity", "")


def _shown(text: str) -> str:
    """A number to 6 significant digits (the CSV keeps them all); anything else as written."""
    if _is_number(text) and not text.lstrip("-").isdigit():
        return f"{float(text):.6g}"
    return text


NUMBER_CELL = '<td class="number">'


def write_html_table(csv_path: str | Path, html_path: str | Path, *, title: str) -> int:
    """`csv_path` as one self-contained HTML page (no scripts); returns the number of rows."""
    with open(csv_path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        raise ValueError(f"{csv_path} is empty: no header row")
    header, body = rows[0], rows[1:]
    numeric = [
        bool(body) and all(_is_number(row[i]) or not row[i] for row in body) for i in range(len(header))
    ]
    lines = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{TABLE_STYLE}</style></head><body>",
        f"<p>{html.escape(title)}: {len(body)} rows from <code>{html.escape(Path(csv_path).name)}</code>"
        " (numbers to 6 significant digits here; the CSV has them all).</p>",
        "<table><thead><tr>" + "".join(f"<th>{html.escape(name)}</th>" for name in header) + "</tr></thead>",
        "<tbody>",
    ]
    for row in body:
        cells = (  # every number rounded; right-aligned where the whole column is numbers
            (NUMBER_CELL if numeric[i] else "<td>") + f"{html.escape(_shown(cell))}</td>"
            for i, cell in enumerate(row)
        )
        lines.append("<tr>" + "".join(cells) + "</tr>")
    lines += ["</tbody></table></body></html>", ""]
    atomic_write(html_path, "\n".join(lines))
    return len(body)


def _records_of(folder: Path) -> list[dict]:
    """The records of a result folder: its summary.json's, or else those of every metrics.json in it."""
    if not folder.exists():
        raise FileNotFoundError(f"{folder} does not exist")
    if not folder.is_dir():
        raise ValueError(f"{folder} is a file, not a result folder")
    summary = folder / "summary.json"
    if summary.exists():
        from .. import CorruptFile

        content = read_json(summary)
        problem = shape_problem(content, {"runs": list})
        if problem:
            raise CorruptFile(f"{summary} is not a pyode summary: {problem}")
        return [check_record(record, f"{summary}: runs[{i}]") for i, record in enumerate(content["runs"])]
    paths = sorted(p for p in folder.rglob("metrics.json") if "train-state" not in p.parts)
    if not paths:
        raise FileNotFoundError(f"{folder} holds neither summary.json nor any metrics.json")
    return load_records(paths)


def _by_run(records: list[dict]) -> dict[tuple[str, str], dict]:
    runs = {}
    for record in records:
        for entry in record["runs"]:
            runs[(record["experiment"], entry["run"])] = {
                **entry,
                "units": record["units"],
                "code": record.get("code"),
            }
    return runs


def relative_difference(a, b) -> float:
    """(b - a) / |a|; inf when a is 0 and b is not, 0 when both are."""
    if a == b:
        return 0.0
    return (b - a) / abs(a) if a else math.inf


RESOURCE_UNITS = ("s", "MiB")
"""Units of what a run costs on a machine (time, memory): they differ between any two runs."""


def _code_differences(a: dict, b: dict, common: list) -> list[str]:
    """Lines naming each code-version field that differs, once per experiment and pair of values."""
    runs_by_change: dict[tuple, list[str]] = {}
    for key in common:
        code_a, code_b = a[key]["code"] or {}, b[key]["code"] or {}
        if bool(code_a) != bool(code_b):  # results written before pyode recorded its code
            recorded = ["recorded" if code else "not recorded" for code in (code_a, code_b)]
            runs_by_change.setdefault((key[0], "code version", *recorded), []).append(key[1])
            continue
        for name in sorted(set(code_a) | set(code_b)):
            if code_a.get(name) != code_b.get(name):
                values = [_short(code.get(name)) for code in (code_a, code_b)]
                runs_by_change.setdefault((key[0], name, *values), []).append(key[1])
    return [
        f"  {experiment} ({len(runs)} run{'s' if len(runs) > 1 else ''})  {name}: {value_a} -> {value_b}"
        for (experiment, name, value_a, value_b), runs in runs_by_change.items()
    ]


def _short(value) -> str:
    """A code-version value as shown: digests and commits by their first 12 characters."""
    if isinstance(value, str) and len(value) in (40, 64) and all(c in "0123456789abcdef" for c in value):
        return value[:12]
    return repr(value)


def compare(folder_a: str | Path, folder_b: str | Path, *, resources: bool = False) -> str:
    """A report of what differs between two result folders: the code that made them first (pyode's
    commit, source digest and library versions), then settings, then metrics (with relative
    differences), then runs found in only one. Time and memory (units s, MiB) only with `resources`."""
    a, b = _by_run(_records_of(Path(folder_a))), _by_run(_records_of(Path(folder_b)))
    lines = [f"pyode compare: A = {folder_a}, B = {folder_b}"]
    common = [key for key in a if key in b]
    code_lines = _code_differences(a, b, common)
    lines.append(f"code that differs ({len(code_lines)}):")
    lines += code_lines or ["  none"]
    settings_lines, metric_lines = [], []
    for key in common:
        label = f"{key[0]} {key[1]}"
        flat_a, flat_b = flatten(a[key]["settings"]), flatten(b[key]["settings"])
        for name in sorted(set(flat_a) | set(flat_b)):
            if flat_a.get(name) != flat_b.get(name):
                settings_lines.append(f"  {label}  {name}: {flat_a.get(name)!r} -> {flat_b.get(name)!r}")
        metrics_a, metrics_b = a[key]["metrics"], b[key]["metrics"]
        for name in sorted(set(metrics_a) & set(metrics_b)):
            unit = a[key]["units"].get(name, "")
            if unit in RESOURCE_UNITS and not resources:
                continue
            value_a, value_b = metrics_a[name], metrics_b[name]
            if value_a != value_b:
                change = ""
                if isinstance(value_a, (int, float)) and isinstance(value_b, (int, float)):
                    change = f" ({relative_difference(value_a, value_b):+.3%})"
                metric_lines.append(f"  {label}  {name}: {value_a} -> {value_b}{change} {unit}".rstrip())
    lines.append(f"settings that differ ({len(settings_lines)}):")
    lines += settings_lines or ["  none"]
    left_out = "" if resources else ", time and memory left out"
    lines.append(f"metrics that differ ({len(metric_lines)}{left_out}):")
    lines += metric_lines or ["  none"]
    for only, here, there in (("A", a, b), ("B", b, a)):
        missing = sorted(f"{k[0]} {k[1]}" for k in here if k not in there)
        if missing:
            lines.append(f"runs only in {only}: {', '.join(missing)}")
    return "\n".join(lines) + "\n"


# The commands of the summary (docs/architecture.md, "Adding an experiment").
from ._registry import Command, Experiment, argument  # noqa: E402


def _summary_command(args) -> None:
    config = read_json(args.config) if args.config else None
    write_summary(args.metrics, args.out_csv, args.out_json, config=config)


def _table_command(args) -> None:
    write_html_table(args.csv, args.out, title=args.title)


def _compare_command(args) -> None:
    print(compare(args.results_a, args.results_b, resources=args.resources), end="")


DECLARATION = Experiment(
    "summary",
    commands=(
        Command(
            "summary",
            _summary_command,
            "gather metrics.json files into one tidy table",
            (
                argument("metrics", nargs="+"),
                argument("--config", help="the workflow config, as a JSON file"),
                argument("--out-csv", required=True),
                argument("--out-json", required=True),
            ),
        ),
        Command(
            "table",
            _table_command,
            "a CSV table as an HTML page (for the report)",
            (argument("csv", metavar="CSV"), argument("--title", required=True, help="what the table shows")),
            out="the HTML file",
        ),
        Command(
            "compare",
            _compare_command,
            "what differs between two result folders",
            (
                argument("results_a", metavar="RESULTS_A"),
                argument("results_b", metavar="RESULTS_B"),
                argument("--resources", action="store_true", help="also compare time and memory (s, MiB)"),
            ),
        ),
    ),
    trains=False,
)
