"""The study's outputs: per-head table with 95 % intervals, paired claims, settings, γ figure."""

from __future__ import annotations

from pathlib import Path

from facebench import schema
from facebench.fileio import atomic_path
from facebench.study.heads import COMPARISONS, SWEEP_HEADS, SWEEP_SCALES, StudyHead
from facebench.study.measure import (
    OPEN_BOOTSTRAP,
    OPEN_SET_FARS,
    supported_fars,
    tar_field,
    tar_label,
)
from facebench.study.plan import BUDGET_FACTOR, config_runs
from facebench.study.stats import (
    BUDGET_METRICS,
    BUDGET_TOLERANCE,
    adjusted_verdict,
    budget_converged,
    holm,
    judged_under_budget,
    mean_interval,
    pair_variance,
    paired_verdict,
)

#: (result key, column name, task that measures it).
METRICS = (
    (schema.SAMPLE_ACCURACY, "sample-wise acc", "closed"),
    (schema.CLASS_WISE_ACCURACY_SAMPLE_WEIGHTED, "class-wise acc", "closed"),
    (schema.UNIFORM_ACCURACY, "uniform acc", "closed"),
    ("t_star", "t*", "closed"),
    ("decision_point", "decision point", "closed"),
    ("uniform_accuracy_at_decision_point", "uniform acc at decision point", "closed"),
    ("intra_class_cosine", "intra-class cos", "closed"),
    ("inter_class_cosine_mean", "inter-class cos (mean)", "closed"),
    ("inter_class_cosine_max", "inter-class cos (max)", "closed"),
    ("verification_accuracy_10fold", "open-set 10-fold acc", "open"),
    ("verification_global_accuracy", "open-set global acc", "open"),
    *((tar_field(far), f"open-set {tar_label(far)}", "open") for far in OPEN_SET_FARS),
)
#: The paper's claims: (claim, metric, higher is better).
CLAIMS = (
    ("(1) uniform accuracy", schema.UNIFORM_ACCURACY, True),
    ("(2) sample-wise accuracy", schema.SAMPLE_ACCURACY, True),
    ("(4) compact features", "intra_class_cosine", True),
    ("(4) separated classes", "inter_class_cosine_mean", False),
    ("(4) separated classes (closest pair)", "inter_class_cosine_max", False),
    ("(5) open set, 10-fold", "verification_accuracy_10fold", True),
    ("(5) open set, global threshold", "verification_global_accuracy", True),
    *((f"(5) open set, {tar_label(far)}", tar_field(far), True) for far in OPEN_SET_FARS),
)
#: Claim (3), stated before any run: a head's decision point (facebench.study.measure.
#: decision_point) is "at t*" when the 95 % interval of (t* − decision point) / (std of the
#: own-class scores) lies inside ±THRESHOLD_TOLERANCE, "not at t*" when it lies outside.
THRESHOLD_TOLERANCE = 0.1
THRESHOLD_FIELDS = (
    schema.UNIFORM_ACCURACY,
    "uniform_accuracy_at_decision_point",
    "t_star",
    "decision_point",
    "score_spread",
)


def per_seed(results: dict, runs: list, head: StudyHead, task: str, metric: str) -> dict:
    """{seed: value} of one head's runs of ``task`` that finished with ``metric`` measured."""
    out = {}
    for run in runs:
        if run.head.key == head.key and run.task == task and run.key in results:
            value = results[run.key].get(metric)
            if value is not None:
                out[run.seed] = value
    return out


def all_converged(results: dict, runs: list, head_keys: set, task: str) -> bool:
    """Whether every finished run of these heads on ``task`` ended on a plateau."""
    done = [r for r in runs if r.head.key in head_keys and r.task == task and r.key in results]
    return bool(done) and all(results[r.key].get(schema.CONVERGED) for r in done)


def summarize(heads, results: dict, runs: list, metrics=METRICS) -> list[dict]:
    """Per head: each metric's mean with its 95 % interval, runs done and converged."""
    rows = []
    for head in heads:
        row = {"head": head.label, "key": head.key}
        for metric, _, task in metrics:
            row[metric] = mean_interval(list(per_seed(results, runs, head, task, metric).values()))
        for task in ("closed", "open"):
            done = [r for r in runs if r.head.key == head.key and r.task == task]
            done = [r for r in done if r.key in results]
            row[f"{task}_runs"] = len(done)
            row[f"{task}_converged"] = sum(bool(results[r.key].get(schema.CONVERGED)) for r in done)
        rows.append(row)
    return rows


