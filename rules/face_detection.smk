rule detect_faces:
    """Decode the sampled frames of each media of a shard and find the face in each: MTCNN boxes,
    5 landmarks and confidences, one manifest row per frame (no frame is written)."""
    input:
        media=ancient(media_manifest()),
    output:
        manifest=f"{RESULTS}/detect/{{shard}}.parquet",
    params:
        shard=lambda wildcards: int(wildcards.shard),
        rows=shard_rows,
        sampling=FRAME_SAMPLING,
        device=config["device"],
        batch_size=config["faces"]["batch_size"],
        min_face_size=config["faces"]["min_face_size"],
        skip_levels=config["faces"]["skip_levels"],
        thresholds=config["faces"]["thresholds"],
        scale_factor=config["faces"]["scale_factor"],
        max_side=config["faces"]["max_side"],
        min_confidence=config["faces"]["min_confidence"],
        keep=config["faces"]["keep"],
        code=script_code("detect_faces.py"),
    threads: shard_threads
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
