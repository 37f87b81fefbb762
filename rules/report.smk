rule summarise_experiments:
    """The experiment table (one row per scenario) and the report's figures."""
    input:
        metrics=[f"{RESULTS}/evaluation/{SCENARIO.format(**s)}/metrics.parquet" for s in experiment_scenarios()],
        scores=[f"{RESULTS}/evaluation/{SCENARIO.format(**s)}/scores.parquet" for s in experiment_scenarios()],
        histories=[f"{RESULTS}/detectors/{SCENARIO.format(**s)}/history.parquet" for s in experiment_scenarios()],
        purified=[f"{RESULTS}/purified/{s['attack']}/{s['loss']}/{s['rate']}/{s['defence']}/summary.tsv" for s in experiment_scenarios()],
    output:
        table=f"{STUDY}/summary.parquet",
        seeds=f"{STUDY}/summary_seeds.parquet",
        effects=f"{STUDY}/effects.parquet",
        markdown=report(f"{STUDY}/summary.md", caption="../report/summary.rst", category="Experiments"),
        auc_vs_rate=report(f"{STUDY}/report/auc_vs_poison_rate.png", caption="../report/auc_vs_poison_rate.rst",
                           category="Experiments"),
        roc=report(f"{STUDY}/report/roc.png", caption="../report/roc.rst", category="Experiments"),
        distortions=report(f"{STUDY}/report/accuracy_vs_distortion.png", caption="../report/distortions.rst",
                           category="Robustness"),
        attacks=report(f"{STUDY}/report/attack_success.png", caption="../report/attack_success.rst",
                       category="Robustness"),
    params:
        scenarios=experiment_scenarios(),
        code=script_code("summarise_experiments.py"),
    log:
        f"{LOGS}/summarise_experiments_{config['study']}.log",
    conda:
        "../envs/torch.yaml"
    script:
        "../workflow_scripts/summarise_experiments.py"
