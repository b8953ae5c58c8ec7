"""Markdown + PNG report of one or more runs, rendered only from their JSON reports."""

from __future__ import annotations

import logging
import os
import re

from facebench import schema
from facebench.errors import DataError
from facebench.fileio import write_text
from facebench.report import figures
from facebench.report.collect import RunReports, collect_reports

log = logging.getLogger(__name__)

DASH = "–"


def _pct(value) -> str:
    return DASH if value is None else f"{100 * value:.2f}"


def _num(value, digits: int = 4) -> str:
    return DASH if value is None else f"{value:.{digits}f}"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "x"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A Markdown table followed by a blank line."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return [*lines, *("| " + " | ".join(row) + " |" for row in rows), ""]


def cosine_learned_threshold(run: RunReports) -> float | None:
    """The head's decision threshold (from the run's uniform report) where it is a cosine."""
    uniform = run.uniform or {}
    units = uniform.get(schema.LEARNED_THRESHOLD_UNITS)
    return uniform.get(schema.LEARNED_THRESHOLD) if units == "cosine" else None


def _rates(rates: tuple[float, ...]) -> tuple[str, ...]:
    """The report keys of FAR / FPIR targets."""
    return tuple(schema.rate_key(rate) for rate in rates)


def _datasets(runs: list[RunReports], kind: str) -> list[str]:
    names: list[str] = []
    for run in runs:
        for name, report in run.verification.items():
            if report.get("kind") == kind and name not in names:
                names.append(name)
    return names


#: A rate in the headline table has at least this many impostor pairs (non-mated probes) past
#: its threshold: TAR@FAR is shown where a bin holds 10 / FAR impostor pairs, DIR@FPIR where a
#: gallery search has 10 / FPIR non-mated probes (one or two pairs would decide a rate).
HEADLINE_MIN_PAST = 10


def headline_rates(rates: dict, count: int) -> dict:
    """The entries of ``rates`` (rate key -> value) whose target leaves at least
    ``HEADLINE_MIN_PAST`` of ``count`` impostor pairs or non-mated probes past the threshold."""
    return {k: v for k, v in rates.items() if float(k) * count >= HEADLINE_MIN_PAST - 1e-9}


def _rate_row(label: str, reports: list, field: str, count_field: str, unit: str) -> list | None:
    """``label=KEY`` and one cell per report (None: no report) of the rate ``field`` at the
    strictest target every report reaches with enough pairs (`headline_rates`); where none
    does, at the loosest target all report, each value with the count it rests on. None when
    the reports share no target."""
    present = [r for r in reports if r is not None]
    key = _strictest_key([headline_rates(r.get(field, {}), r.get(count_field, 0)) for r in present])
    few = key is None
    if few:
        common = set.intersection(*(set(r.get(field, {})) for r in present)) if present else set()
        key = max(common, key=float, default=None)
        if key is None:
            return None
    cells = []
    for r in reports:
        value = DASH if r is None else _pct(r[field][key])
        cells.append(f"{value} (of {r.get(count_field, 0):,} {unit})" if few and r else value)
    return [f"{label}={key}", *cells]


