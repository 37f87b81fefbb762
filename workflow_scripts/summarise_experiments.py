"""Snakemake entry point of rule summarise_experiments; the logic is robust_deepfake.report."""

from robust_deepfake.logs import log_to_file

log = log_to_file(snakemake.log[0])

import pandas as pd  # noqa: E402

from robust_deepfake.atomic import atomic_path  # noqa: E402
from robust_deepfake.report import (experiment_table, markdown, plot_attack_success, plot_auc_vs_rate,  # noqa: E402
                                    plot_distortions, plot_roc)

inp, out = snakemake.input, snakemake.output
scenarios = [{("poison_rate" if k == "rate" else k): (float(v) if k == "rate" else v) for k, v in s.items()}
             for s in snakemake.params.scenarios]
metrics = [pd.read_parquet(p) for p in inp.metrics]
purified = [pd.read_csv(p, sep="\t").iloc[0] for p in inp.purified]
table = experiment_table(scenarios, metrics, [pd.read_parquet(p) for p in inp.histories], purified)
with atomic_path(out.table) as tmp:
    table.to_parquet(tmp, index=False)
with atomic_path(out.markdown) as tmp:
    with open(tmp, "w") as handle:
        handle.write(markdown(table))
# per-scenario curves only for the scenarios that have a detector
trained = [i for i, m in enumerate(metrics) if not m.empty]
labels = [" / ".join(str(scenarios[i][k]) for k in ("training", "poison_rate", "purifier")) for i in trained]
plot_auc_vs_rate(table, out.auc_vs_rate)
plot_roc([pd.read_parquet(inp.scores[i]) for i in trained], labels, out.roc)
plot_distortions([metrics[i] for i in trained], labels, out.distortions)
plot_attack_success(table, out.attacks)
log.info("%d scenarios summarised in %s", len(table), out.table)
