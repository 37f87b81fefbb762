"""The adversarially trained generator: the defence of Ruiz et al. (*Disrupting Deepfakes*) that
fine-tunes a face generator on its own disrupted inputs, so that disrupted inputs stop breaking it.

Each fine-tuning step draws a batch as `train_faceswap` does (identities uniform, random warp),
disrupts the warped inputs with PGD against the model's CURRENT weights (the attacker's loss,
`disruption_loss(kind="mse")` summed over every target identity, gradients with respect to the
input only), and then updates the model to rebuild the clean target from the disrupted input (L1)
as well as from the clean input (the usual loss, so clean swaps do not degrade). The attack is
re-run against every new set of weights: a fixed set of adversarial examples would be learnt once
and then no longer be adversarial.

The perturbation is added after the warp, because the warped face is exactly what the model is
trained to read; at test time the attacker perturbs the unwarped crop, which the warp's
neighbourhood covers. Only the input's own decoder has a target (a swap has no ground truth), but
all decoders share the encoder, which is where the robustness has to come from: the attacker sums
over all decoders, and a code that no longer moves protects every one of them.

`disrupt` is the attack on its own, and `disruption_under_attack` measures a model the way the
poisoning stage does (fresh PGD, Ruiz et al.'s measures per image), so the original and the
fine-tuned model are compared on equal terms.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from robust_deepfake.attacks.linf import AttackResult, pgd
from robust_deepfake.attacks.disruption import disruption_loss, generator_outputs, image_measures
from robust_deepfake.generators.faceswap_ae import FaceSwapAutoencoder, FaceSwapGenerator, save_faceswap
from robust_deepfake.generators.faceswap_training import (identity_indices, random_warp_pair, reconstruction_loss,
                                                          sample_batch, start_training)

log = logging.getLogger(__name__)

# Not train_faceswap's "last.pt": pointed at a training directory by mistake, fine-tuning would
# otherwise resume the plain training's checkpoint as if it were its own (and, at its higher step
# count, do nothing).
CHECKPOINT_NAME = "adversarial_last.pt"


@contextmanager
def frozen_view(model: FaceSwapAutoencoder) -> Iterator[FaceSwapGenerator]:
    """The model as a `FaceSwapGenerator` (eval mode, weights frozen, so an attack differentiates
    with respect to the input only and leaves no `.grad` on the weights); on exit the model's
    training mode and each weight's `requires_grad` are restored, so training can go on."""
    training = model.training
    trainable = [p.requires_grad for p in model.parameters()]
    try:
        yield FaceSwapGenerator(model)
    finally:
        model.train(training)
        for parameter, flag in zip(model.parameters(), trainable):
            parameter.requires_grad_(flag)


def disrupt(model: FaceSwapAutoencoder, images: torch.Tensor, *, epsilon: float, steps: int, step_size: float,
            rng: torch.Generator) -> AttackResult:
    """PGD (random start from `rng`) maximising Ruiz et al.'s MSE(G(x_adv, c), G(x, c)) summed
    over every identity c, against the model's weights as they are now; returns the attack's result
    (the batch, within `epsilon` of `images` and inside [-1, 1], and the loss at every iterate)."""
    with frozen_view(model) as view:
        with torch.no_grad():
            clean_outputs = generator_outputs(view, images)
        return pgd(images, lambda x: disruption_loss(view, x, clean_outputs, "mse"), epsilon, steps, step_size,
                   rng=rng)


def disruption_under_attack(model: FaceSwapAutoencoder, images: torch.Tensor, *, epsilon: float = 0.05,
                            steps: int = 10, step_size: float = 0.01, seed: int = 0,
                            batch_size: int = 16) -> pd.DataFrame:
    """One row per image: a fresh white-box PGD attack against `model` and what it does, as the
    poisoning stage records it (`disruption.image_measures`: the perturbation's size and the
    distances between G(x_adv) and G(x) averaged over identities; `dist_l2` is the disruption MSE,
    `dist_prop` whether it exceeds 0.05). Batches keep memory bounded on large sets."""
    rng = torch.Generator().manual_seed(seed)
    tables = []
    for start in range(0, len(images), batch_size):
        clean = images[start:start + batch_size]
        x_adv = disrupt(model, clean, epsilon=epsilon, steps=steps, step_size=step_size, rng=rng).x_adv
        with frozen_view(model) as view, torch.no_grad():
            table = image_measures(clean, x_adv, generator_outputs(view, clean), generator_outputs(view, x_adv))
        tables.append(table.assign(image=table["image"] + start))
    return pd.concat(tables, ignore_index=True)


def _attack_rng(seed: int, step: int) -> torch.Generator:
    """The random start of step `step`'s attack, from its own RNG seeded by (seed, step): the
    batches then do not depend on whether the attack runs, so the control (adversarial_weight 0)
    sees the very same batches, and resuming needs no state beyond the batch RNG's."""
    return torch.Generator().manual_seed(int(np.random.SeedSequence([seed, step]).generate_state(1)[0]))


