rule evaluate_detector:
    """One detector on split C: clean, under FGSM/PGD evasion, under DeeperForensics distortions
    of the crops and of the whole videos, against the dataset's own fakes and every generator's
    test fakes."""
    input:
        model=f"{RESULTS}/detectors/{SCENARIO}/model.pt",
        part=f"{RESULTS}/split/C.parquet",
        test_fakes=test_fake_manifests(),
        released_fakes=[path for _, path in released_fake_manifests()],
        video_distorted=video_distortion_manifests(),
    output:
        scores=f"{RESULTS}/evaluation/{SCENARIO}/scores.parquet",
        metrics=f"{RESULTS}/evaluation/{SCENARIO}/metrics.parquet",
    params:
        settings=config["evaluate"],
        released=[name for name, _ in released_fake_manifests()],
        seed=config["seed"],
        compute=config["compute"],
        device=config["device"],
        code=script_code("evaluate_detector.py"),
    threads: 1
    priority: PRIORITY["evaluate_detector"]
    resources:
        gpu=GPU_PER_JOB,
    log:
        f"{LOGS}/evaluate_detector/{SCENARIO_FILE}.log",
    benchmark:
        f"{BENCHMARKS}/evaluate_detector/{SCENARIO_FILE}.tsv"
    conda:
        "../envs/torch.yaml"
    script:
        "../workflow_scripts/evaluate_detector.py"
