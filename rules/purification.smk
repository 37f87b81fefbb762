rule purify:
    """Purify every real face of split B as the attacker left it; drop what cannot be repaired."""
    input:
        reals=poisoned_manifest,
        calibration=f"{RESULTS}/split/A.parquet",
        generator=purify_generator_model,
        purifier_model=purifier_model,
    output:
        manifest=f"{RESULTS}/purified/{{attack}}/{{loss}}/{{rate}}/{{defence}}/manifest.parquet",
        crops=directory(f"{RESULTS}/purified/{{attack}}/{{loss}}/{{rate}}/{{defence}}/crops"),
        summary=f"{RESULTS}/purified/{{attack}}/{{loss}}/{{rate}}/{{defence}}/summary.tsv",
    params:
        purifier_config=purifier_config,
        reject=reject_settings,
        batch_size=config["purify"]["batch_size"],
        generator=config["poison"]["generator"],
        generator_settings=config[config["poison"]["generator"]],
        calibration_identities=config["purify"]["calibration_identities"],
        calibration_faces=config["purify"]["calibration_faces"],
        seed=config["seed"],
        device=config["device"],
        code=script_code("purify.py"),
    threads: 1
    priority: PRIORITY["purify"]
    resources:
        gpu=GPU_PER_JOB,
    log:
        f"{LOGS}/purify/{{attack}}_{{loss}}_{{rate}}_{{defence}}.log",
    benchmark:
        f"{BENCHMARKS}/purify/{{attack}}_{{loss}}_{{rate}}_{{defence}}.tsv"
    conda:
        "../envs/torch.yaml"
    script:
        "../workflow_scripts/purify.py"


rule summarise_purification:
    """One table of every scenario: reject rate, quality against clean, disruption before and after."""
    input:
        poisoning_paths(f"{RESULTS}/purified/{{attack}}/{{loss}}/{{rate}}/{{defence}}/summary.tsv", defence=DEFENCE_AXIS),
    output:
        f"{RESULTS}/purified/summary.tsv",
    params:
        code=script_code("concat_summaries.py"),
    log:
        f"{LOGS}/summarise_purification.log",
    conda:
        "../envs/media.yaml"
    script:
        "../workflow_scripts/concat_summaries.py"
