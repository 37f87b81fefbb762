rule train_detector:
    """A detector trained on split B's kept real faces and the fakes made from them, in one
    scenario of the experiment grid; resumable state lives beside the output, keyed by settings.
    A fine-tuning mode also reads the plain detector of its scenario and seed."""
    input:
        unpack(starting_detector),
        reals=f"{RESULTS}/purified/{{attack}}/{{loss}}/{{rate}}/{{defence}}/manifest.parquet",
        fakes=f"{RESULTS}/fakes/{{generator}}/{{attack}}/{{loss}}/{{rate}}/{{defence}}/manifest.parquet",
    output:
        model=f"{RESULTS}/detectors/{SCENARIO}/model.pt",
        history=f"{RESULTS}/detectors/{SCENARIO}/history.parquet",
    params:
        settings=detector_settings,
        seed=lambda wildcards: int(wildcards.seed),
        crop=DETECTOR_INPUT,
        compute=config["compute"],
        device=config["device"],
        code=script_code("train_detector.py"),
    threads: 1
    priority: PRIORITY["train_detector"]
    resources:
        gpu=GPU_PER_JOB,
    log:
        f"{LOGS}/train_detector/{SCENARIO_FILE}.log",
    benchmark:
        f"{BENCHMARKS}/train_detector/{SCENARIO_FILE}.tsv"
    conda:
        "../envs/torch.yaml"
    script:
        "../workflow_scripts/train_detector.py"
