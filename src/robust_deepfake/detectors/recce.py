"""RECCE (Cao et al., CVPR 2022: end-to-end reconstruction-classification learning), the detector
the diffusion-fakes robustness study evaluates with, as a detector family trained here.

Its idea: learn what *real* faces look like by reconstructing them, and let the reconstruction
error guide the classifier, since a forgery is what a model of real faces cannot reproduce.
Implemented here, on a timm encoder (`features_only`) of any name:

- a decoder (upsampling, conv, BatchNorm, ReLU per encoder stage) reconstructs the input from the
  deepest features; the reconstruction loss is the L1 error on the *real* faces only;
- reconstruction-guided attention: the per-pixel error |x - x_hat|, pooled to the deepest feature
  map, weights those features (f * (1 + sigmoid(conv(error)))) before pooling and the linear head;
- the metric loss on the pooled features (cosine distance d): mean d over real-real pairs minus
  mean d over real-fake pairs: reals gather, fakes are pushed away from them (fakes need not
  gather: forgeries differ);
- loss = BCE + reconstruction_weight * L1 + metric_weight * metric (0.1 and 0.1 in its
  configuration).

Left out of the original: the multi-scale graph reasoning between encoder and decoder features
(the attention above uses the deepest scale only), and its Xception encoder is any timm model here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def metric_term(embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """mean cosine distance of real-real pairs - mean cosine distance of real-fake pairs; a batch
    without two reals or without a real-fake pair contributes only the terms it has."""
    z = F.normalize(embeddings, dim=1)
    distance = 1 - z @ z.T
    real, fake = labels == 0, labels == 1
    pairs_rr = real[:, None] & real[None, :] & ~torch.eye(len(z), dtype=torch.bool, device=z.device)
    pairs_rf = real[:, None] & fake[None, :]
    loss = embeddings.sum() * 0.0
    if pairs_rr.any():
        loss = loss + distance[pairs_rr].mean()
    if pairs_rf.any():
        loss = loss - distance[pairs_rf].mean()
    return loss


def reconstruction_term(x: torch.Tensor, reconstruction: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """L1 reconstruction error on the real images of the batch (0 when it holds none)."""
    real = labels == 0
    if not real.any():
        return reconstruction.sum() * 0.0
    return F.l1_loss(reconstruction[real], x[real])


class RECCE(nn.Module):
    """Normalised images (N, 3, S, S) -> (N, 1) logit; `outputs` also gives the reconstruction and
    the pooled features that its training loss needs."""

    def __init__(self, encoder: str = "resnet18", decoder_channels: int = 64, reconstruction_weight: float = 0.1,
                 metric_weight: float = 0.1) -> None:
        super().__init__()
        import timm  # as in network.create_backbone: only the timm families pay for its import

        try:
            self.encoder = timm.create_model(encoder, pretrained=False, features_only=True)
        except RuntimeError as exc:
            raise ValueError(f"RECCE encoder {encoder!r}: {exc}") from None
        channels = self.encoder.feature_info.channels()
        self.stages = len(channels)
        layers, width = [], channels[-1]
        for _ in range(self.stages):
            layers += [nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                       nn.Conv2d(width, decoder_channels, 3, padding=1, bias=False), nn.BatchNorm2d(decoder_channels),
                       nn.ReLU(inplace=True)]
            width = decoder_channels
        self.decoder = nn.Sequential(*layers, nn.Conv2d(decoder_channels, 3, 3, padding=1))
        self.attention = nn.Conv2d(1, 1, 3, padding=1)
        self.head = nn.Linear(channels[-1], 1)
        self.reconstruction_weight, self.metric_weight = reconstruction_weight, metric_weight

    def outputs(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(logit (N, 1), reconstruction of x, pooled attended features)."""
        deepest = self.encoder(x)[-1]
        reconstruction = F.interpolate(self.decoder(deepest), size=x.shape[-2:], mode="bilinear", align_corners=False)
        error = (x - reconstruction).abs().mean(1, keepdim=True)
        weight = torch.sigmoid(self.attention(F.adaptive_avg_pool2d(error, deepest.shape[-2:])))
        pooled = (deepest * (1 + weight)).mean((-2, -1))
        return self.head(pooled), reconstruction, pooled

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.outputs(x)[0]

    def training_loss(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """BCE + reconstruction_weight * L1 on the reals + metric_weight * metric (module docstring)."""
        logit, reconstruction, pooled = self.outputs(x)
        loss = F.binary_cross_entropy_with_logits(logit.squeeze(1), labels)
        if self.reconstruction_weight:
            loss = loss + self.reconstruction_weight * reconstruction_term(x, reconstruction, labels)
        if self.metric_weight:
            loss = loss + self.metric_weight * metric_term(pooled, labels)
        return loss
