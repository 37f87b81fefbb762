rule poison:
    """Disrupt a poison_rate share of split B's real media with an attack on the targeted generator."""
    input:
        part=f"{RESULTS}/split/B.parquet",
        model=poison_target_model(),
    output:
        manifest=f"{RESULTS}/poisoned/{{attack}}/{{rate}}/manifest.parquet",
        crops=directory(f"{RESULTS}/poisoned/{{attack}}/{{rate}}/crops"),
        summary=f"{RESULTS}/poisoned/{{attack}}/{{rate}}/summary.tsv",
        grid=f"{RESULTS}/poisoned/{{attack}}/{{rate}}/grid.png",
    params:
        rate=lambda wildcards: float(wildcards.rate),
        generator=config["poison"]["generator"],
        generator_settings=config[config["poison"]["generator"]],
        threat=config["poison"]["threat"],
        epsilon=config["poison"]["epsilon"],
        steps=config["poison"]["steps"],
        step_size=config["poison"]["step_size"],
        loss=config["poison"]["loss"],
        batch_size=config["poison"]["batch_size"],
        seed=config["seed"],
        device=config["device"],
        code=script_code("poison.py"),
    threads: 1
    resources:
        gpu=GPU_PER_JOB,
    log:
        f"{LOGS}/poison/{{attack}}_{{rate}}.log",
    benchmark:
        f"{BENCHMARKS}/poison/{{attack}}_{{rate}}.tsv"
    conda:
        "../envs/torch.yaml"
    script:
        "../workflow_scripts/poison.py"


rule summarise_poisoning:
    """One table of every poisoning scenario: perturbation size and disruption (prop_dist)."""
    input:
        poisoning_paths(f"{RESULTS}/poisoned/{{attack}}/{{rate}}/summary.tsv"),
    output:
        f"{RESULTS}/poisoned/summary.tsv",
    params:
        code=script_code("concat_summaries.py"),
    log:
        f"{LOGS}/summarise_poisoning.log",
    conda:
        "../envs/media.yaml"
    script:
        "../workflow_scripts/concat_summaries.py"
