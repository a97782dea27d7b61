"""Gathering every run's metrics into one table, with its config and software versions."""

import csv
import json
from pathlib import Path

from ._provenance import versions

NESTED = ("settings", "versions")


def write_summary(metrics_paths: list[Path], csv_path: Path, json_path: Path, *, config: dict | None = None):
    """One CSV row per run (scalar metrics) and a JSON file with everything, config included."""
    runs = []
    for path in metrics_paths:
        record = json.loads(Path(path).read_text())
        record["path"] = str(path)
        runs.append(record)
    columns: list[str] = []
    for record in runs:
        for key, value in record.items():
            if key not in NESTED and not isinstance(value, (dict, list)) and key not in columns:
                columns.append(key)
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    with open(csv_path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(runs)
    json_path.write_text(json.dumps({"config": config, "versions": versions(), "runs": runs}, indent=2))