def declared_family(
    heads, impostor_pairs: int | None = None, metrics=METRICS, claims=CLAIMS
) -> list[dict]:
    """The family of tests, fixed by the plan before any run: every comparison of
    :data:`COMPARISONS` whose two heads are studied, on every claim metric both heads measure;
    TAR only at the FARs a bin of ``impostor_pairs`` (the planned size; None: any) reports."""
    by_key = {h.key: h for h in heads}
    dropped = set()
    if impostor_pairs is not None:
        kept = supported_fars(impostor_pairs)
        dropped = {tar_field(far) for far in OPEN_SET_FARS if far not in kept}
    family = []
    for better, other in COMPARISONS:
        if better not in by_key or other not in by_key:
            continue
        for claim, metric, higher in claims:
            task = next(t for m, _, t in metrics if m == metric)
            if metric in dropped:
                continue
            if task in by_key[better].tasks and task in by_key[other].tasks:
                family.append(
                    {
                        "better": better,
                        "other": other,
                        "claim": claim,
                        "metric": metric,
                        "higher_is_better": higher,
                        "task": task,
                    }
                )
    return family


def judge_claims(
    heads,
    results: dict,
    runs: list,
    unjudged: dict | None = None,
    impostor_pairs: int | None = None,
    metrics=METRICS,
    claims=CLAIMS,
) -> list:
    """Every test of :func:`declared_family` (``impostor_pairs``: the planned bin's): paired
    interval, raw verdict, p-value, and the Holm-adjusted p-value and verdict over the whole
    family; open-set intervals widened by the pair bootstrap (:func:`open_variances`). A
    comparison with an unconverged run, or on a metric a head of ``unjudged`` (head key: the
    metrics its budget check failed) is not judged on (:func:`judged_under_budget`), is not
    judged."""
    by_key = {h.key: h for h in heads}
    out = []
    for test in declared_family(heads, impostor_pairs, metrics, claims):
        better, other, task = test["better"], test["other"], test["task"]
        a = per_seed(results, runs, by_key[better], task, test["metric"])
        b = per_seed(results, runs, by_key[other], task, test["metric"])
        variances = None
        if task == "open":
            heads_pair = (by_key[better], by_key[other])
            variances = open_variances(results, runs, *heads_pair, test["metric"])
            a = {s: v for s, v in a.items() if s in variances}
            b = {s: v for s, v in b.items() if s in variances}
        converged = all_converged(results, runs, {better, other}, task)
        converged = converged and all(
            judged_under_budget(test["metric"], (unjudged or {}).get(key, ()))
            for key in (better, other)
        )
        judged = paired_verdict(a, b, test["higher_is_better"], converged, variances)
        out.append({**test, **judged})
    adjusted = holm([c["p_value"] for c in out])
    for claim, p in zip(out, adjusted, strict=True):
        mean = None if claim["difference"] is None else claim["difference"]["mean"]
        sign = 1.0 if claim["higher_is_better"] else -1.0
        claim["p_adjusted"] = p
        claim["adjusted_verdict"] = adjusted_verdict(claim["verdict"], mean, p, sign)
    return out


def open_variances(results: dict, runs: list, better, other, metric: str) -> dict[int, float]:
    """Per seed (= its partition) where both heads' open-set runs hold their pair bootstrap of
    ``metric``: the bootstrap variance of their difference (same resamples, so paired)."""
    a = per_seed(results, runs, better, "open", OPEN_BOOTSTRAP)
    b = per_seed(results, runs, other, "open", OPEN_BOOTSTRAP)
    return {
        s: pair_variance(a[s][metric], b[s][metric])
        for s in sorted(set(a) & set(b))
        if metric in a[s] and metric in b[s]
    }


