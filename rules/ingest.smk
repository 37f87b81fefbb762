checkpoint ingest:
    """List the dataset into the media manifest, one row per video or image, with its shard.
    A checkpoint: the shard rules' params read the manifest it writes."""
    input:
        ingest_input,
    output:
        media=f"{RESULTS}/media.parquet",
    params:
        dataset=DATASET,
        layout=INGEST_LAYOUT,
        root=dataset_root(),
        options=options_from_config(INGEST_LAYOUT, config["dataset"]),
        max_per_label=config["dataset"]["max_per_label"],
        shards=config["shards"],
        media_per_shard=config["media_per_shard"],
        seed=config["seed"],
        listing=dataset_listing,
        code=script_code("ingest.py"),
    log:
        f"{LOGS}/ingest.log",
    conda:
        "../envs/media.yaml"
    script:
        "../workflow_scripts/ingest.py"
