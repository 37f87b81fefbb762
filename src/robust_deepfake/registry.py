"""The names of the pipeline's algorithm families, in one module that imports nothing heavy: the
workflow (rules/common.smk) and the config check read it while Snakemake parses the Snakefile,
before any job runs, so a wrong name stops the run at once.

Detector backbones: any timm model by name, plus the families below, which are not timm models.
"""

from __future__ import annotations

# backbone name -> what it is (models/detector.py builds each)
DETECTOR_FAMILIES = {
    "spectrum": "Durall et al. 2019: azimuthally averaged log power spectrum of the grey face, linear head",
}
