rule crop_faces:
    """Face crops at the configured size: squares margin-enlarged around the detected boxes, the
    image's centre for pre-aligned datasets (`crop.mode: center`, StarGAN's preprocessing), or the
    whole frame (`crop.mode: whole`). The frames with a face are decoded again from the media."""
    input:
        detections=rules.detect_faces.output.manifest,
    output:
        manifest=f"{RESULTS}/crops/{{shard}}.parquet",
        crops=directory(f"{RESULTS}/crops/{{shard}}"),
    params:
        mode=DETECTOR_INPUT["mode"],
        margin=DETECTOR_INPUT["margin"],
        center_size=DETECTOR_INPUT["center_size"],
        size=DETECTOR_INPUT["size"],
        image_format=config["crop"]["image_format"],
        code=script_code("crop_faces.py"),
    threads: shard_threads
    log:
        f"{LOGS}/crop_faces/{{shard}}.log",
    benchmark:
        f"{BENCHMARKS}/crop_faces/{{shard}}.tsv"
    conda:
        "../envs/media.yaml"
    script:
        "../workflow_scripts/crop_faces.py"