def judge_thresholds(heads, results: dict, runs: list, unjudged: dict | None = None):
    """Claim (3) per head with a decision point: the distance t* − point (score units and in
    own-class score spreads) with its interval, the verdict by :data:`THRESHOLD_TOLERANCE`, and
    the accuracy cost (uniform acc at t* minus at the point); not judged where the head's
    uniform accuracy failed its budget check (``unjudged``: head key -> failed metrics)."""
    out = []
    for head in heads:
        values = {m: per_seed(results, runs, head, "closed", m) for m in THRESHOLD_FIELDS}
        seeds = sorted(set.intersection(*(set(v) for v in values.values())))
        if not seeds:
            continue
        star, point, spread = values["t_star"], values["decision_point"], values["score_spread"]
        scaled = mean_interval([(star[s] - point[s]) / spread[s] for s in seeds])
        converged = all_converged(results, runs, {head.key}, "closed")
        failed = (unjudged or {}).get(head.key, ())
        if not converged or not judged_under_budget(schema.UNIFORM_ACCURACY, failed):
            verdict = "not judged"
        elif scaled["low"] is None:
            verdict = "not resolved"
        elif scaled["low"] > -THRESHOLD_TOLERANCE and scaled["high"] < THRESHOLD_TOLERANCE:
            verdict = "at t*"
        elif scaled["low"] > THRESHOLD_TOLERANCE or scaled["high"] < -THRESHOLD_TOLERANCE:
            verdict = "not at t*"
        else:
            verdict = "not resolved"
        at_point = values["uniform_accuracy_at_decision_point"]
        out.append(
            {
                "head": head.key,
                "seeds": seeds,
                "distance": mean_interval([star[s] - point[s] for s in seeds]),
                "distance_in_spreads": scaled,
                "accuracy_cost": mean_interval(
                    [values[schema.UNIFORM_ACCURACY][s] - at_point[s] for s in seeds]
                ),
                "verdict": verdict,
            }
        )
    return out


def _cell(stat: dict | None, digits: int) -> str:
    if stat is None:
        return "—"
    if stat["low"] is None:
        return f"{stat['mean']:.{digits}f} (n=1)"
    return f"{stat['mean']:.{digits}f} ± {(stat['high'] - stat['low']) / 2:.{digits}f}"


def table_markdown(rows: list[dict], settings: dict, metrics=METRICS) -> str:
    """One row per head: chosen settings, convergence, every metric as mean ± 95 % half-width."""
    names = [name for _, name, _ in metrics]
    lines = ["| head | lr | γ | converged (closed, open) | " + " | ".join(names) + " |"]
    lines.append("|---" * (len(names) + 4) + "|")
    for row in rows:
        chosen = settings.get(row["key"], {})
        gamma = "—" if chosen.get("scale") is None else f"{chosen['scale']:g}"
        conv = (
            f"{row['closed_converged']}/{row['closed_runs']}, "
            f"{row['open_converged']}/{row['open_runs']}"
        )
        cells = [_cell(row[m], 4 if "acc" in m or "tar" in m else 3) for m, _, _ in metrics]
        lines.append(
            f"| {row['head']} | {chosen.get('lr', '—')} | {gamma} | {conv} | "
            + " | ".join(cells)
            + " |"
        )
    return "\n".join(lines) + "\n"


#: How the idx study's open-set intervals are made (claims.md).
OPEN_SET_PARTITIONS = (
    "Open set: one unit per (seed i, class partition i), each with its own models and bin; t "
    "interval over the units' differences with the variance widened by the mean "
    "pair-bootstrap variance of a unit's difference (the pairs column counts units)."
)


