rule crop_faces:
    """Square face crops at the configured size: margin-enlarged around the detected boxes, or
    the image's centre for pre-aligned datasets (`crop.mode: center`, StarGAN's preprocessing)."""
    input:
        detections=rules.detect_faces.output.manifest,
        frame_dir=rules.extract_frames.output.frames,
    output:
        manifest=f"{RESULTS}/crops/{{shard}}.parquet",
        crops=directory(f"{RESULTS}/crops/{{shard}}"),
    params:
        mode=config["crop"]["mode"],
        # each mode's own setting only, so editing the other's reruns nothing
        margin=config["crop"]["margin"] if config["crop"]["mode"] == "mtcnn" else None,
        center_size=config["crop"]["center_size"] if config["crop"]["mode"] == "center" else None,
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