def finetune_against_disruption(model: FaceSwapAutoencoder, faces: Sequence[np.ndarray], identities: Sequence[str],
                                *, epsilon: float = 0.05, attack_steps: int = 3, step_size: float = 0.01,
                                adversarial_weight: float = 1.0, clean_weight: float = 1.0, steps: int = 300,
                                batch_size: int = 8, lr: float = 1e-4, seed: int = 0,
                                checkpoint_dir: str | Path | None = None, save_every: int = 50,
                                resume: bool = True, device: str | torch.device = "cpu",
                                ) -> tuple[FaceSwapAutoencoder, list[dict]]:
    """Adversarially fine-tune a trained face swap in place on RGB uint8 crops (`faces`, e.g.
    `FaceCropFiles`) with one identity name per face, each one of the model's; return (model, history).

    The loss per step is `adversarial_weight` * L1(G(x_adv), target) + `clean_weight` *
    L1(G(x), target), with x the warped input and x_adv its PGD disruption (`attack_steps` steps of
    `step_size`, L-inf `epsilon`) against the current weights. Adam (beta1 0.5, as training) starts
    afresh: the trained model's file keeps no optimizer state. With `checkpoint_dir`, model,
    optimizer, step, random state and history go to `CHECKPOINT_NAME` there atomically every
    `save_every` steps and at the end (`save_faceswap`, so `load_faceswap` reads it), and a later
    call with the same starting model resumes (`resume`) with the step counter continuing; the
    directory must belong to this fine-tuning (e.g. named by its settings' fingerprint), since the
    checkpoint's weights replace the model's. `history` has one {"step", "loss", "clean_loss",
    "adversarial_loss", "attack_mse", "seconds"} entry per step: `attack_mse` is the attacker's
    disruption MSE at its last iterate, per image and identity, so its fall shows the defence
    working; seconds count from this call's start. With `adversarial_weight` 0 no attack is run
    (`attack_mse` is NaN): the same continued training without the defence, the control that
    separates what the adversarial objective buys from what more training does."""
    if len(faces) != len(identities):
        raise ValueError(f"{len(faces)} faces but {len(identities)} identity labels")
    present = {str(i) for i in identities}
    unknown = sorted(present - set(model.identities))
    if unknown:
        raise ValueError(f"faces of identities the face swap has no decoder for: {unknown[:10]}; "
                         f"it knows {list(model.identities)}")
    if steps < 0 or attack_steps < 1 or save_every < 1:
        raise ValueError(f"need steps >= 0, attack_steps >= 1 and save_every >= 1, got {steps}, {attack_steps}, "
                         f"{save_every}")
    names = [name for name in model.identities if name in present]
    per_identity = identity_indices(identities, names)
    decoder_of = torch.tensor([model.identities.index(name) for name in names])  # batch index -> model's
    device = torch.device(device)
    model.to(device).train().requires_grad_(True)
    path = Path(checkpoint_dir) / CHECKPOINT_NAME if checkpoint_dir is not None else None
    optimizer, rng, step, history = start_training(model, lr=lr, seed=seed, checkpoint=path, resume=resume,
                                                         device=device, what="adversarial fine-tuning")

    conditions = len(model.identities)
    started = time.perf_counter()
    progress = tqdm(range(step, steps), desc="adversarial faceswap_ae", unit="step", initial=step, total=steps)
    for step in progress:
        images, who = sample_batch(faces, per_identity, batch_size, model.image_size, rng)
        inputs, targets = random_warp_pair(images.to(device), rng)
        who = decoder_of[who].to(device)
        if adversarial_weight:
            attack = disrupt(model, inputs, epsilon=epsilon, steps=attack_steps, step_size=step_size,
                             rng=_attack_rng(seed, step))
            adversarial_loss = reconstruction_loss(model, attack.x_adv, targets, who)
            attack_mse = attack.losses[-1] / (len(images) * conditions)
        else:  # the control: the same continued training without the attack
            adversarial_loss, attack_mse = inputs.new_zeros(()), float("nan")
        clean_loss = reconstruction_loss(model, inputs, targets, who)
        loss = clean_weight * clean_loss + adversarial_weight * adversarial_loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        history.append({"step": step + 1, "loss": loss.item(), "clean_loss": clean_loss.item(),
                        "adversarial_loss": adversarial_loss.item(),
                        "attack_mse": attack_mse,
                        "seconds": time.perf_counter() - started})
        progress.set_postfix(l1=f"{clean_loss.item():.4f}", adv=f"{adversarial_loss.item():.4f}")
        if path is not None and ((step + 1) % save_every == 0 or step + 1 == steps):
            save_faceswap(model, path, training={"optimizer": optimizer.state_dict(), "step": step + 1,
                                                 "rng": rng.get_state(), "history": history})
    return model.eval(), history
