"""The ``report`` sub-command: evaluate a saved classifier and write an HTML/Markdown
report with figures and tables."""

from __future__ import annotations

import argparse

from .flags import int_in
from .shared import POSITIVE, add_model_options


def add_report(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "report",
        help="write an HTML/Markdown evaluation report with figures",
        description="Evaluate MODEL on DATA and write into --output a self-contained "
        "report.html, report.md, the confusion matrix, training curves and a gallery of the "
        "most confidently wrong images as PNG files, per_class.csv, predictions.csv and "
        "report.json. DATA is a dataset root (split with the default options), a folder "
        "written by 'clothingclf prepare --output', or a CSV file with columns path and "
        'label. Needs matplotlib: pip install "clothingclf[plot]".',
    )
    p.add_argument("model", metavar="MODEL", help="model file written by train or save()")
    p.add_argument("data", metavar="DATA", help="dataset root, prepared folder, or CSV file")
    p.add_argument("-o", "--output", metavar="DIR", required=True, help="report folder")
    p.add_argument(
        "--split", choices=("test", "val", "train", "all"), default="test", help="(test)"
    )
    p.add_argument(
        "--mistakes", type=int_in(0), default=16, metavar="N", help="images in the gallery (16)"
    )
    p.add_argument("--title", help="page title (Evaluation report)")
    p.add_argument(
        "--force", action="store_true", help="replace files of the report's names not made by it"
    )
    p.add_argument("--batch-size", type=POSITIVE, help="images per forward pass")
    add_model_options(p)
    p.set_defaults(func=_run_report)


def _run_report(args: argparse.Namespace) -> int:
    import warnings

    from ..classifier import ClothingClassifier
    from ..report import write_report

    clf = ClothingClassifier.load(args.model, device=args.device)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # small classes; the split is still used
        files = write_report(
            clf,
            args.data,
            args.output,
            split=args.split,
            max_mistakes=args.mistakes,
            title=args.title,
            batch_size=args.batch_size,
            force=args.force,
        )
    e = files.evaluation
    print(
        f"{e.n_samples} images: accuracy {e.accuracy:.4f}, balanced accuracy "
        f"{e.balanced_accuracy:.4f}, macro F1 {e.macro_f1:.4f}, {len(files.mistakes)} wrong"
    )
    written = [files.html, files.markdown, *files.figures.values(), *files.tables.values()]
    print(f"Wrote {', '.join(p.name for p in written)}, report.json to {files.output_dir}")
    return 0
