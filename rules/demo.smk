rule render_demo:
    """Render the embedded demo dataset from face images that installed packages ship."""
    output:
        directory(DEMO_ROOT),
    params:
        identities=config["demo"]["identities"],
        videos_per_identity=config["demo"]["videos_per_identity"],
        frames_per_video=config["demo"]["frames_per_video"],
        fps=config["demo"]["fps"],
        size=config["demo"]["size"],
        images_per_identity=config["demo"]["images_per_identity"],
        seed=config["seed"],
        code=script_code("render_demo.py"),
    log:
        f"{LOGS}/render_demo.log",
    benchmark:
        f"{BENCHMARKS}/render_demo.tsv"
    conda:
        "../envs/media.yaml"
    script:
        "../workflow_scripts/render_demo.py"
