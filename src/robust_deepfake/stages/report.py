"""Stage summarise_experiments: the experiment tables and the report's figures.

One row per scenario (backbone, training mode, training fakes' generator, poisoning attack and
rate, defence) and detector seed with what the scenario cost upstream (reject rate, disruption of
the fakes) and what the detector then achieved on split C: clean Acc/AUC/EER/AP at frame and video
level, Acc and AUC per test generator (cross-generator), attack success rate and robust accuracy
under FGSM and PGD, and the mean AUC over the DeeperForensics distortions (`experiment_table`).
The seeds of a scenario are then summarised by their mean and sd (`seed_summary`), and the
poisoning's cost and what each defence wins back by paired differences over the seeds with their
95 % intervals (`poisoning_effects`). Figures: AUC and accuracy against poison rate per defence
with error bars, ROC curves, accuracy against distortion level per type, attack success rate per
training mode.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: jobs run without a display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from robust_deepfake.atomic import atomic_path  # noqa: E402
from robust_deepfake.detectors.scoring import ALL_FAKES, VIDEO_SUFFIX, roc_points  # noqa: E402
from robust_deepfake.registry import EVASION_ATTACKS  # noqa: E402

SCENARIO_AXES = ["backbone", "training", "generator", "attack", "loss", "poison_rate", "defence"]
NO_DETECTOR = "none: no training faces"
# the columns of summary.md, in order (each present one shown as mean ± sd over the seeds)
SUMMARY_COLUMNS = ["reject_rate", "train_images", "val_auc", "acc", "auc", "video_auc", "eer", "wp", "fgsm_asr",
                   "pgd_asr", "distorted_auc_mean", "video_distorted_auc_mean"]


def _frame(metrics: pd.DataFrame, test_set: str = ALL_FAKES, unit: str = "frame") -> pd.DataFrame:
    return metrics[(metrics["test_set"] == test_set) & (metrics["unit"] == unit)].set_index("condition")


def scenario_row(scenario: dict, metrics: pd.DataFrame, history: pd.DataFrame, purified: pd.Series | None) -> dict:
    """The experiment table's row of one scenario and seed. A scenario that left nothing to train
    on (its history is empty) keeps its row, with `detector` saying so and no metrics."""
    row = {**scenario}
    if purified is not None:
        row["reject_rate"] = float(purified.get("reject_rate", np.nan))
        row["mse_g_purified"] = float(purified.get("mse_g_purified", np.nan))
    if history.empty:
        return {**row, "detector": NO_DETECTOR}
    row["detector"] = "trained"
    frame, video = _frame(metrics), _frame(metrics, unit="video")
    best = history[history["best"]].iloc[-1] if history["best"].any() else history.iloc[-1]
    row.update(train_images=int(history["train_images"].iloc[-1]), best_epoch=int(best["epoch"]),
               val_auc=float(best["val_auc"]))
    if "threshold" in best:
        row["threshold"] = float(best["threshold"])
    for key in ("acc", "auc", "eer", "ap", "wp"):
        row[key] = float(frame.loc["clean", key])
    row["video_auc"] = float(video.loc["clean", "auc"])
    per_set = metrics[(metrics["condition"] == "clean") & (metrics["unit"] == "frame") & (metrics["test_set"] != ALL_FAKES)]
    for name, auc, acc in zip(per_set["test_set"], per_set["auc"], per_set["acc"]):
        row[f"auc_{name}"], row[f"acc_{name}"] = float(auc), float(acc)
    for attack in EVASION_ATTACKS:
        if attack in frame.index:
            row[f"{attack}_asr"] = float(frame.loc[attack, "asr"])
            row[f"{attack}_robust_acc"] = float(frame.loc[attack, "robust_acc"])
    distorted = frame[~frame["kind"].isin(["clean", *EVASION_ATTACKS])]
    on_video = distorted["kind"].str.endswith(VIDEO_SUFFIX)
    if (~on_video).any():
        row["distorted_auc_mean"] = float(distorted.loc[~on_video, "auc"].mean())
    if on_video.any():
        row["video_distorted_auc_mean"] = float(distorted.loc[on_video, "auc"].mean())
    return row


def experiment_table(scenarios: list[dict], metrics: list[pd.DataFrame], histories: list[pd.DataFrame],
                     purified: list[pd.Series | None]) -> pd.DataFrame:
    """One row per scenario and seed (`seed` 0 where the scenarios name none)."""
    rows = [scenario_row({"seed": 0, **s}, m, h, p) for s, m, h, p in zip(scenarios, metrics, histories, purified)]
    table = pd.DataFrame(rows)
    table["poison_rate"] = table["poison_rate"].astype(float)
    table["seed"] = table["seed"].astype(int)
    return table.sort_values(SCENARIO_AXES + ["seed"], kind="stable").reset_index(drop=True)


def seed_summary(per_seed: pd.DataFrame) -> pd.DataFrame:
    """One row per scenario: every numeric column's mean over the seeds whose detector exists, and
    its sample sd as `<column>_sd` (NaN from a single seed); `seeds` counts the trained detectors
    and `detector` says when some or all seeds had nothing to train on."""
    numeric = [c for c in per_seed.columns if c not in SCENARIO_AXES + ["seed", "detector"]
               and pd.api.types.is_numeric_dtype(per_seed[c])]
    rows = []
    for key, group in per_seed.groupby(SCENARIO_AXES, sort=False):
        trained = group[group["detector"] == "trained"]
        row = dict(zip(SCENARIO_AXES, key))
        row["seeds"] = len(trained)
        row["detector"] = ("trained" if len(trained) == len(group) else NO_DETECTOR if trained.empty else
                           f"trained for {len(trained)} of {len(group)} seeds")
        source = trained if len(trained) else group
        for column in numeric:
            values = source[column].dropna()
            row[column] = float(values.mean()) if len(values) else np.nan
            row[f"{column}_sd"] = float(values.std(ddof=1)) if len(values) > 1 else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def _interval(values: np.ndarray) -> tuple[float, float, float]:
    """Mean and two-sided 95 % t-interval of `values` (one per seed)."""
    from scipy import stats

    values = values[np.isfinite(values)]
    if len(values) == 0:
        return np.nan, np.nan, np.nan
    mean = float(values.mean())
    if len(values) < 2:
        return mean, np.nan, np.nan
    half = float(stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values)))
    return mean, mean - half, mean + half


def _ratio_interval(won: np.ndarray, cost: np.ndarray, seed: int = 0, draws: int = 4000) -> tuple[float, float, float]:
    """mean(won) / mean(cost) and its 95 % percentile bootstrap interval over the seeds (pairs
    resampled together); NaN unless the cost is established (its 95 % interval above 0): a share
    of a cost indistinguishable from none is a ratio of noise."""
    keep = np.isfinite(won) & np.isfinite(cost)
    won, cost = won[keep], cost[keep]
    if len(won) == 0 or not _interval(cost)[1] > 0:
        return np.nan, np.nan, np.nan
    share = float(won.mean() / cost.mean())
    if len(won) < 2:
        return share, np.nan, np.nan
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(won), (draws, len(won)))
    denominators = cost[picks].mean(1)
    ratios = won[picks].mean(1)[denominators > 0] / denominators[denominators > 0]
    return share, float(np.quantile(ratios, 0.025)), float(np.quantile(ratios, 0.975))


def poisoning_effects(per_seed: pd.DataFrame, metrics: tuple[str, ...] = ("auc", "acc")) -> pd.DataFrame:
    """What poisoning costs and what each defence wins back, on the test fakes of the generator the
    detector trained on, paired by detector seed.

    For every backbone / training / generator, attack and poison rate r > 0: the cost is the clean
    scenario (rate 0, no defence) minus rate r without defence; a defence wins back its
    rate-r result minus the undefended one, and its share is won back over cost. Means with 95 %
    t-intervals over the seeds (the share: a bootstrap interval over the seeds)."""
    rows = []
    table = per_seed[per_seed["detector"] == "trained"]
    for (backbone, training, generator), group in table.groupby(["backbone", "training", "generator"], sort=False):
        clean = group[(group["poison_rate"] == 0) & (group["defence"] == "none")].set_index("seed")
        if clean.empty:  # no clean scenario in the grid: nothing to measure a cost against
            continue
        for (attack, loss, rate), attacked in group[group["poison_rate"] > 0].groupby(["attack", "loss", "poison_rate"],
                                                                                     sort=True):
            undefended = attacked[attacked["defence"] == "none"].set_index("seed")
            for defence, defended in attacked.groupby("defence", sort=True):
                defended = defended.set_index("seed")
                row = {"backbone": backbone, "training": training, "generator": generator, "attack": attack,
                       "loss": loss, "poison_rate": rate, "defence": defence, "seeds": len(defended)}
                for metric in metrics:
                    column = f"{metric}_{generator}" if f"{metric}_{generator}" in group else metric
                    seeds = defended.index.intersection(clean.index).intersection(undefended.index)
                    cost = (clean.loc[seeds, column] - undefended.loc[seeds, column]).to_numpy(float)
                    won = (defended.loc[seeds, column] - undefended.loc[seeds, column]).to_numpy(float)
                    row[f"{metric}_clean"], _, _ = _interval(clean.loc[seeds, column].to_numpy(float))
                    row[f"{metric}_poisoned"], _, _ = _interval(undefended.loc[seeds, column].to_numpy(float))
                    row[f"{metric}_defended"], _, _ = _interval(defended.loc[seeds, column].to_numpy(float))
                    (row[f"{metric}_cost"], row[f"{metric}_cost_lo"],
                     row[f"{metric}_cost_hi"]) = _interval(cost)
                    if defence != "none":
                        (row[f"{metric}_won_back"], row[f"{metric}_won_back_lo"],
                         row[f"{metric}_won_back_hi"]) = _interval(won)
                        (row[f"{metric}_share"], row[f"{metric}_share_lo"],
                         row[f"{metric}_share_hi"]) = _ratio_interval(won, cost)
                rows.append(row)
    return pd.DataFrame(rows)


def _cell(value, digits: int) -> str:
    if isinstance(value, (float, np.floating)):
        return "—" if np.isnan(value) else f"{value:.{digits}f}"
    return str(value)


def markdown(table: pd.DataFrame, digits: int = 3) -> str:
    """A GitHub Markdown table (pandas' to_markdown needs tabulate, which is not a dependency); a
    column with an `<column>_sd` partner is shown as `mean ± sd`."""
    shown = [c for c in table.columns if not c.endswith("_sd")]

    def cell(row, column) -> str:
        value = _cell(row[column], digits)
        sd = row.get(f"{column}_sd", np.nan)
        return value if value == "—" or not np.isfinite(sd) else f"{value} ± {sd:.{digits}f}"
    lines = ["| " + " | ".join(shown) + " |", "|" + "|".join("---" for _ in shown) + "|"]
    lines += ["| " + " | ".join(cell(row, c) for c in shown) + " |" for _, row in table.iterrows()]
    return "\n".join(lines) + "\n"


def summary_markdown(summary: pd.DataFrame, effects: pd.DataFrame) -> str:
    """summary.md: the scenarios (mean ± sd over the seeds) and, where the grid has them, the
    poisoning's cost and each defence's win-back with 95 % intervals."""
    per_set = sorted(c for c in summary.columns if c.startswith(("auc_", "acc_")) and not c.endswith("_sd"))
    columns = SCENARIO_AXES + ["seeds", "detector"] + [c for c in SUMMARY_COLUMNS[:5] if c in summary] + per_set + [
        c for c in SUMMARY_COLUMNS[5:] if c in summary]
    text = "## Scenarios (mean ± sd over the detector seeds)\n\n" + markdown(
        summary[[c for c in summary.columns if c in columns or c.removesuffix("_sd") in columns]])
    if len(effects):
        text += ("\n## Poisoning cost and what each defence wins back (test fakes of the training generator; "
                 "mean [95 % interval] over the seeds)\n\n" + markdown(_effects_view(effects)))
    return text


def _effects_view(effects: pd.DataFrame) -> pd.DataFrame:
    """One readable column per quantity: `mean [lo, hi]`."""
    view = effects[["backbone", "training", "generator", "attack", "loss", "poison_rate", "defence", "seeds"]].copy()
    for column in [c for c in effects.columns if c.endswith(("_clean", "_poisoned", "_defended"))]:
        view[column] = effects[column]
    for quantity in ("cost", "won_back", "share"):
        for metric in ("auc", "acc"):
            name = f"{metric}_{quantity}"
            if name in effects:
                view[name] = [f"{_cell(m, 3)} [{_cell(lo, 3)}, {_cell(hi, 3)}]" if np.isfinite(m) else "—"
                              for m, lo, hi in zip(effects[name], effects[f"{name}_lo"], effects[f"{name}_hi"])]
    return view


def _save(fig, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)


def _label(row, axes) -> str:
    return " / ".join(str(row[a]) for a in axes)


def _own(table: pd.DataFrame, metric: str, suffix: str = "") -> pd.Series:
    """`metric` (or its `_sd`) on the test fakes of each row's own training generator."""
    return pd.Series([row.get(f"{metric}_{row['generator']}{suffix}", row.get(f"{metric}{suffix}", np.nan))
                      for _, row in table.iterrows()], index=table.index, dtype=float)


def plot_auc_vs_rate(summary: pd.DataFrame, path: str | Path) -> None:
    """The project's story in one figure: AUC and accuracy on split C (the test fakes of the
    generator the detector trained on) against the poison rate, one line per defence (and per
    backbone/training/generator when several are in the grid), error bars the sd over the detector
    seeds; an x on the axis marks a scenario that left nothing to train a detector on."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    # the clean scenario (rate 0, whatever its attack is named) starts every attack's line
    clean, attacked = summary[summary["poison_rate"] == 0], summary[summary["poison_rate"] > 0]
    poisonings = attacked[["attack", "loss"]].drop_duplicates().itertuples(index=False)
    table = pd.concat([attacked] + [clean.assign(attack=a, loss=l) for a, l in poisonings]) if len(attacked) else clean
    groups = ["backbone", "training", "generator", "attack", "loss", "defence"]
    varying = [g for g in groups if table[g].nunique() > 1] or ["defence"]
    for ax, metric, name in zip(axes, ("auc", "acc"), ("AUC", "accuracy")):
        for key, group in table.groupby(varying, sort=True):
            group = group.sort_values("poison_rate")
            line = ax.errorbar(group["poison_rate"], _own(group, metric), yerr=_own(group, metric, "_sd").fillna(0),
                               marker="o", capsize=3, label=" / ".join(map(str, np.atleast_1d(key))))
            untrained = group[group["detector"] == NO_DETECTOR]
            if len(untrained):  # a scenario without a detector (nothing left to train on) is marked on the axis
                ax.plot(untrained["poison_rate"], np.zeros(len(untrained)), marker="x", linestyle="none",
                        color=line.lines[0].get_color(), clip_on=False)
        ax.set(xlabel="poison rate (share of split B's real media disrupted)",
               ylabel=f"{name} on split C (frames, own generator's fakes)", ylim=(0, 1.02),
               title=f"Detector {name} against poisoning")
        ax.grid(alpha=0.3)
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, title=" / ".join(varying), fontsize=8, loc="outside right upper")
    _save(fig, path)


def plot_roc(scores: list[pd.DataFrame], labels: list[str], path: str | Path) -> None:
    fig, ax = plt.subplots(figsize=(5, 5))
    for table, label in zip(scores, labels):
        clean = table[table["condition"] == "clean"]
        roc = roc_points(clean["label"].to_numpy(), clean["score"].to_numpy())
        ax.plot(roc["fpr"], roc["tpr"], label=label, linewidth=1.2)
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=0.8)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC on split C (clean, all fakes)")
    ax.legend(fontsize=7)
    _save(fig, path)


def plot_distortions(metrics: list[pd.DataFrame], labels: list[str], path: str | Path) -> None:
    """Accuracy against distortion level, one panel per DeeperForensics type (level 0 is clean),
    one line per scenario: detectors of one label (its seeds) are averaged, the sd as error bars."""
    kinds = sorted({k for m in metrics for k in m["kind"].unique()} - {"clean", *EVASION_ATTACKS})
    if not kinds:
        kinds = ["(none configured)"]
    cols = min(4, len(kinds))
    rows = int(np.ceil(len(kinds) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols + 2.5, 2.9 * rows), squeeze=False, sharey=True,
                             constrained_layout=True)  # lays titles and labels out without overlaps
    frames = pd.concat([m[(m["test_set"] == ALL_FAKES) & (m["unit"] == "frame")].assign(label=label)
                        for m, label in zip(metrics, labels)], ignore_index=True) if metrics else pd.DataFrame()
    for ax, kind in zip(axes.flat, kinds):
        for label in dict.fromkeys(labels):
            mine = frames[frames["label"] == label]
            curve = pd.concat([mine[mine["kind"] == "clean"], mine[mine["kind"] == kind]])
            stats = curve.groupby("level")["acc"].agg(["mean", "std"]).reset_index()
            ax.errorbar(stats["level"], stats["mean"], yerr=stats["std"].fillna(0), marker=".", capsize=2,
                        label=label)
        ax.set(title=kind, xlabel="level", ylim=(0, 1.02))
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(kinds):]:
        ax.axis("off")
    for row in axes:
        row[0].set_ylabel("accuracy")
    handles, names = axes[0][0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, names, fontsize=7, loc="outside right upper")
    _save(fig, path)


def plot_attack_success(summary: pd.DataFrame, path: str | Path) -> None:
    """Attack success rate of FGSM and PGD per scenario (mean over the seeds, sd as error bars),
    so that the effect of adversarial training is read off."""
    columns = [c for c in ("fgsm_asr", "pgd_asr") if c in summary.columns]
    fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(summary) + 2), 4), constrained_layout=True)
    if columns:
        labels = [_label(r, ["backbone", "training", "poison_rate", "defence"]) for _, r in summary.iterrows()]
        x = np.arange(len(summary))
        width = 0.8 / len(columns)
        for i, column in enumerate(columns):
            error = summary[f"{column}_sd"].fillna(0) if f"{column}_sd" in summary else None
            ax.bar(x + i * width, summary[column], width, yerr=error, capsize=2,
                   label=column.replace("_asr", "").upper())
        ax.set_xticks(x + width * (len(columns) - 1) / 2, labels, rotation=45, ha="right", fontsize=7)
    ax.set(ylabel="attack success rate (fakes called real)", title="Evasion against each detector", ylim=(0, 1.02))
    ax.legend()
    _save(fig, path)
