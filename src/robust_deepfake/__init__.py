"""robust_deepfake: the logic of a Snakemake pipeline for deepfake detection under data poisoning.

One module per pipeline stage (ingest, frames, detect, crop, split, ...), each usable without
Snakemake; `manifest` defines the Parquet record every stage reads and extends.
"""

__version__ = "0.1.0"
