rule crop_faces:
    """Square, margin-enlarged face crops at the configured size, from the detected boxes."""
    input:
        detections=rules.detect_faces.output.manifest,
        frame_dir=rules.extract_frames.output.frames,
    output:
        manifest=f"{RESULTS}/crops/{{shard}}.parquet",
        crops=directory(f"{RESULTS}/crops/{{shard}}"),
    params:
        margin=config["crop"]["margin"],
        size=config["crop"]["size"],
        image_format=config["crop"]["image_format"],
        code=script_code("crop_faces.py"),
    log:
        f"{LOGS}/crop_faces/{{shard}}.log",
    benchmark:
        f"{BENCHMARKS}/crop_faces/{{shard}}.tsv"
    conda:
        "../envs/media.yaml"
    script:
        "../workflow_scripts/crop_faces.py"
