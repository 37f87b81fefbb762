"""Snakemake entry point of rule summarise_experiments; the logic is robust_deepfake.stages.report."""

from robust_deepfake.logs import log_to_file

log = log_to_file(snakemake.log[0])

import pandas as pd  # noqa: E402

from robust_deepfake.atomic import atomic_path  # noqa: E402
from robust_deepfake.stages.report import (experiment_table, plot_attack_success, plot_auc_vs_rate,  # noqa: E402
                                    plot_distortions, plot_roc, poisoning_effects, seed_summary, summary_markdown)

inp, out = snakemake.input, snakemake.output
scenarios = [{**{k: v for k, v in s.items() if k != "rate"}, "poison_rate": float(s["rate"]), "seed": int(s["seed"])}
             for s in snakemake.params.scenarios]
metrics = [pd.read_parquet(p) for p in inp.metrics]
purified = [pd.read_csv(p, sep="\t").iloc[0] for p in inp.purified]
per_seed = experiment_table(scenarios, metrics, [pd.read_parquet(p) for p in inp.histories], purified)
summary, effects = seed_summary(per_seed), poisoning_effects(per_seed)
for path, table in ((out.table, summary), (out.seeds, per_seed), (out.effects, effects)):
    with atomic_path(path) as tmp:
        table.to_parquet(tmp, index=False)
with atomic_path(out.markdown) as tmp:
    tmp.write_text(summary_markdown(summary, effects))
# per-scenario curves for the scenarios that have a detector; the ROC of each scenario's first seed
trained = [i for i, m in enumerate(metrics) if not m.empty]
labels = {i: " / ".join(str(scenarios[i][k]) for k in ("backbone", "training", "poison_rate", "defence"))
          for i in trained}
first_seed = list({labels[i]: i for i in reversed(trained)}.values())[::-1]
plot_auc_vs_rate(summary, out.auc_vs_rate)
plot_roc([pd.read_parquet(inp.scores[i]) for i in first_seed], [labels[i] for i in first_seed], out.roc)
plot_distortions([metrics[i] for i in trained], [labels[i] for i in trained], out.distortions)
plot_attack_success(summary[summary["detector"] != "none: no training faces"], out.attacks)
log.info("%d scenarios (%d detectors) summarised in %s", len(summary), len(per_seed), out.table)
