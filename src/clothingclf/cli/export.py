"""The ``export`` sub-command: write a saved classifier as ONNX or TorchScript, checked
against the PyTorch model."""

from __future__ import annotations

import argparse

from .flags import int_in


def add_export(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "export",
        help="export a saved classifier to ONNX or TorchScript",
        description="Write MODEL as an ONNX or TorchScript file that maps normalised float32 "
        "images N x 3 x S x S to class probabilities N x C, and FILE.json beside it with the "
        "class names and the preprocessing. The export is checked against the PyTorch model "
        'on batches of 1 and 3 images. ONNX needs pip install "clothingclf[onnx]".',
    )
    p.add_argument("model", metavar="MODEL", help="model file written by train or save()")
    p.add_argument("--format", choices=("onnx", "torchscript"), default="onnx", help="(onnx)")
    p.add_argument("-o", "--output", metavar="FILE", required=True, help="file to write")
    p.add_argument("--opset", type=int_in(7), help="ONNX opset (17)")
    p.add_argument("--no-verify", action="store_true", help="skip the parity check")
    p.set_defaults(func=_run_export)


def _run_export(args: argparse.Namespace) -> int:
    from ..classifier import ClothingClassifier

    clf = ClothingClassifier.load(args.model, device="cpu")
    exported = clf.export(
        args.output, format=args.format, opset=args.opset, verify=not args.no_verify
    )
    meta = exported.metadata
    check = (
        "not checked"
        if exported.max_abs_diff is None
        else f"matches PyTorch to {exported.max_abs_diff:.1e}"
    )
    inputs = meta.get("inputs") or [meta]
    shapes = ", ".join(
        f"{item['input_name']} float32 batch x 3 x {item['input_shape'][2]} x "
        f"{item['input_shape'][3]}"
        for item in inputs
    )
    print(
        f"Wrote {exported.path} ({exported.format}: input{'s' if len(inputs) > 1 else ''} "
        f"{shapes}, output probabilities of {len(meta['classes'])} classes; {check})"
    )
    print(f"Wrote {exported.metadata_path} (classes and preprocessing)")
    return 0
