rule split:
    """Identity-disjoint, label-stratified A / B / C parts of the face crops (all shards)."""
    input:
        crops=lambda wildcards: shard_outputs(f"{RESULTS}/crops/{{shard}}.parquet"),
    output:
        parts=expand(f"{RESULTS}/split/{{part}}.parquet", part=["A", "B", "C"]),
        summary=f"{RESULTS}/split/summary.tsv",
    params:
        fractions=config["split"]["fractions"],
        use_official_test=config["split"]["use_official_test"],
        official_overlap=config["split"]["official_overlap"],
        frames_per_video=config["split"]["frames_per_video"],
        seed=config["seed"],
        code=script_code("split.py"),
    log:
        f"{LOGS}/split.log",
    conda:
        "../envs/media.yaml"
    script:
        "../workflow_scripts/split.py"
