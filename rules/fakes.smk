rule generate_fakes:
    """Fakes made by one generator from split B's real faces as the trainer has them: purified,
    and only those the reject step kept."""
    input:
        reals=f"{RESULTS}/purified/{{attack}}/{{rate}}/{{defence}}/manifest.parquet",
        sources=f"{RESULTS}/split/A.parquet",
        model=fake_generator_model,
    output:
        manifest=f"{RESULTS}/fakes/{{generator}}/{{attack}}/{{rate}}/{{defence}}/manifest.parquet",
        images=directory(f"{RESULTS}/fakes/{{generator}}/{{attack}}/{{rate}}/{{defence}}/images"),
    params:
        **fake_generation_params(),
    threads: 1
    priority: PRIORITY["generate_fakes"]
    resources:
        gpu=GPU_PER_JOB,
    log:
        f"{LOGS}/generate_fakes/{{generator}}_{{attack}}_{{rate}}_{{defence}}.log",
    benchmark:
        f"{BENCHMARKS}/generate_fakes/{{generator}}_{{attack}}_{{rate}}_{{defence}}.tsv"
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
