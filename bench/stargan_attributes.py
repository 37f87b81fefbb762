"""Did StarGAN learn the attributes? An independent attribute classifier's verdict on its edits.

A ResNet-18 (timm, from scratch) is trained to read the five attributes off the real faces of
split A; it then reads StarGAN's translations of split B and C's faces (people StarGAN never saw)
towards each of StarGAN's own targets (`generators.stargan.target_labels`). The share of
translations whose target attribute it reads as asked is the figure; its accuracy on B and C's
real faces says how far to trust it. Printed and written to bench/out/<name>.tsv.

    .venv/bin/python bench/stargan_attributes.py results/stargan_demo --name stargan_attributes
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
import timm
import torch
import torch.nn.functional as F

from robust_deepfake.generators.loading import AttributeFaces
from robust_deepfake.generators.stargan import load_stargan, target_labels
from robust_deepfake.manifest import read_manifest

OUT = Path(__file__).resolve().parent / "out"


def stacked(faces: pd.DataFrame, attributes: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    data = AttributeFaces(faces[faces["face_path"].notna()], attributes)
    images, labels = zip(*(data[i] for i in range(len(data))))
    return torch.stack(images), torch.stack(labels)


def train_classifier(images: torch.Tensor, labels: torch.Tensor, epochs: int, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = timm.create_model("resnet18", num_classes=labels.shape[1], pretrained=False)
    optimizer = torch.optim.AdamW(model.parameters(), 1e-3)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for batch in torch.randperm(len(images), generator=generator).split(32):
            x = images[batch]
            x = torch.where(torch.rand(len(x), 1, 1, 1, generator=generator) < 0.5, x.flip(3), x)
            loss = F.binary_cross_entropy_with_logits(model(x), labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path, help="a StarGAN run's results folder, e.g. results/stargan_demo")
    parser.add_argument("--attributes", nargs="+",
                        default=["Black_Hair", "Blond_Hair", "Brown_Hair", "Eyeglasses", "Pale_Skin"])
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--name", default="stargan_attributes")
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    split = {p: read_manifest(args.results / "split" / f"{p}.parquet") for p in "ABC"}
    train_x, train_y = stacked(split["A"], args.attributes)
    test_x, test_y = stacked(pd.concat([split["B"], split["C"]], ignore_index=True), args.attributes)
    classifier = train_classifier(train_x, train_y, args.epochs, seed=0)
    model = load_stargan(args.results / "generators" / "stargan" / "main" / "model.pt", args.attributes,
                         args.image_size)
    rows = []
    with torch.no_grad():
        real = (classifier(test_x) > 0).float()
        for index, target in enumerate(args.attributes):
            wanted = target_labels(test_y, args.attributes, target)
            read = (classifier(model.generator(test_x, wanted)) > 0).float()
            rows.append({"target": target, "faces": len(test_x),
                         "translations_read_as_asked": float((read[:, index] == wanted[:, index]).float().mean()),
                         "classifier_accuracy_on_real": float((real[:, index] == test_y[:, index]).float().mean())})
    table = pd.DataFrame(rows)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"mean over targets: {table['translations_read_as_asked'].mean():.3f}")
    OUT.mkdir(exist_ok=True)
    table.to_csv(OUT / f"{args.name}.tsv", sep="\t", index=False)


if __name__ == "__main__":
    main()
