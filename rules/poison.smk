# the params both poisoning rules pass to workflow_scripts/poison.py
POISON_PARAMS = dict(
    rate=lambda wildcards: float(wildcards.rate),
    generator=attacked_only(config["poison"]["generator"]),
    generator_settings=attacked_only(config[config["poison"]["generator"]]),
    threat=attacked_only(config["poison"]["threat"]),
    epsilon=attacked_only(config["poison"]["epsilon"]),
    steps=attacked_only(config["poison"]["steps"]),
    step_size=attacked_only(config["poison"]["step_size"]),
    loss=lambda wildcards: None if wildcards.loss == NO_LOSS else wildcards.loss,
    batch_size=attacked_only(config["poison"]["batch_size"]),
    seed=config["seed"],
    device=config["device"],
    code=script_code("poison.py"),
)


rule poison:
    """Disrupt a poison_rate share of split B's real media with an attack and loss on the targeted
    generator (the clean scenario, attack and loss none at rate 0, only records B's reals: it needs
    no generator)."""
    wildcard_constraints:
        attack="|".join([a for a in [*POISON_ATTACKS, CLEAN_ATTACK] if a not in ADAPTIVE_ATTACKS]),
    input:
        part=f"{RESULTS}/split/B.parquet",
        model=lambda wildcards: [] if wildcards.attack == CLEAN_ATTACK else poison_target_model(),
    output:
        manifest=f"{RESULTS}/poisoned/{{attack}}/{{loss}}/{{rate}}/manifest.parquet",
        crops=directory(f"{RESULTS}/poisoned/{{attack}}/{{loss}}/{{rate}}/crops"),
        summary=f"{RESULTS}/poisoned/{{attack}}/{{loss}}/{{rate}}/summary.tsv",
        grid=f"{RESULTS}/poisoned/{{attack}}/{{loss}}/{{rate}}/grid.png",
    params:
        **POISON_PARAMS,
    threads: 1
    priority: PRIORITY["poison"]
    resources:
        gpu=GPU_PER_JOB,
    log:
        f"{LOGS}/poison/{{attack}}_{{loss}}_{{rate}}.log",
    benchmark:
        f"{BENCHMARKS}/poison/{{attack}}_{{loss}}_{{rate}}.tsv"
    conda:
        "../envs/torch.yaml"
    script:
        "../workflow_scripts/poison.py"


rule poison_adaptive:
    """The same poisoning by an attacker who knows the defence: optimised through its purifier
    (EOT, straight-through gradients where it is not differentiable) against the generator that
    defence's fakes come from; one poisoned split B per defence."""
    wildcard_constraints:
        attack="|".join(ADAPTIVE_ATTACKS),
    input:
        part=f"{RESULTS}/split/B.parquet",
        model=adaptive_target_model,
        purifier_model=purifier_model,
    output:
        manifest=f"{RESULTS}/poisoned/{{attack}}/{{loss}}/{{rate}}/against/{{defence}}/manifest.parquet",
        crops=directory(f"{RESULTS}/poisoned/{{attack}}/{{loss}}/{{rate}}/against/{{defence}}/crops"),
        summary=f"{RESULTS}/poisoned/{{attack}}/{{loss}}/{{rate}}/against/{{defence}}/summary.tsv",
        grid=f"{RESULTS}/poisoned/{{attack}}/{{loss}}/{{rate}}/against/{{defence}}/grid.png",
    params:
        **POISON_PARAMS,
        purifier_config=purifier_config,
        # a deterministic purifier gives the same draw every time: one sample, and no rerun when it changes
        eot_samples=lambda wildcards: config["poison"]["eot_samples"] if DEFENCES[wildcards.defence].diffusion else 1,
    threads: 1
    priority: PRIORITY["poison_adaptive"]
    resources:
        gpu=GPU_PER_JOB,
    log:
        f"{LOGS}/poison/{{attack}}_{{loss}}_{{rate}}_against_{{defence}}.log",
    benchmark:
        f"{BENCHMARKS}/poison/{{attack}}_{{loss}}_{{rate}}_against_{{defence}}.tsv"
    conda:
        "../envs/torch.yaml"
    script:
        "../workflow_scripts/poison.py"


rule poison_test:
    """All of split C's real faces poisoned with one attack and loss, as an attacker releases them:
    what the attacker's own fakes (generate_released_fakes) are made from."""
    wildcard_constraints:
        attack="|".join(a for a, _ in released_poisonings()) or "^$",
    input:
        part=f"{RESULTS}/split/C.parquet",
        model=poison_target_model(),
    output:
        manifest=f"{RESULTS}/poisoned_test/{{attack}}/{{loss}}/manifest.parquet",
        crops=directory(f"{RESULTS}/poisoned_test/{{attack}}/{{loss}}/crops"),
        summary=f"{RESULTS}/poisoned_test/{{attack}}/{{loss}}/summary.tsv",
        grid=f"{RESULTS}/poisoned_test/{{attack}}/{{loss}}/grid.png",
    params:
        **{**POISON_PARAMS, "rate": 1.0},  # every real face: the attacker poisons all it releases
    threads: 1
    priority: PRIORITY["poison"]
    resources:
        gpu=GPU_PER_JOB,
    log:
        f"{LOGS}/poison_test/{{attack}}_{{loss}}.log",
    benchmark:
        f"{BENCHMARKS}/poison_test/{{attack}}_{{loss}}.tsv"
    conda:
        "../envs/torch.yaml"
    script:
        "../workflow_scripts/poison.py"


rule summarise_poisoning:
    """One table of every poisoning scenario: perturbation size and disruption (prop_dist)."""
    input:
        poisoning_summaries(),
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
