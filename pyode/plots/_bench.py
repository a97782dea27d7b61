"""Benchmark figures: step times and speed-ups, solver overhead, scaling with length, batch and width,
work-precision diagrams and their table."""

import numpy as np
from matplotlib.ticker import NullLocator

from ._style import plt

__all__ = [
    "bench_counting",
    "bench_length",
    "bench_overhead",
    "bench_size",
    "bench_speedup",
    "bench_table",
    "bench_work_precision",
    "work_precision_table",
]


def _label(result: dict) -> str:
    problem = result["problem"]
    sizes = "-".join(str(n) for n in problem["sizes"])
    return f"{problem['name']} {problem['dtype']} (MLP {sizes}, batch {problem['batch']})"


def _ran(result: dict) -> list[dict]:
    return [r for r in result["results"] if r["status"] == "ran"]


def bench_speedup(results: list[dict]):
    """Median training-step time per method (log scale, min-max whiskers), a panel per problem and dtype.

    Each torchdiffeq and torchode bar is annotated with pyode's speed-up over it, like for like (odeint
    and torchode's autodiff against checkpoint, odeint_adjoint against backsolve, seminorm against
    seminorm).
    """
    fig, axes = plt.subplots(
        1, max(len(results), 1), figsize=(4.2 * max(len(results), 1), 4.2), squeeze=False
    )
    for ax, result in zip(axes[0], results, strict=False):
        ran = _ran(result)
        medians = np.array([r["step"]["median"] for r in ran]) * 1e3
        errors = (
            np.array(
                [
                    [r["step"]["median"] - r["step"]["minimum"], r["step"]["maximum"] - r["step"]["median"]]
                    for r in ran
                ]
            ).T
            * 1e3
        )
        colours = [
            {"pyode": "tab:blue", "torchdiffeq": "tab:orange", "torchode": "tab:red"}.get(
                r["library"], "tab:grey"
            )
            for r in ran
        ]
        x = np.arange(len(ran))
        ax.bar(x, medians, color=colours, yerr=errors if len(ran) else None, capsize=2)
        ax.set_xticks(x, [r["name"] for r in ran], rotation=60, ha="right", fontsize=7)
        ax.set_yscale("log")
        ax.set_ylabel("training step (ms)")
        ax.set_title(_label(result), fontsize=9)
        names, annotated = [r["name"] for r in ran], set()
        for pair in result["speedups"]:
            if pair["other"].startswith(("torchdiffeq", "torchode")) and pair["other"] not in annotated:
                annotated.add(pair["other"])
                i = names.index(pair["other"])
                ax.annotate(f"x{pair['speedup']:.1f}", (i, medians[i]), ha="center", va="bottom", fontsize=6)
    fig.tight_layout()
    return fig


def bench_overhead(results: list[dict]):
    """Solver overhead: step time over the network's own time for the same evaluations (1 = none)."""
    fig, axes = plt.subplots(
        1, max(len(results), 1), figsize=(4.2 * max(len(results), 1), 4.0), squeeze=False
    )
    for ax, result in zip(axes[0], results, strict=False):
        ran = _ran(result)
        x = np.arange(len(ran))
        ax.bar(x, [r["overhead"] for r in ran], color="tab:green")
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_xticks(x, [r["name"] for r in ran], rotation=60, ha="right", fontsize=7)
        ax.set_yscale("log")
        ax.set_ylabel("step time / network time")
        ax.set_title(_label(result), fontsize=9)
    fig.tight_layout()
    return fig


