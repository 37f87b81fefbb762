rule extract_frames:
    """Decode the kept frames of each video of a shard (images pass through as one frame)."""
    input:
        media=ancient(media_manifest()),
    output:
        manifest=f"{RESULTS}/frames/{{shard}}.parquet",
        frames=directory(f"{RESULTS}/frames/{{shard}}"),
    params:
        shard=lambda wildcards: int(wildcards.shard),
        rows=shard_rows,
        mode=config["frames"]["mode"],
        per_video=config["frames"]["per_video"],
        stride=config["frames"]["stride"],
        max_per_video=config["frames"]["max_per_video"],
        image_format=config["frames"]["image_format"],
        code=script_code("extract_frames.py"),
    log:
        f"{LOGS}/extract_frames/{{shard}}.log",
    benchmark:
        f"{BENCHMARKS}/extract_frames/{{shard}}.tsv"
    conda:
        "../envs/media.yaml"
    script:
        "../workflow_scripts/extract_frames.py"
