"""Analyse your own ``nn.Module``: FLOPs, receptive field, and (optionally) train it.

Any module that maps images ``N × 3 × H × W`` to feature vectors ``N × F`` can be a
clothingclf backbone. This script defines a small CNN, counts its multiply-accumulates
operation by operation, computes the receptive field of every layer (traced, then checked
from gradients), compares it with ResNet-18 at the same input size, and, given a dataset
folder, trains it, evaluates it, and saves and reloads it::

    python examples/analyse_custom_module.py --input-size 224
    python examples/analyse_custom_module.py --data path/to/clothing-dataset --epochs 10 \\
        --output small_cnn.safetensors
"""

from __future__ import annotations

import argparse
import tempfile
import warnings
from pathlib import Path

import torch
from torch import nn

import clothingclf
from clothingclf import analysis


class SmallCNN(nn.Module):
    """Four conv-BN-ReLU blocks, each halving the resolution, then global average pooling."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for i in range(4):
            out = width * 2**i
            layers += [
                nn.Conv2d(channels, out, 3, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(out),
                nn.ReLU(inplace=True),
            ]
            channels = out
        self.body = nn.Sequential(*layers)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features: torch.Tensor = self.pool(self.body(x))
        return features


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input-size", type=int, default=224, help="input side (224)")
    parser.add_argument("--width", type=int, default=32, help="channels of the first block")
    parser.add_argument("--per-layer", action="store_true", help="print the per-layer tables")
    parser.add_argument("--data", help="dataset folder to train on (optional)")
    parser.add_argument("--epochs", type=int, default=10, help="training epochs (10)")
    parser.add_argument("--image-size", type=int, default=128, help="training side (128)")
    parser.add_argument("--output", help="model file to save the trained network to")
    return parser.parse_args(argv)


def analyse(model: nn.Module, size: int, *, per_layer: bool) -> None:
    shape = (3, size, size)
    flops = analysis.count_flops(model, input_size=shape)
    field = analysis.receptive_field(model, input_size=shape)
    print(flops.summary())
    print(f"  receptive field:   {field.describe()}")
    measured = analysis.empirical_receptive_field(model, input_size=shape)
    print(
        f"  from gradients:    {measured.size[0]} x {measured.size[1]} px (layer {measured.layer})"
    )
    if per_layer:
        print()
        print(flops.table())
        print()
        print(field.table())
    reference = analysis.count_flops("resnet18", input_size=shape)
    print(
        f"\nResNet-18 at {size} px: {reference.total_macs / 1e6:,.1f} M MACs, "
        f"{reference.params / 1e6:.1f} M parameters; this network needs "
        f"{flops.total_macs / reference.total_macs:.1%} of its MACs."
    )


def train(args: argparse.Namespace) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # small classes
        splits = clothingclf.prepare_dataset(args.data)
    clf = clothingclf.ClothingClassifier(
        backbone=SmallCNN(args.width),
        weights=None,
        recipe="fast",
        image_size=args.image_size,
        extra_views=(),  # one network: its receptive field is the topic
        epochs=args.epochs,
        optimizer="adamw",
        lr=0.003,
        progress=False,
        num_workers=0,
    ).fit(splits)
    report = clf.evaluate(splits.test)
    print(
        f"\ntrained SmallCNN: test accuracy {report.accuracy:.1%}, macro F1 {report.macro_f1:.3f}"
    )
    output = Path(args.output or Path(tempfile.mkdtemp()) / "small_cnn.safetensors")
    clf.save(output)
    # A model of your own module is loaded with an instance of the same class.
    again = clothingclf.ClothingClassifier.load(output, backbone=SmallCNN(args.width))
    same = again.predict(splits.test) == clf.predict(splits.test)
    print(f"saved {output}; reloaded predictions identical: {same}")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    analyse(SmallCNN(args.width).eval(), args.input_size, per_layer=args.per_layer)
    if args.data:
        train(args)


if __name__ == "__main__":
    main()
