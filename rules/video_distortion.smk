rule distort_test_videos:
    """Split C's media, and the fakes made from them pasted back into their frames, distorted as
    whole videos (DeeperForensics-1.0, one kind and level), the faces found again and cut as the
    detectors were trained: the evaluation's whole-video conditions."""
    input:
        part=f"{RESULTS}/split/C.parquet",
        test_fakes=test_fake_manifests(),
    output:
        manifest=f"{RESULTS}/distorted_test/{{distortion}}/{{level}}/manifest.parquet",
        crops=directory(f"{RESULTS}/distorted_test/{{distortion}}/{{level}}/crops"),
    params:
        faces={key: config["faces"][key] for key in FACE_DETECTION_KEYS},
        crop=DETECTOR_INPUT,
        image_format=config["crop"]["image_format"],
        seed=config["seed"],
        device=config["device"],
        code=script_code("distort_test_videos.py"),
    threads: 1
    resources:
        gpu=GPU_PER_JOB,
    log:
        f"{LOGS}/distort_test_videos/{{distortion}}_{{level}}.log",
    benchmark:
        f"{BENCHMARKS}/distort_test_videos/{{distortion}}_{{level}}.tsv"
    conda:
        "../envs/torch.yaml"
    script:
        "../workflow_scripts/distort_test_videos.py"