def comparison_rows(runs: list[RunReports]) -> list[list[str]]:
    """One row per headline metric, one column per run (percent unless noted); a rate at a
    target that rests on enough pairs in every run, or else with its count (`_rate_row`)."""
    rows = []
    for name in _datasets(runs, schema.VERIFICATION):
        got = [run.verification.get(name) for run in runs]
        rows.append(
            [f"{name}: 10-fold accuracy"]
            + [
                DASH
                if r is None
                else f"{_pct(r[schema.ACCURACY_10FOLD_MEAN])} ± "
                f"{_pct(r[schema.ACCURACY_10FOLD_STD])}"
                for r in got
            ]
        )
        rows.append(
            [f"{name}: global accuracy (τ cos)"]
            + [
                DASH
                if r is None
                else f"{_pct(r[schema.GLOBAL_ACCURACY])} ({r[schema.GLOBAL_THRESHOLD]:.3f})"
                for r in got
            ]
        )
        tar = _rate_row(
            f"{name}: TAR@FAR", got, schema.TAR_AT_FAR, schema.IMPOSTOR_PAIRS, "impostor pairs"
        )
        rows += [tar] if tar else []
    for name in _datasets(runs, schema.IJB):
        got = [run.verification.get(name) for run in runs]
        for key in _rates((1e-5, 1e-4)):
            rows.append(
                [f"{name}: TAR@FAR={key}"]
                + [
                    DASH
                    if r is None
                    else _pct(
                        headline_rates(
                            r.get(schema.TAR_AT_NEAREST_FAR, {}), r.get(schema.IMPOSTOR_PAIRS, 0)
                        ).get(key)
                    )
                    for r in got
                ]
            )
    if any(run.uniform for run in runs):
        fields = (
            ("sample-wise accuracy", schema.SAMPLE_ACCURACY, False),
            ("uniform accuracy", schema.UNIFORM_ACCURACY, False),
            ("class-wise accuracy (weighted)", schema.CLASS_WISE_ACCURACY_SAMPLE_WEIGHTED, False),
            ("uniform t*", schema.UNIFORM_THRESHOLD, True),
            ("learned threshold", schema.LEARNED_THRESHOLD, True),
        )
        for label, key, is_score in fields:
            cells = [((run.uniform or {}).get(key), run.uniform) for run in runs]
            rows.append([label] + [_score(*c) if is_score else _pct(c[0]) for c in cells])
    if any(run.identification for run in runs):
        firsts = [next(iter(run.identification.values()), None) for run in runs]
        rank1 = [DASH if r is None else _pct(r[schema.CMC].get("1")) for r in firsts]
        rows.append(["rank-1 (closed set)", *rank1])
        dir_row = _rate_row(
            "DIR@FPIR", firsts, schema.DIR_AT_FPIR, "non_mated_probes", "non-mated probes"
        )
        rows += [dir_row] if dir_row else []
    return rows + training_rows(runs)


def _score(value, uniform: dict | None) -> str:
    """A class-score threshold, its units named when they are not cosine (e.g. w.x)."""
    units = (uniform or {}).get(schema.SCORE_UNITS, "cosine")
    text = _num(value)
    return text if value is None or units == "cosine" else f"{text} ({units})"


def training_rows(runs: list[RunReports]) -> list[list[str]]:
    """Epochs trained and the plateau verdict (last epoch's relative loss change) per run."""
    if not any(run.training for run in runs):
        return []
    epochs, verdicts = ["epochs trained"], ["loss plateau (last epoch's change)"]
    for run in runs:
        plateau = (run.training or {}).get(schema.PLATEAU)
        if plateau is None:
            epochs.append(DASH)
            verdicts.append(DASH)
            continue
        epochs.append(str(plateau["epochs"]))
        change = plateau[schema.RELATIVE_CHANGE]
        text = DASH if change is None else f"{100 * change:+.2f}%"
        verdicts.append(f"yes ({text})" if plateau[schema.CONVERGED] else f"**no** ({text})")
    return [epochs, verdicts]


def training_section(runs: list[RunReports], out_dir: str) -> list[str]:
    """The training loss of every run against epochs (one figure) and the plateau rule."""
    present = [run for run in runs if run.training and run.training.get(schema.EPOCH_LOSSES)]
    if not present:
        return []
    curves = {run.name: run.training[schema.EPOCH_LOSSES] for run in present}
    done = {run.name: bool(run.training[schema.PLATEAU][schema.CONVERGED]) for run in present}
    path = figures.loss_figure(curves, done, os.path.join(out_dir, "figures", "training_loss.png"))
    rule = present[0].training[schema.PLATEAU][schema.RULE]
    missed = [name for name, ok in done.items() if not ok]
    lines = ["## Training", "", f"Plateau rule: {rule}."]
    if missed:
        lines.append(f"**Not on a plateau** (compare with care): {', '.join(missed)}.")
    return [*lines, "", f"![training loss](figures/{os.path.basename(path)})", ""]


