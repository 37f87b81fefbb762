rule generate_fakes:
    """Fakes made by one generator from split B's real faces as the trainer has them: purified,
    and only those the reject step kept."""
    input:
        reals=f"{RESULTS}/purified/{{attack}}/{{loss}}/{{rate}}/{{defence}}/manifest.parquet",
        sources=f"{RESULTS}/split/A.parquet",
        model=fake_generator_model,
    output:
        manifest=f"{RESULTS}/fakes/{{generator}}/{{attack}}/{{loss}}/{{rate}}/{{defence}}/manifest.parquet",
        images=directory(f"{RESULTS}/fakes/{{generator}}/{{attack}}/{{loss}}/{{rate}}/{{defence}}/images"),
    params:
        **fake_generation_params(),
    threads: 1
    priority: PRIORITY["generate_fakes"]
    resources:
        gpu=GPU_PER_JOB,
    log:
        f"{LOGS}/generate_fakes/{{generator}}_{{attack}}_{{loss}}_{{rate}}_{{defence}}.log",
    benchmark:
        f"{BENCHMARKS}/generate_fakes/{{generator}}_{{attack}}_{{loss}}_{{rate}}_{{defence}}.tsv"
    conda:
        "../envs/torch.yaml"
    script:
        "../workflow_scripts/generate_fakes.py"


rule generate_released_fakes:
    """The attacker's own fakes: the attacked generator applied to every real face of split C as one
    poisoning left it (never purified: the attacker releases them), a test set of every detector."""
    wildcard_constraints:
        generator=config["poison"]["generator"],
    input:
        reals=f"{RESULTS}/poisoned_test/{{attack}}/{{loss}}/manifest.parquet",
        sources=f"{RESULTS}/split/A.parquet",
        model=lambda wildcards: [generator_model(wildcards.generator)],
    output:
        manifest=f"{RESULTS}/test_fakes/{{generator}}/released/{{attack}}/{{loss}}/manifest.parquet",
        images=directory(f"{RESULTS}/test_fakes/{{generator}}/released/{{attack}}/{{loss}}/images"),
    params:
        **fake_generation_params(),
    threads: 1
    priority: PRIORITY["generate_test_fakes"]
    resources:
        gpu=GPU_PER_JOB,
    log:
        f"{LOGS}/generate_released_fakes/{{generator}}_{{attack}}_{{loss}}.log",
    benchmark:
        f"{BENCHMARKS}/generate_released_fakes/{{generator}}_{{attack}}_{{loss}}.tsv"
    conda:
        "../envs/torch.yaml"
    script:
        "../workflow_scripts/generate_fakes.py"


rule generate_test_fakes:
    """The evaluation's fakes: each generator applied to split C's clean real faces, with the
    clean trained model, so every detector meets every generator's fakes (cross-generator)."""
    input:
        reals=f"{RESULTS}/split/C.parquet",
        sources=f"{RESULTS}/split/A.parquet",
        model=lambda wildcards: [generator_model(wildcards.generator)] if wildcards.generator in TRAINED_GENERATORS else [],
    output:
        manifest=f"{RESULTS}/test_fakes/{{generator}}/manifest.parquet",
        images=directory(f"{RESULTS}/test_fakes/{{generator}}/images"),
    params:
        **fake_generation_params(),
    threads: 1
    priority: PRIORITY["generate_test_fakes"]
    resources:
        gpu=GPU_PER_JOB,
    log:
        f"{LOGS}/generate_test_fakes/{{generator}}.log",
    benchmark:
        f"{BENCHMARKS}/generate_test_fakes/{{generator}}.tsv"
    conda:
        "../envs/torch.yaml"
    script:
        "../workflow_scripts/generate_fakes.py"
