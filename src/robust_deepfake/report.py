"""Stage summarise_experiments: the experiment table and the report's figures.

One row per scenario (backbone, training mode, training fakes' generator, poisoning attack and
rate, purifier) with what the scenario cost upstream (reject rate, disruption of the fakes) and
what the detector then achieved on split C: clean Acc/AUC/EER/AP at frame and video level, AUC per
test generator (cross-generator), attack success rate and robust accuracy under FGSM and PGD, and
the mean AUC over the DeeperForensics distortions. Figures: AUC against poison rate per purifier,
ROC curves, accuracy against distortion level per type, attack success rate per training mode.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: jobs run without a display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from robust_deepfake.atomic import atomic_path  # noqa: E402
from robust_deepfake.evaluation import ALL_FAKES  # noqa: E402
from robust_deepfake.scoring import roc_points  # noqa: E402

SCENARIO_AXES = ["backbone", "training", "generator", "attack", "poison_rate", "purifier"]


def _frame(metrics: pd.DataFrame, test_set: str = ALL_FAKES, unit: str = "frame") -> pd.DataFrame:
    return metrics[(metrics["test_set"] == test_set) & (metrics["unit"] == unit)].set_index("condition")


def scenario_row(scenario: dict, metrics: pd.DataFrame, history: pd.DataFrame, purified: pd.Series | None) -> dict:
    """The experiment table's row of one scenario. A scenario that left nothing to train on (its
    history is empty) keeps its row, with `detector` saying so and no metrics."""
    row = {**scenario}
    if purified is not None:
        row["reject_rate"] = float(purified.get("reject_rate", np.nan))
        row["mse_g_purified"] = float(purified.get("mse_g_purified", np.nan))
    if history.empty:
        return {**row, "detector": "none: no training faces"}
    row["detector"] = "trained"
    frame, video = _frame(metrics), _frame(metrics, unit="video")
    best = history[history["best"]].iloc[-1] if history["best"].any() else history.iloc[-1]
    row.update(train_images=int(history["train_images"].iloc[-1]), best_epoch=int(best["epoch"]),
               val_auc=float(best["val_auc"]))
    for key in ("acc", "auc", "eer", "ap"):
        row[key] = float(frame.loc["clean", key])
    row["video_auc"] = float(video.loc["clean", "auc"])
    per_set = metrics[(metrics["condition"] == "clean") & (metrics["unit"] == "frame") & (metrics["test_set"] != ALL_FAKES)]
    row.update({f"auc_{name}": float(auc) for name, auc in zip(per_set["test_set"], per_set["auc"])})
    for attack in ("fgsm", "pgd"):
        if attack in frame.index:
            row[f"{attack}_asr"] = float(frame.loc[attack, "asr"])
            row[f"{attack}_robust_acc"] = float(frame.loc[attack, "robust_acc"])
    distorted = frame[~frame["kind"].isin(["clean", "fgsm", "pgd"])]
    if len(distorted):
        row["distorted_auc_mean"] = float(distorted["auc"].mean())
    return row


def experiment_table(scenarios: list[dict], metrics: list[pd.DataFrame], histories: list[pd.DataFrame],
                     purified: list[pd.Series | None]) -> pd.DataFrame:
    rows = [scenario_row(s, m, h, p) for s, m, h, p in zip(scenarios, metrics, histories, purified)]
    table = pd.DataFrame(rows)
    table["poison_rate"] = table["poison_rate"].astype(float)
    return table.sort_values(SCENARIO_AXES, kind="stable").reset_index(drop=True)


def markdown(table: pd.DataFrame, digits: int = 3) -> str:
    """A GitHub Markdown table (pandas' to_markdown needs tabulate, which is not a dependency)."""
    def cell(value) -> str:
        if isinstance(value, float):
            return "—" if np.isnan(value) else f"{value:.{digits}f}"
        return str(value)
    lines = ["| " + " | ".join(table.columns) + " |", "|" + "|".join("---" for _ in table.columns) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def _save(fig, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)


def _label(row, axes) -> str:
    return " / ".join(str(row[a]) for a in axes)


def plot_auc_vs_rate(table: pd.DataFrame, path: str | Path) -> None:
    """The project's story in one figure: clean AUC on split C against the poison rate, one line
    per purifier (and backbone/training/generator when several are in the grid); an x on the axis
    marks a scenario that left nothing to train a detector on."""
    fig, ax = plt.subplots(figsize=(6, 4))
    table = table.assign(auc=table.get("auc", np.nan))
    # the clean scenario (rate 0, whatever its attack is named) starts every attack's line
    clean, attacked = table[table["poison_rate"] == 0], table[table["poison_rate"] > 0]
    attacks = attacked["attack"].unique()
    table = pd.concat([attacked] + [clean.assign(attack=a) for a in attacks]) if len(attacks) else clean
    groups = ["backbone", "training", "generator", "attack", "purifier"]
    varying = [g for g in groups if table[g].nunique() > 1] or ["purifier"]
    for key, group in table.groupby(varying, sort=True):
        group = group.sort_values("poison_rate")
        line, = ax.plot(group["poison_rate"], group["auc"], marker="o", label=" / ".join(map(str, np.atleast_1d(key))))
        untrained = group[group["detector"] != "trained"]
        # a scenario without a detector (nothing left to train on) is marked on the axis, not dropped
        ax.plot(untrained["poison_rate"], np.zeros(len(untrained)), marker="x", linestyle="none",
                color=line.get_color(), clip_on=False)
    ax.set(xlabel="poison rate (share of split B's real media disrupted)", ylabel="AUC on split C (frames)",
           title="Detector AUC against poisoning", ylim=(0, 1.02))
    ax.grid(alpha=0.3)
    ax.legend(title=" / ".join(varying), fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
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
    """Accuracy against distortion level, one panel per DeeperForensics type; level 0 is clean."""
    kinds = sorted({k for m in metrics for k in m["kind"].unique()} - {"clean", "fgsm", "pgd"})
    if not kinds:
        kinds = ["(none configured)"]
    cols = min(4, len(kinds))
    rows = int(np.ceil(len(kinds) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.8 * rows), squeeze=False, sharey=True)
    for ax, kind in zip(axes.flat, kinds):
        for table, label in zip(metrics, labels):
            frame = table[(table["test_set"] == ALL_FAKES) & (table["unit"] == "frame")]
            curve = pd.concat([frame[frame["kind"] == "clean"], frame[frame["kind"] == kind]]).sort_values("level")
            ax.plot(curve["level"], curve["acc"], marker=".", label=label)
        ax.set(title=kind, xlabel="level", ylim=(0, 1.02))
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(kinds):]:
        ax.axis("off")
    axes[0][0].set_ylabel("accuracy")
    axes[0][0].legend(fontsize=6)
    _save(fig, path)


def plot_attack_success(table: pd.DataFrame, path: str | Path) -> None:
    """Attack success rate of FGSM and PGD per training mode, on the scenarios that have more
    than one training mode (else all), so that the effect of adversarial training is read off."""
    columns = [c for c in ("fgsm_asr", "pgd_asr") if c in table.columns]
    fig, ax = plt.subplots(figsize=(6, 4))
    if columns:
        labels = [_label(r, ["training", "poison_rate", "purifier"]) for _, r in table.iterrows()]
        x = np.arange(len(table))
        width = 0.8 / len(columns)
        for i, column in enumerate(columns):
            ax.bar(x + i * width, table[column], width, label=column.replace("_asr", "").upper())
        ax.set_xticks(x + width * (len(columns) - 1) / 2, labels, rotation=45, ha="right", fontsize=7)
    ax.set(ylabel="attack success rate (fakes called real)", title="Evasion against each detector", ylim=(0, 1.02))
    ax.legend()
    _save(fig, path)