def _strictest_key(rates: list[dict]) -> str | None:
    """The smallest rate key (e.g. "1e-03") that every one of ``rates`` reports, if any."""
    common = set.intersection(*(set(r) for r in rates)) if rates else set()
    return min(common, key=float, default=None)


def comparison_table(report_dirs: list[str], names: list[str] | None = None) -> str:
    """A Markdown table of the headline metrics of several runs side by side."""
    runs = _collect(report_dirs, names)
    return "\n".join(_table(["metric", *[run.name for run in runs]], comparison_rows(runs)))


def val_reachable(report: dict) -> bool:
    """Whether the 10-fold VAL@FAR=1e-3 of ``report`` can reach its FAR: each fold's threshold
    is chosen on the other 9 folds, which must hold at least 1 / FAR impostor pairs."""
    from facebench.eval.verification import N_FOLDS, VAL_FAR

    training_part = report.get(schema.IMPOSTOR_PAIRS, 0) * (N_FOLDS - 1) / N_FOLDS
    return training_part * VAL_FAR >= 1 - 1e-9


def verification_section(runs: list[RunReports], out_dir: str) -> list[str]:
    """Details table and ROC / accuracy / histogram figures per data set. TAR@FAR and VAL@FAR
    columns appear only where some bin holds enough impostor pairs to reach that FAR."""
    datasets = _datasets(runs, schema.VERIFICATION)
    if not datasets:
        return []
    reports = [(run, name, run.verification.get(name)) for name in datasets for run in runs]
    reports = [(run, name, r) for run, name, r in reports if r is not None]
    fars = [
        k
        for k in _rates((1e-4, 1e-3, 1e-2))
        if any(k in r.get(schema.TAR_AT_FAR, {}) for *_, r in reports)
    ]
    with_val = any(val_reachable(r) for *_, r in reports)
    header = ["model", "data set", "pairs", "10-fold"] + (["VAL@1e-3"] if with_val else [])
    header += ["global", "τ (cos)", "EER", "AUC"] + [f"TAR@{k}" for k in fars]
    rows = []
    for run, name, r in reports:
        tar = r.get(schema.TAR_AT_FAR, {})
        val = r.get(schema.val_key(1e-3)) if val_reachable(r) else None
        rows.append(
            [run.name, name, str(r["pairs"]), _pct(r[schema.ACCURACY_10FOLD_MEAN])]
            + ([_pct(val)] if with_val else [])
            + [_pct(r[schema.GLOBAL_ACCURACY]), _num(r[schema.GLOBAL_THRESHOLD])]
            + [_pct(r[schema.EER]), _num(r[schema.AUC])]
            + [_pct(tar.get(k)) for k in fars]
        )
    smallest = min(r.get(schema.IMPOSTOR_PAIRS, 0) for *_, r in reports)
    lines = ["## Verification", ""]
    lines += [
        "TAR@FAR needs at least 1/FAR impostor pairs and VAL@FAR=1e-3 (10-fold) 1,000 in the 9",
        f"folds that choose each threshold; the smallest bin here has {smallest:,} impostor",
        "pairs, so rates it cannot reach are left out (–).",
        "",
    ]
    lines += _table(header, rows)
    for name in datasets:
        lines += _dataset_figures(runs, name, out_dir)
    return lines


