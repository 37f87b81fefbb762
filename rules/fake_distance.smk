rule train_feature_extractor:
    """The fallback feature space of FID/KID when no InceptionV3 weights are configured: a
    ResNet-18 trained on split A to tell its identities apart."""
    input:
        faces=f"{RESULTS}/split/A.parquet",
    output:
        model=f"{RESULTS}/fake_distance/identity_resnet18.pt",
        history=f"{RESULTS}/fake_distance/identity_resnet18_history.parquet",
    params:
        settings=config["fake_distance"],
        seed=config["seed"],
        code=script_code("train_feature_extractor.py"),
    threads: 1
    resources:
        gpu=GPU_PER_JOB,
    log:
        f"{LOGS}/train_feature_extractor.log",
    conda:
        "../envs/torch.yaml"
    script:
        "../workflow_scripts/train_feature_extractor.py"


rule measure_fakes:
    """FID and KID of every defence's fakes, for one generator, attack and poison rate, against
    the fakes the same generator makes from clean faces (poison rate 0, no defence)."""
    input:
        fakes=expand(f"{RESULTS}/fakes/{{{{generator}}}}/{{{{attack}}}}/{{{{loss}}}}/{{{{rate}}}}/{{defence}}/manifest.parquet",
                     defence=DEFENCE_AXIS),
        reference=f"{RESULTS}/fakes/{{generator}}/{CLEAN_ATTACK}/{CLEAN_ATTACK}/0/none/manifest.parquet",
        extractor=lambda wildcards: [] if config["fake_distance"]["inception_weights"] else
            [f"{RESULTS}/fake_distance/identity_resnet18.pt"],
    output:
        f"{RESULTS}/fakes/{{generator}}/{{attack}}/{{loss}}/{{rate}}/distance.tsv",
    params:
        defences=DEFENCE_AXIS,
        inception_weights=config["fake_distance"]["inception_weights"],
        seed=config["seed"],
        code=script_code("measure_fakes.py"),
    threads: 1
    resources:
        gpu=GPU_PER_JOB,
    log:
        f"{LOGS}/measure_fakes/{{generator}}_{{attack}}_{{loss}}_{{rate}}.log",
    conda:
        "../envs/torch.yaml"
    script:
        "../workflow_scripts/measure_fakes.py"


rule summarise_fake_distance:
    input:
        poisoning_paths(f"{RESULTS}/fakes/{{generator}}/{{attack}}/{{loss}}/{{rate}}/distance.tsv",
                        generator=config["fakes"]["generators"]),
    output:
        f"{RESULTS}/fakes/distance.tsv",
    params:
        code=script_code("concat_summaries.py"),
    log:
        f"{LOGS}/summarise_fake_distance.log",
    conda:
        "../envs/media.yaml"
    script:
        "../workflow_scripts/concat_summaries.py"
