"""The expert ensemble of the image-track winner (DeepFakeDefenders): several timm experts with
two-class heads, trained jointly, whose prediction is the mean of their softmax "fake" probability.

Its training code was never published; its README names three losses, L_CE, L_KL and L_NCE, and
nothing more. What is implemented here, per expert k with two-class logits z_k and softmax p_k:

- CE: cross-entropy of z_k on the labels (each expert learns the task on its own);
- KL: KL(p_bar || p_k) towards the ensemble's mean prediction p_bar, held fixed (detached): the
  experts distil their consensus into one another, as in deep mutual learning (Zhang et al. 2018);
- NCE: the supervised contrastive loss (Khosla et al. 2020) on a projection of the expert's pooled
  features, L2-normalised, at temperature tau: faces of the same class pulled together, of the
  other class pushed apart; an anchor with no other face of its class in the batch is skipped.

loss = mean_k (CE_k + kl_weight KL_k + nce_weight NCE_k). The network returns the logit of the
mean fake probability, log(p / (1 - p)), so that the pipeline's detector interface (one logit,
sigmoid = P(fake)), its evasion attacks and `predict` treat it like any other detector.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# probabilities are clamped this far from 0 and 1 before the logit, so that a confident ensemble
# gives a large finite logit rather than inf (attacks backpropagate through it)
PROBABILITY_EPS = 1e-6


def cross_entropy_term(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean over experts of the two-class cross-entropy; logits (K, N, 2), labels (N,) in {0, 1}."""
    return torch.stack([F.cross_entropy(z, labels.long()) for z in logits]).mean()


def consensus_kl_term(logits: torch.Tensor) -> torch.Tensor:
    """Mean over experts of KL(p_bar || p_k), p_bar the experts' mean softmax taken as a fixed
    target: each expert is pulled towards the consensus, the consensus is not pulled to it."""
    log_p = F.log_softmax(logits, dim=-1)
    target = log_p.exp().mean(0).detach()
    return torch.stack([F.kl_div(lp, target, reduction="batchmean") for lp in log_p]).mean()


def supervised_nce_term(embeddings: torch.Tensor, labels: torch.Tensor, temperature: float) -> torch.Tensor:
    """Supervised contrastive loss of one batch of embeddings (N, D), normalised here: for each
    anchor, -mean over its positives p of log(exp(s_ip / t) / sum_{a != i} exp(s_ia / t)).
    Anchors with no positive in the batch are left out; 0 when none has one."""
    z = F.normalize(embeddings, dim=1)
    n = len(z)
    similarity = z @ z.T / temperature
    self_mask = torch.eye(n, dtype=torch.bool, device=z.device)
    log_prob = similarity - torch.logsumexp(similarity.masked_fill(self_mask, float("-inf")), dim=1, keepdim=True)
    positive = (labels[:, None] == labels[None, :]) & ~self_mask
    counts = positive.sum(1)
    has = counts > 0
    if not has.any():
        return embeddings.sum() * 0.0
    per_anchor = -(log_prob * positive).sum(1)[has] / counts[has]
    return per_anchor.mean()


class ExpertEnsemble(nn.Module):
    """Normalised images (N, 3, S, S) -> (N, 1) logit of the experts' mean fake probability."""

    def __init__(self, experts: list[str], embedding_dim: int = 128, kl_weight: float = 1.0,
                 nce_weight: float = 0.1, temperature: float = 0.1) -> None:
        super().__init__()
        import timm  # as in network.create_backbone: only the timm families pay for its import

        if len(experts) < 2:
            raise ValueError(f"an expert ensemble needs at least two experts, got {experts}")
        try:
            self.experts = nn.ModuleList(timm.create_model(name, pretrained=False, num_classes=2) for name in experts)
        except RuntimeError as exc:
            raise ValueError(f"ensemble experts {experts}: {exc}") from None
        self.projections = nn.ModuleList(nn.Linear(e.num_features, embedding_dim) for e in self.experts)
        self.kl_weight, self.nce_weight, self.temperature = kl_weight, nce_weight, temperature

    def expert_outputs(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Two-class logits (K, N, 2) and each expert's pooled features."""
        features = [e.forward_head(e.forward_features(x), pre_logits=True) for e in self.experts]
        logits = torch.stack([e.get_classifier()(f) for e, f in zip(self.experts, features)])
        return logits, features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits, _ = self.expert_outputs(x)
        p = F.softmax(logits, dim=-1)[..., 1].mean(0).clamp(PROBABILITY_EPS, 1 - PROBABILITY_EPS)
        return torch.logit(p).unsqueeze(1)

    def training_loss(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """CE + kl_weight KL + nce_weight NCE, each averaged over the experts (module docstring)."""
        logits, features = self.expert_outputs(x)
        loss = cross_entropy_term(logits, labels)
        if self.kl_weight:
            loss = loss + self.kl_weight * consensus_kl_term(logits)
        if self.nce_weight:
            nce = [supervised_nce_term(p(f), labels, self.temperature) for p, f in zip(self.projections, features)]
            loss = loss + self.nce_weight * torch.stack(nce).mean()
        return loss