def _dataset_figures(runs: list[RunReports], name: str, out_dir: str) -> list[str]:
    present = [(run, run.verification[name]) for run in runs if name in run.verification]
    rocs = {run.name: r["roc"] for run, r in present if "roc" in r}
    lines = [f"### {name}", ""]
    if rocs:
        path = figures.roc_figure(
            rocs, name, os.path.join(out_dir, "figures", f"roc_{_slug(name)}.png")
        )
        lines.append(f"![ROC {name}](figures/{os.path.basename(path)})")
    curves = {run.name: r["accuracy_curve"] for run, r in present if "accuracy_curve" in r}
    if curves:
        marks = {run.name: r[schema.GLOBAL_THRESHOLD] for run, r in present}
        path = os.path.join(out_dir, "figures", f"accuracy_{_slug(name)}.png")
        figures.accuracy_figure(curves, marks, name, path)
        lines.append(f"![accuracy vs threshold {name}](figures/{os.path.basename(path)})")
    for run, r in present:
        if "histogram" not in r:
            continue
        marks = {"global threshold": r[schema.GLOBAL_THRESHOLD]}
        marks["learned threshold"] = cosine_learned_threshold(run)
        path = os.path.join(out_dir, "figures", f"hist_{_slug(run.name)}_{_slug(name)}.png")
        figures.histogram_figure(r["histogram"], marks, f"{run.name} on {name}", path)
        lines.append(f"![cosine histograms {run.name} {name}](figures/{os.path.basename(path)})")
    return [*lines, ""]


def transfer_section(runs: list[RunReports]) -> list[str]:
    """Per model: thresholds chosen on one data set (rows) applied to the others (columns)."""
    lines = []
    for run in runs:
        t = run.transfer
        if not t or len(t.get("sources", {})) < 2:
            continue
        names = list(t["sources"])
        key = schema.rate_key(t["target_far"])
        lines += [f"### Threshold transfer: {run.name}", ""]
        lines += ["Accuracy at the global threshold chosen on the row's data set:", ""]
        rows = [
            [f"{src} (τ {t['sources'][src][schema.GLOBAL_THRESHOLD]:.3f})"]
            + [_pct(t["sources"][src]["global"][dst]["accuracy"]) for dst in names]
            for src in names
        ]
        lines += _table(["chosen on \\ applied to", *names], rows)
        lines += [f"TAR / FAR at the row's FAR={key} threshold:", ""]
        rows = []
        for src in names:
            entry = t["sources"][src]
            cells = [
                f"{_pct(entry['at_far'][dst]['tar'])} / {_pct(entry['at_far'][dst]['far'])}"
                if dst in entry.get("at_far", {})
                else DASH
                for dst in names
            ]
            rows.append([f"{src} (τ {_num(entry['far_threshold'], 3)})", *cells])
        lines += _table(["chosen on \\ applied to", *names], rows)
    return (["## Threshold transfer", "", *lines]) if lines else []


def uniform_section(runs: list[RunReports], out_dir: str) -> list[str]:
    """Sample-wise, uniform, class-wise accuracy and t* beside the learned threshold."""
    present = [run for run in runs if run.uniform]
    if not present:
        return []
    header = ["model", "samples", "sample-wise", "uniform", "t*", "class-wise (weighted)"]
    header += ["class-wise (class mean)", "learned thr.", "uniform at learned", "units"]
    rows, images = [], []
    for run in present:
        u = run.uniform
        rows.append(
            [
                run.name,
                str(u["samples"]),
                _pct(u[schema.SAMPLE_ACCURACY]),
                _pct(u[schema.UNIFORM_ACCURACY]),
                _num(u[schema.UNIFORM_THRESHOLD]),
                _pct(u[schema.CLASS_WISE_ACCURACY_SAMPLE_WEIGHTED]),
                _pct(u[schema.CLASS_WISE_ACCURACY_CLASS_MEAN]),
                _num(u.get(schema.LEARNED_THRESHOLD)),
                _pct(u.get(schema.UNIFORM_ACCURACY_AT_LEARNED_THRESHOLD)),
                u.get(schema.SCORE_UNITS, DASH),
            ]
        )
        if "histogram" in u:
            path = os.path.join(out_dir, "figures", f"uniform_{_slug(run.name)}.png")
            marks = {"t*": u[schema.UNIFORM_THRESHOLD], "learned": u.get(schema.LEARNED_THRESHOLD)}
            labels = ("positive", "max_negative", "own-class score", "hardest other score")
            figures.histogram_figure(
                u["histogram"], marks, f"{run.name}: class scores", path, labels
            )
            images.append(f"![uniform {run.name}](figures/{os.path.basename(path)})")
    return ["## Uniform classification", "", *_table(header, rows), *images, ""]


