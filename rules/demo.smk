rule render_demo:
    """Render the embedded demo dataset (layout demo or demo_celeba) from face images that
    installed packages ship."""
    output:
        directory(DEMO_ROOT),
    params:
        layout=config["dataset"]["layout"],
        # only the demo: keys this layout's renderer takes, so another key reruns nothing
        settings={key: config["demo"][key] for key in RENDERED.settings} if RENDERED else {},
        seed=config["seed"],
        code=script_code("render_demo.py"),
    # identities render in parallel, the same files whatever the count; every later job waits on
    # this one, so it takes the cores there are
    threads: all_cores
    log:
        f"{LOGS}/render_demo.log",
    benchmark:
        f"{BENCHMARKS}/render_demo.tsv"
    conda:
        "../envs/media.yaml"
    script:
        "../workflow_scripts/render_demo.py"
