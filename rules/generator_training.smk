rule train_generator:
    """Train a face generator on split A's real faces (variant main), or its grey-box surrogate on
    half of A's identities with another seed; a configured checkpoint replaces the main variant's
    training, never the surrogate's (`generator_settings`)."""
    input:
        faces=f"{RESULTS}/split/A.parquet",
    output:
        model=f"{RESULTS}/generators/{{generator}}/{{variant}}/model.pt",
        history=f"{RESULTS}/generators/{{generator}}/{{variant}}/history.parquet",
    params:
        settings=generator_settings,
        seed=lambda wildcards: config["seed"] + (1 if wildcards.variant == "surrogate" else 0),
        device=config["device"],
        code=script_code("train_generator.py"),
    threads: 1
    priority: PRIORITY["train_generator"]
    resources:
        gpu=GPU_PER_JOB,
    log:
        f"{LOGS}/train_generator/{{generator}}_{{variant}}.log",
    benchmark:
        f"{BENCHMARKS}/train_generator/{{generator}}_{{variant}}.tsv"
    conda:
        "../envs/torch.yaml"
    script:
        "../workflow_scripts/train_generator.py"
