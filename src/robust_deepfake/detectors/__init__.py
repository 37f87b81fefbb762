"""The deepfake detectors: the network that wraps any timm model or a family of this pipeline
(`network`, `registry.DETECTOR_FAMILIES`), the spectrum detector (`spectrum`), their training
augmentations and adversarial training losses, and the metrics they are scored with (`scoring`)."""