def bench_counting(results: list[dict]):
    """pyode's training step as the loop runs it: bare, with its evaluations counted every
    `count_every` steps (the loop's default), and counted on every step (1 = the bare step)."""
    fig, axes = plt.subplots(
        1, max(len(results), 1), figsize=(4.2 * max(len(results), 1), 4.0), squeeze=False
    )
    for ax, result in zip(axes[0], results, strict=False):
        ran = [r for r in _ran(result) if "training_loop" in r]
        x = np.arange(len(ran))
        loop = [r["training_loop"] for r in ran]
        every = loop[0]["count_every"] if loop else 0
        ax.bar(
            x - 0.2, [entry["counting_cost_cpu"] for entry in loop], 0.4, label=f"counted every {every} steps"
        )
        ax.bar(
            x + 0.2,
            [r["step_counted"]["cpu_median"] / r["step"]["cpu_median"] for r in ran],
            0.4,
            label="counted every step",
        )
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.axhline(1.15, color="tab:red", linewidth=0.8, linestyle="--", label="1.15 x bare")
        ax.set_xticks(x, [r["name"] for r in ran], rotation=60, ha="right", fontsize=7)
        ax.set_ylabel("step CPU time / bare step CPU time")
        ax.set_title(_label(result), fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def _curve(ax, points: list[dict], x_key: str, y_of, label: str) -> None:
    points = sorted(points, key=lambda p: p[x_key])
    x = [p[x_key] for p in points]
    ax.loglog(x, [y_of(p) for p in points], "o-", markersize=3, label=label)
    ax.set_xticks(x, [str(v) for v in x])
    ax.xaxis.set_minor_locator(NullLocator())


def bench_length(result: dict):
    """Step time and peak memory against the number of fixed rk4 steps (log-log), one line per method."""
    fig, (time_ax, rss_ax, xla_ax) = plt.subplots(1, 3, figsize=(13, 3.8))
    for name in sorted({p["name"] for p in result["points"]}):
        mine = [p for p in result["points"] if p["name"] == name]
        _curve(time_ax, mine, "steps", lambda p: p["step"]["median"], name)
        _curve(
            rss_ax,
            mine,
            "steps",
            lambda p: max(p["rss_peak_bytes"] - p["rss_baseline_bytes"], 1) / 2**20,
            name,
        )
        if all("xla_memory" in p for p in mine):
            _curve(
                xla_ax, mine, "steps", lambda p: max(p["xla_memory"]["temp_size_in_bytes"], 1) / 2**20, name
            )
    time_ax.set_ylabel("training step (s)")
    rss_ax.set_ylabel("peak RSS above baseline (MiB)")
    xla_ax.set_ylabel("XLA temp memory of the step (MiB)")
    for ax in (time_ax, rss_ax, xla_ax):
        ax.set_xlabel("rk4 steps")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def bench_size(result: dict):
    """Step time against batch size and against width (log-log), one line per method."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8))
    for ax, axis, fixed in zip(
        axes,
        ("batch", "width"),
        (f"width {result['default_width']}", f"batch {result['default_batch']}"),
        strict=True,
    ):
        for name in sorted({p["name"] for p in result["points"]}):
            mine = [p for p in result["points"] if p["name"] == name and p["axis"] == axis]
            if mine:
                _curve(ax, mine, "value", lambda p: p["step"]["median"], name)
        ax.set_xlabel(f"{axis} ({fixed})")
        ax.set_ylabel("training step (s)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def bench_table(steps: list[dict], compile_results: list[dict], norms: list[dict] = ()) -> str:
    """A Markdown summary: step times, NFE, overhead and speed-ups per problem; first-step compile times;
    the continuous adjoints' backward evaluations and errors under each error norm."""
    lines = []
    for result in steps:
        lines += [
            f"## {_label(result)}",
            "",
            "| method | step ms (median) | min-max ms | NFE fwd | NFE bwd | overhead | loss |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in result["results"]:
            if r["status"] != "ran":
                lines.append(f"| {r['name']} | skipped: {r['reason']} | | | | | |")
                continue
            ms = {k: r["step"][k] * 1e3 for k in ("median", "minimum", "maximum")}
            lines.append(
                f"| {r['name']} | {ms['median']:.3f} | {ms['minimum']:.3f}-{ms['maximum']:.3f} "
                f"| {r['nfe_forward']} | {r['nfe_backward']} | {r['overhead']:.2f} | {r['loss']:.6g} |"
            )
        lines.append("")
        lines += [
            f"- {p['pyode']} is x{p['speedup']:.2f} faster than {p['other']}" for p in result["speedups"]
        ]
        lines.append("")
    for result in steps:
        for r in _ran(result):
            if "training_loop" in r:
                loop = r["training_loop"]
                lines.append(
                    f"- {_label(result)}, {r['name']} as the training loop runs it: "
                    f"{loop['step_with_counting']['median'] * 1e3:.3f} ms a step with evaluations "
                    f"counted every {loop['count_every']} steps, {loop['counting_cost']:.3f} x the bare step "
                    f"({loop['bare_step']['median'] * 1e3:.3f} ms; in CPU time "
                    f"{loop['counting_cost_cpu']:.3f} x); counted on every step: "
                    f"{r['step_counted']['median'] / r['step']['median']:.2f} x"
                )
    lines.append("")
    for result in compile_results:
        for key, where in (("summary", "no compilation cache"), ("warm_summary", "warm compilation cache")):
            if key not in result:
                continue
            first = result[key]["first_step_seconds"]
            cpu = result[key].get("first_step_cpu_seconds", {}).get("median")
            lines.append(
                f"- first training step of {result['method']} ({result['problem']}, {result['dtype']}), "
                f"fresh process, {where}: median {first['median']:.2f} s "
                f"(min {first['minimum']:.2f}, max {first['maximum']:.2f})"
                + (f", {cpu:.2f} s of CPU time" if cpu is not None else "")
            )
    for result in norms:
        lines += [
            "",
            f"## Backward error norms: case {result['case']} ({result['parameters']} parameters, "
            f"state {'x'.join(map(str, result['state']))}; errors against {result['reference']})",
            "",
            "| adjoint | tolerance | backward evaluations | error dL/dy0 | error dL/dtheta |",
            "|---|---|---|---|---|",
        ]
        for row in sorted(result["rows"], key=lambda r: (r["tolerance"], r["backend"])):
            lines.append(
                f"| {row['backend']} | {row['tolerance']:g} | {row['nfe_backward']} "
                f"| {row['grad_y0_error']:.1e} | {row['grad_theta_error']:.1e} |"
            )
    return "\n".join(lines) + "\n"


LIBRARY_COLOURS = {
    "pyode": "tab:blue",
    "torchdiffeq": "tab:orange",
    "torchode": "tab:red",
    "scipy": "tab:green",
    "scratch": "tab:grey",
}
MARKERS = "osd^v<>pPX*h"


def _precision_lines(result: dict) -> dict[str, list[dict]]:
    """The points that ran, by library-solver, from the loosest tolerance to the tightest."""
    lines = {}
    for point in result["points"]:
        if point["status"] == "ran":
            lines.setdefault(point["name"], []).append(point)
    return {name: sorted(points, key=lambda p: -p["rtol"]) for name, points in lines.items()}


def _precision_title(result: dict) -> str:
    problem = result["problem"]
    return (
        f"{problem['name']}: batch {problem['batch']} x {problem['dim']}, {problem['save_times']} save times "
        f"over [{problem['t_span'][0]:g}, {problem['t_span'][1]:.4g}], float64"
    )


def bench_work_precision(result: dict):
    """Work-precision of one problem: error against wall time and against NFE (log-log), a line per
    library and solver (colour: library; marker: solver), through its tolerances; the dotted line is
    the reference's own uncertainty (its difference from a second reference), where measured."""
    fig, (time_ax, nfe_ax) = plt.subplots(1, 2, figsize=(11, 4.4), sharey=True)
    solvers = sorted({p["solver"] for p in result["points"]})
    for name, points in _precision_lines(result).items():
        library, solver = points[0]["library"], points[0]["solver"]
        style = {
            "color": LIBRARY_COLOURS.get(library, "black"),
            "marker": MARKERS[solvers.index(solver) % len(MARKERS)],
            "markersize": 4,
            "linewidth": 1,
            "label": name,
        }
        errors = [max(p["error"], 1e-300) for p in points]
        time_ax.loglog([p["seconds"] for p in points], errors, **style)
        nfe_ax.loglog([p["nfe"] for p in points], errors, **style)
    floor = result["reference"].get("check_difference")
    for ax in (time_ax, nfe_ax):
        if floor:
            ax.axhline(floor, color="black", linestyle=":", linewidth=0.8, label="reference uncertainty")
        ax.grid(True, which="major", linewidth=0.3)
    time_ax.set_xlabel("wall time of one solve (s, median)")
    nfe_ax.set_xlabel("function evaluations (batched)")
    time_ax.set_ylabel("error: max |y - y_ref| over save times, batch, states")
    nfe_ax.legend(fontsize=6, ncol=2, loc="best")
    fig.suptitle(_precision_title(result), fontsize=9)
    fig.tight_layout()
    return fig


def work_precision_table(results: list[dict], targets=(1e-4, 1e-6, 1e-8)) -> str:
    """Markdown: per problem, every point (error, median ms, NFE) by solver and rtol, then each
    solver's fastest measured point whose error is at most each of `targets`."""
    lines = [
        "# Work-precision",
        "",
        "Each cell: error / median wall time of one solve / function evaluations. Error: "
        + (results[0]["error"] if results else "")
        + ".",
        "",
    ]
    for result in results:
        rtols = result["rtols"]
        reference = result["reference"]
        lines += [
            f"## {_precision_title(result)}",
            "",
            f"{result['problem'].get('source', '')}. Reference: {reference['method']}"
            + (
                f"; its difference from {reference['check']}: {reference['check_difference']:.1e}"
                if "check_difference" in reference
                else ""
            )
            + f". {result['atol']}.",
            "",
            "| solver | " + " | ".join(f"rtol {r:g}" for r in rtols) + " |",
            "|---|" + "---|" * len(rtols),
        ]
        by_name = {}
        for point in result["points"]:
            by_name.setdefault(point["name"], {})[point["rtol"]] = point
        for name, points in by_name.items():
            cells = []
            for rtol in rtols:
                point = points.get(rtol)
                if point is None:
                    cells.append("")
                elif point["status"] != "ran":
                    cells.append(f"{point['status']}: {point['reason']}")
                else:
                    cells.append(f"{point['error']:.1e} / {point['seconds'] * 1e3:.3g} ms / {point['nfe']}")
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines += [
            "",
            "Fastest measured point with error at most each target (median ms, at rtol):",
            "",
            "| solver | " + " | ".join(f"error <= {t:g}" for t in targets) + " |",
            "|---|" + "---|" * len(targets),
        ]
        for name, points in _precision_lines(result).items():
            cells = []
            for target in targets:
                reached = [p for p in points if p["error"] <= target]
                best = min(reached, key=lambda p: p["seconds"]) if reached else None
                cells.append(f"{best['seconds'] * 1e3:.3g} ms ({best['rtol']:g})" if best else "not reached")
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines) + "\n"
