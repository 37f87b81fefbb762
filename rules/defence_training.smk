rule train_ddpm:
    """The purifiers' diffusion model, trained on split A's clean real faces (or a pretrained
    diffusers folder). Resumable state lives beside the output, keyed by the settings."""
    input:
        faces=f"{RESULTS}/split/A.parquet",
    output:
        unet=directory(f"{RESULTS}/defences/ddpm/model/unet"),
        scheduler=directory(f"{RESULTS}/defences/ddpm/model/scheduler"),
        history=f"{RESULTS}/defences/ddpm/history.parquet",
    params:
        settings=config["ddpm"],
        calibration_identities=config["purify"]["calibration_identities"],
        seed=config["seed"],
        device=config["device"],
        code=script_code("train_ddpm.py"),
    threads: 1
    priority: PRIORITY["train_ddpm"]
    resources:
        gpu=GPU_PER_JOB,
    log:
        f"{LOGS}/train_ddpm.log",
    benchmark:
        f"{BENCHMARKS}/train_ddpm.tsv"
    conda:
        "../envs/torch.yaml"
    script:
        "../workflow_scripts/train_ddpm.py"


rule train_adv_generator:
    """The attacked generator fine-tuned on its own PGD-disrupted inputs (Ruiz et al.): the face
    swap or StarGAN (G+D), the latter also with a blur in front (adv_generator_blur)."""
    input:
        faces=f"{RESULTS}/split/A.parquet",
        generator=generator_model(config["poison"]["generator"]),
    output:
        model=f"{RESULTS}/defences/{{adversarial}}/model.pt",
        history=f"{RESULTS}/defences/{{adversarial}}/history.parquet",
    params:
        family=config["poison"]["generator"],
        generator_settings=config[config["poison"]["generator"]],
        settings=adversarial_training_settings,
        attack={"epsilon": config["poison"]["epsilon"], "step_size": config["poison"]["step_size"]},
        seed=config["seed"],
        device=config["device"],
        code=script_code("train_adv_generator.py"),
    threads: 1
    resources:
        gpu=GPU_PER_JOB,
    log:
        f"{LOGS}/train_adv_generator/{{adversarial}}.log",
    benchmark:
        f"{BENCHMARKS}/train_adv_generator/{{adversarial}}.tsv"
    conda:
        "../envs/torch.yaml"
    script:
        "../workflow_scripts/train_adv_generator.py"


rule train_magnet:
    """One of MagNet's denoising autoencoders (defensive_model_1 / _2), trained on split A's clean
    real faces with Gaussian noise (or a configured file of this pipeline)."""
    input:
        faces=f"{RESULTS}/split/A.parquet",
    output:
        model=f"{RESULTS}/defences/magnet/{{defence}}/model.pt",
        history=f"{RESULTS}/defences/magnet/{{defence}}/history.parquet",
    params:
        settings=lambda wildcards: {key: value for key, value in config["magnet"].items() if key != "checkpoint"},
        checkpoint=lambda wildcards: (config["magnet"]["checkpoint"] or {}).get(wildcards.defence),
        calibration_identities=config["purify"]["calibration_identities"],
        seed=config["seed"],
        device=config["device"],
        code=script_code("train_magnet.py"),
    threads: 1
    resources:
        gpu=GPU_PER_JOB,
    log:
        f"{LOGS}/train_magnet/{{defence}}.log",
    benchmark:
        f"{BENCHMARKS}/train_magnet/{{defence}}.tsv"
    conda:
        "../envs/torch.yaml"
    script:
        "../workflow_scripts/train_magnet.py"