def ijb_section(runs: list[RunReports]) -> list[str]:
    """IJB 1:1 TAR@FAR (nearest FPR) and 1:N rank-1 / TPIR per gallery."""
    rows = []
    for run in runs:
        for name, r in run.verification.items():
            if r.get(schema.KIND) != schema.IJB:
                continue
            tar = r.get(schema.TAR_AT_NEAREST_FAR, {})
            one_n = "; ".join(
                f"{g}: rank-1 {_pct(v[schema.CMC]['1'])}, "
                f"TPIR@1e-2 {_pct(v.get(schema.DIR_AT_FPIR, {}).get(schema.rate_key(1e-2)))}"
                for g, v in r.get("one_to_n", {}).items()
            )
            rows.append(
                [run.name, name]
                + [_pct(tar.get(k)) for k in _rates((1e-6, 1e-5, 1e-4, 1e-3))]
                + [_num(r[schema.AUC]), one_n or DASH]
            )
    if not rows:
        return []
    header = ["model", "set", "TAR@1e-6", "TAR@1e-5", "TAR@1e-4", "TAR@1e-3", "AUC", "1:N"]
    return ["## IJB", "", *_table(header, rows)]


def identification_section(runs: list[RunReports]) -> list[str]:
    """CMC, DIR@FPIR and recall@1 against exact search."""
    rows = []
    for run in runs:
        for name, r in run.identification.items():
            dirs = r.get(schema.DIR_AT_FPIR, {})
            rows.append(
                [run.name, name, str(r["gallery_size"]), str(r["distractors"]), r["factory"]]
                + [_pct(r[schema.CMC].get(k)) for k in ("1", "5", "10")]
                + [_pct(dirs.get(k)) for k in _rates((1e-3, 1e-2, 1e-1))]
                + [_num(r.get("recall_at_1_vs_exact"))]
            )
    if not rows:
        return []
    header = ["model", "report", "gallery", "distractors", "index", "rank-1", "rank-5", "rank-10"]
    header += ["DIR@1e-3", "DIR@1e-2", "DIR@1e-1", "recall@1 vs exact"]
    return ["## Identification", "", *_table(header, rows)]


def _collect(report_dirs: list[str], names: list[str] | None) -> list[RunReports]:
    if not report_dirs:
        raise DataError("report: give at least one run directory")
    if names is not None and len(names) != len(report_dirs):
        raise DataError(f"report: {len(names)} names for {len(report_dirs)} runs")
    runs = [
        collect_reports(path, names[i] if names else None) for i, path in enumerate(report_dirs)
    ]
    seen = [run.name for run in runs]
    if len(set(seen)) != len(seen):
        raise DataError(f"report: two runs share the name {seen}; pass distinct names")
    return runs


def render_report(report_dirs: list[str], out_dir: str, names: list[str] | None = None) -> str:
    """Render ``out_dir/report.md`` (+ ``out_dir/figures/*.png``) from the JSON reports of each
    run directory (or report folder, or file); return the Markdown path."""
    runs = _collect(report_dirs, names)
    lines = ["# facebench report", ""]
    lines += [
        f"- **{run.name}**: `{os.path.relpath(path, out_dir)}`"
        for run, path in zip(runs, report_dirs, strict=True)
    ]
    lines += ["", "## Side by side", ""]
    lines += ["Percent; τ in cosine; t* and learned thresholds in each head's class-score units,"]
    lines += ["named where they are not cosine. 10-fold: per-fold thresholds (published numbers);"]
    lines += ["global: one oracle threshold for all pairs.", ""]
    lines += _table(["metric", *[run.name for run in runs]], comparison_rows(runs))
    lines += training_section(runs, out_dir)
    lines += verification_section(runs, out_dir)
    lines += transfer_section(runs)
    lines += ijb_section(runs)
    lines += uniform_section(runs, out_dir)
    lines += identification_section(runs)
    path = os.path.join(out_dir, "report.md")
    write_text(path, "\n".join(lines).rstrip() + "\n")
    log.debug("report: %s", path)
    return path