def claims_markdown(
    claims: list[dict], thresholds: list[dict], labels: dict, open_set: str = OPEN_SET_PARTITIONS
) -> str:
    """The paired differences with 95 % intervals and verdicts, then claim (3) per head;
    ``open_set``: how the inputs' open-set intervals are made."""
    lines = [
        f"Holm's correction over the {len(claims)} declared tests (family-wise 5 %); the "
        f"adjusted verdict is the one to state. Closed set: paired t interval over seeds. "
        f"{open_set} TAR at a FAR only where a bin holds 10 / FAR impostor pairs.",
        "",
        "| claim | head | vs | pairs | difference (95 % CI) | p | verdict (raw) "
        "| Holm-adjusted p | verdict (adjusted) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for c in claims:
        interval = interval_text(c["difference"], 4)
        lines.append(
            f"| {c['claim']} | {labels[c['better']]} | {labels[c['other']]} | "
            f"{len(c['seeds'])} | {interval} | {_p(c['p_value'])} | {c['verdict']} "
            f"| {_p(c['p_adjusted'])} | {c['adjusted_verdict']} |"
        )
    lines += [
        "",
        "Claim (3): the decision point is where the class's positive and negative terms meet "
        '(band centre; 0 on w·x − b_k for per-class biases). "at t*" when the 95 % interval '
        "of (t* − point) in own-class score spreads lies inside "
        f'±{THRESHOLD_TOLERANCE:g}, "not at t*" when outside.',
        "",
        "| (3) decision point at t* | seeds | t* − point (95 % CI) | in score spreads (95 % CI) "
        "| uniform acc lost at the point (95 % CI) | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for t in thresholds:
        lines.append(
            f"| {labels[t['head']]} | {len(t['seeds'])} | {interval_text(t['distance'], 3)} "
            f"| {interval_text(t['distance_in_spreads'], 3)} | {_cell(t['accuracy_cost'], 4)} "
            f"| {t['verdict']} |"
        )
    return "\n".join(lines) + "\n"


def sweep_points(heads, results: dict, runs: list) -> dict:
    """Per swept head key: per γ, the mean/interval of uniform and sample-wise accuracy."""
    points = {}
    for head in heads:
        if head.key not in SWEEP_HEADS:
            continue
        points[head.key] = {}
        for metric in (schema.UNIFORM_ACCURACY, schema.SAMPLE_ACCURACY):
            series = []
            for gamma in SWEEP_SCALES:
                picked = [r for r in runs if r.scale == gamma and r.task == "closed"]
                series.append(
                    mean_interval(list(per_seed(results, picked, head, "closed", metric).values()))
                )
            points[head.key][metric] = series
    return points


def plot_sweep(points: dict, labels: dict, path: Path) -> None:
    """Uniform and sample-wise accuracy against γ with 95 % intervals (the paper's figure 1)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharex=True)
    titles = {
        schema.UNIFORM_ACCURACY: "uniform accuracy",
        schema.SAMPLE_ACCURACY: "sample-wise accuracy",
    }
    for ax, (metric, title) in zip(axes, titles.items(), strict=True):
        for key, series in points.items():
            shown = [(g, p) for g, p in zip(SWEEP_SCALES, series[metric], strict=True) if p]
            if not shown:
                continue
            mean = [p["mean"] for _, p in shown]
            half = [0.0 if p["low"] is None else (p["high"] - p["low"]) / 2 for _, p in shown]
            ax.errorbar(
                [g for g, _ in shown], mean, yerr=half, marker="o", capsize=3, label=labels[key]
            )
        ax.set_xlabel("γ (scale)")
        ax.set_xticks(SWEEP_SCALES)
        ax.set_title(f"test set: {title}")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("accuracy (mean, 95 % CI)")
    if axes[0].get_legend_handles_labels()[0]:
        axes[0].legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)


def tuning_markdown(heads, runs: list, results: dict) -> str:
    """Phase 1 so far: per head and grid point, validation accuracy, convergence and cost."""
    labels = {h.key: h.label for h in heads}
    lines = [
        "| head | lr | γ | val sample-wise | val uniform | converged | last-epoch loss change "
        "| train s | train CPU s | images/CPU-s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        r = results.get(run.key)
        if r is None:
            continue
        change = (r.get("convergence") or {}).get(schema.RELATIVE_CHANGE)
        cells = [
            labels[run.head.key],
            f"{run.lr:g}",
            "—" if run.scale is None else f"{run.scale:g}",
            _number(r.get(schema.SAMPLE_ACCURACY), 4),
            _number(r.get(schema.UNIFORM_ACCURACY), 4),
            "error: " + r["error"]
            if "error" in r
            else ("yes" if r.get(schema.CONVERGED) else "no"),
            "—" if change is None else f"{change:+.2%}",
            _number(r.get("train_seconds"), 0),
            _number(r.get("train_cpu_seconds"), 0),
            _number(r.get("train_images_per_cpu_s"), 0),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def interval_text(stat: dict | None, digits: int) -> str:
    """``mean [low, high]`` signed with ``digits`` decimals (the mean alone without an interval;
    — for none)."""
    if stat is None:
        return "—"
    if stat["low"] is None:
        return f"{stat['mean']:+.{digits}f}"
    return f"{stat['mean']:+.{digits}f} [{stat['low']:+.{digits}f}, {stat['high']:+.{digits}f}]"


def _p(value) -> str:
    return "—" if value is None else f"{value:.2g}" if value < 0.001 else f"{value:.3f}"


def _number(value, digits: int) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def budget_results(head, setting: dict, results: dict, seeds: int) -> dict[float, dict]:
    """Budget (1 and 2x) -> {tuning seed: result} of ``head``'s chosen settings, the results
    that measured every budget metric."""
    at = {}
    for budget in (1.0, BUDGET_FACTOR):
        runs = [r for r in config_runs(head, setting, seeds, budget) if r.key in results]
        at[budget] = {
            r.seed: results[r.key]
            for r in runs
            if all(results[r.key].get(m) is not None for m in BUDGET_METRICS)
        }
    return at


def judge_budgets(heads, settings: dict, results: dict, seeds: int) -> dict[str, dict]:
    """Per head key: the budget check of its chosen settings (B against 2B, tuning seeds)."""
    out = {}
    for head in heads:
        at = budget_results(head, settings[head.key], results, seeds)
        out[head.key] = budget_converged(at[1.0], at[BUDGET_FACTOR])
    return out


def budget_effects(heads, settings: dict, results: dict, seeds: int) -> list[dict]:
    """Per comparison of :data:`COMPARISONS` and budget metric: the paired validation
    difference (better − other, by tuning seed) at B and at 2B, to show how much of an effect
    belongs to the budget."""
    by_key = {h.key: h for h in heads}
    rows = []
    for better, other in COMPARISONS:
        if better not in by_key or other not in by_key:
            continue
        at_better = budget_results(by_key[better], settings[better], results, seeds)
        at_other = budget_results(by_key[other], settings[other], results, seeds)
        for metric in BUDGET_METRICS:
            row = {"better": better, "other": other, "metric": metric}
            for budget in (1.0, BUDGET_FACTOR):
                a, b = at_better[budget], at_other[budget]
                row[budget] = mean_interval(
                    [a[s][metric] - b[s][metric] for s in sorted(set(a) & set(b))]
                )
            rows.append(row)
    return rows


def budget_markdown(budgets: dict, labels: dict, effects: list[dict] = ()) -> str:
    """Per head: validation accuracy change from B to 2B and the verdict of the budget rule;
    then the compared pairs' paired validation differences at B and at 2B (``effects``, from
    :func:`budget_effects`)."""
    lines = [
        f"Budget rule: a head is judged on a metric when doubling the budget (same schedule "
        f"shape) moves its mean validation value by less than {BUDGET_TOLERANCE:g}, over >= 2 "
        "seeds; checked on sample-wise and uniform accuracy, and every other metric is judged "
        "only where both held. The training-loss plateau rule is a diagnostic only: under this "
        "schedule the last epoch runs at lr/1000, so it passes runs far from their best.",
        "",
        "| head | seeds | sample-wise 2B − B (95 % CI) | uniform 2B − B (95 % CI) | converged |",
        "|---|---|---|---|---|",
    ]
    names = {schema.SAMPLE_ACCURACY: "sample-wise", schema.UNIFORM_ACCURACY: "uniform"}
    for key, b in budgets.items():
        cells = [interval_text(b["changes"][m], 4) for m in BUDGET_METRICS]
        if b[schema.CONVERGED]:
            verdict = "yes"
        elif len(b["failed"]) == len(BUDGET_METRICS):
            verdict = "NO: not judged"
        else:
            moved = ", ".join(names[m] for m in b["failed"])
            held = ", ".join(names[m] for m in BUDGET_METRICS if m not in b["failed"])
            verdict = f"NO on {moved}: judged on {held} accuracy only"
        lines.append(f"| {labels[key]} | {len(b['seeds'])} | {cells[0]} | {cells[1]} | {verdict} |")
    if effects:
        lines += [
            "",
            "The compared pairs on the same validation runs: the paired difference (first head "
            "− second, by tuning seed) at B and at 2B, so an effect that depends on the budget "
            "shows.",
            "",
            "| head | vs | metric | B: difference (95 % CI) | 2B: difference (95 % CI) |",
            "|---|---|---|---|---|",
        ]
        for e in effects:
            cells = [interval_text(e[budget], 4) for budget in (1.0, BUDGET_FACTOR)]
            lines.append(
                f"| {labels[e['better']]} | {labels[e['other']]} | {names[e['metric']]} "
                f"| {cells[0]} | {cells[1]} |"
            )
    return "\n".join(lines) + "\n"
