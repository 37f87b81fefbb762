rule detect_faces:
    """MTCNN boxes, 5 landmarks and confidences for every extracted frame of a shard."""
    input:
        frames=rules.extract_frames.output.manifest,
        frame_dir=rules.extract_frames.output.frames,
    output:
        manifest=f"{RESULTS}/detect/{{shard}}.parquet",
    params:
        device=config["device"],
        batch_size=config["faces"]["batch_size"],
        min_face_size=config["faces"]["min_face_size"],
        thresholds=config["faces"]["thresholds"],
        scale_factor=config["faces"]["scale_factor"],
        max_side=config["faces"]["max_side"],
        min_confidence=config["faces"]["min_confidence"],
        keep=config["faces"]["keep"],
        code=script_code("detect_faces.py"),
    threads: 1
    resources:
        gpu=GPU_PER_JOB,
    log:
        f"{LOGS}/detect_faces/{{shard}}.log",
    benchmark:
        f"{BENCHMARKS}/detect_faces/{{shard}}.tsv"
    conda:
        "../envs/torch.yaml"
    script:
        "../workflow_scripts/detect_faces.py"
