rule save_frames:
    """The sampled frames of each video of a shard as images (images pass through as one frame).
    Only with `frames.save_images: true`: no stage reads them (detection and cropping decode the
    frames themselves), so switching it on or off reruns nothing else."""
    input:
        media=ancient(media_manifest()),
    output:
        manifest=f"{RESULTS}/frames/{{shard}}.parquet",
        frames=directory(f"{RESULTS}/frames/{{shard}}"),
    params:
        shard=lambda wildcards: int(wildcards.shard),
        rows=shard_rows,
        sampling=FRAME_SAMPLING,
        image_format=config["frames"]["image_format"],
        code=script_code("save_frames.py"),
    threads: shard_threads
    log:
        f"{LOGS}/save_frames/{{shard}}.log",
    benchmark:
        f"{BENCHMARKS}/save_frames/{{shard}}.tsv"
    conda:
        "../envs/media.yaml"
    script:
        "../workflow_scripts/save_frames.py"
