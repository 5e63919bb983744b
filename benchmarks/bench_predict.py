"""Prediction throughput: every engine and precision of ``predict``, against onnxruntime on
the library's own export fed by a plain Pillow loop.

The baseline is what a throughput-minded user did before: ``clf.export("model.onnx")``,
then onnxruntime fed by ``examples/onnx_without_torch.py``'s Pillow preprocessing, a batch
at a time in one thread. Against it, in the same run on the same photos:

* ``predict`` as it was (eager torch, float32, decoding in the calling thread:
  ``engine="torch", decode_threads=0``), the "today" of issue #21;
* ``predict`` with each engine (torch, onnxruntime, OpenVINO float32 and, where the CPU
  has native bfloat16, OpenVINO bfloat16), with and without decoding threads, and torch's
  bfloat16 autocast (timed on a few photos only); plain loops of OpenVINO on the same
  export (float32, and bfloat16 where native), so that ``auto`` is compared with the
  fastest plain loop;
* ``engine="auto"``, with the choice it makes on this machine;
* the networks alone on ready tensors (torch float32, onnxruntime): the bound that
  end-to-end photos/s approaches when decoding overlaps the network; beside them the
  graph compilers of torch that ``predict`` does not use, to show why: TorchScript traced,
  frozen and optimised for inference, and with ``--compiled`` ``torch.compile`` (inductor;
  minutes to build), each with its largest difference from eager float32.

Each is timed in alternating rounds (the median kept), and compared with eager float32
probabilities (the reference): the largest difference and the top-1 agreement. Single-photo
latency (path in, label out) is reported for ``predict`` and for the onnxruntime loop.

    python benchmarks/bench_predict.py --data ../shared/data/clothing-dataset --files 128

The model is the bundled ``clothing18-lite0`` (one EfficientNet-Lite0) unless
``--pretrained clothing18-lite0-pair`` (the 0.2 model: two networks, mirror pass) or
``--model FILE`` names another. The ``top-1`` column is the share of photos whose label is
the eager float32 one, ``acc pts`` the change of top-1 accuracy against eager float32 in
points (run it on the whole test split, ``--files 465``, for each reduced precision's cost).
Without ``--data`` a synthetic set of photo-sized JPEGs
(512 x 512) is written first.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "onnx_without_torch.py"


def _onnx_loop(
    model: Path, batch_size: int, engine: str = "onnxruntime", precision: str = "f32"
) -> Callable[[list[str]], np.ndarray]:
    """onnxruntime (or OpenVINO, in ``precision``) on the export, fed by the example's
    Pillow preprocessing, a batch at a time in one thread."""
    spec = importlib.util.spec_from_file_location("onnx_without_torch", EXAMPLE)
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    import onnxruntime as ort

    meta = json.loads(Path(str(model) + ".json").read_text(encoding="utf-8"))
    inputs = meta.get("inputs") or [meta]
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    if engine == "openvino":
        import openvino as ov
        import torch

        compiled = ov.Core().compile_model(
            str(model),
            "CPU",
            {
                "INFERENCE_PRECISION_HINT": precision,
                "PERFORMANCE_HINT": "LATENCY",
                "INFERENCE_NUM_THREADS": torch.get_num_threads(),
            },
        )
        request = compiled.create_infer_request()

        class _Session:
            def run(self, _: Any, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
                return [np.array(request.infer(feed)[compiled.output(0)])]

        session = _Session()

    def run(paths: list[str]) -> np.ndarray:
        out = []
        for start in range(0, len(paths), batch_size):
            photos = [example.open_photo(p, inputs) for p in paths[start : start + batch_size]]
            feed = {
                item["input_name"]: np.stack([example.preprocess(photo, item) for photo in photos])
                for item in inputs
            }
            out.append(session.run([meta["output_name"]], feed)[0])
        return np.concatenate(out).astype(np.float64)

    return run


def _frozen(models: list[Any], inputs: list[Any]) -> Callable[[list[Any]], Any]:
    """The networks traced, frozen and optimised for inference by TorchScript, run as
    predict's torch engine runs them (channels-last, float32, softmax averaged)."""
    import copy

    import torch

    from clothingclf import engines

    with torch.inference_mode(False), torch.no_grad():
        frozen = [
            torch.jit.optimize_for_inference(
                torch.jit.freeze(
                    torch.jit.trace(
                        copy.deepcopy(model).eval(),
                        batch.contiguous(memory_format=torch.channels_last),
                    )
                )
            )
            for model, batch in zip(models, inputs, strict=True)
        ]
    return engines.TorchRunner(frozen, torch.device("cpu"), bf16=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="dataset root (images.csv)")
    parser.add_argument("--files", type=int, default=128, help="photos to label")
    parser.add_argument("--model", type=Path, default=None, help="default: the bundled model")
    parser.add_argument(
        "--pretrained", default=None, help="a bundled model's name (clothing18-lite0-pair)"
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3, help="alternating timed rounds")
    parser.add_argument("--repeats", type=int, default=10, help="single-photo latency samples")
    parser.add_argument("--bf16-files", type=int, default=8, help="photos for bfloat16 rows")
    parser.add_argument(
        "--compiled", action="store_true", help="also time torch.compile (minutes to build)"
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "bench_predict.json")
    parser.add_argument(
        "--probabilities",
        type=Path,
        default=None,
        help="also write every run's probabilities to this .npz (compare two versions with "
        "benchmarks/compare_probabilities.py)",
    )
    args = parser.parse_args(argv)

    import torch

    from clothingclf import ClothingClassifier, engines, open_image, prepare_dataset, quantization
    from clothingclf.data.synthetic import make_synthetic
    from clothingclf.training.precision import _cpu_has_native_bf16

    root = args.data or make_synthetic(
        Path(tempfile.mkdtemp()) / "synthetic", n_per_class=args.files // 6 + 2, image_size=512
    )
    splits = prepare_dataset(root, verify_images=False)
    table = splits.test if len(splits.test) >= args.files else splits.train
    sample = table.sample(min(args.files, len(table)), random_state=0)
    paths = sample["path"].astype(str).tolist()
    clf = (
        ClothingClassifier.pretrained(args.pretrained, device="cpu")
        if args.model is None
        else ClothingClassifier.load(args.model, device="cpu")
    )
    predictor = clf.predictor()
    shapes = ", ".join(f"{p.input_shape[1]} x {p.input_shape[0]}" for _, p in clf.networks_)
    native_bf16 = _cpu_has_native_bf16()
    print(
        f"{len(paths)} photos, {len(clf.networks_)} network(s): {shapes} px, batch "
        f"{args.batch_size}, {torch.get_num_threads()} torch threads, "
        f"native bf16: {native_bf16}, tta: {predictor.tta}"
    )
    export_dir = Path(tempfile.mkdtemp())
    started = time.perf_counter()
    clf.export(export_dir / "model.onnx")
    export_seconds = time.perf_counter() - started
    onnx_loop = _onnx_loop(export_dir / "model.onnx", args.batch_size)

    def ours(**options: Any) -> Callable[[list[str]], np.ndarray]:
        return lambda items: clf.predict_proba(items, batch_size=args.batch_size, **options)

    candidates: dict[str, Callable[[list[str]], np.ndarray]] = {
        "onnxruntime on the export, Pillow loop (baseline)": onnx_loop,
        "predict as before: torch float32, no threads": ours(engine="torch", decode_threads=0),
        "predict: torch float32, decoding threads": ours(engine="torch"),
        "predict: onnxruntime, no threads": ours(engine="onnxruntime", decode_threads=0),
        "predict: onnxruntime, decoding threads": ours(engine="onnxruntime"),
    }
    openvino = engines.openvino_available()
    if openvino:
        candidates["OpenVINO float32 on the export, Pillow loop"] = _onnx_loop(
            export_dir / "model.onnx", args.batch_size, engine="openvino"
        )
        candidates["predict: openvino float32, decoding threads"] = ours(
            engine="openvino", precision="float32"
        )
        if engines.native_bfloat16():
            candidates["OpenVINO bfloat16 on the export, Pillow loop"] = _onnx_loop(
                export_dir / "model.onnx", args.batch_size, engine="openvino", precision="bf16"
            )
            candidates["predict: openvino bfloat16, decoding threads"] = ours(
                engine="openvino", precision="bfloat16"
            )
    candidates["predict: engine='auto'"] = ours()
    started = time.perf_counter()
    ours(engine="onnxruntime")(paths[:2])  # builds the graph once, timed apart
    build_seconds = time.perf_counter() - started
    int8_check = None
    if quantization.nncf_available():  # quantised on the val split, as check_precision does
        started = time.perf_counter()
        int8_check = clf.check_precision(splits.val, precision="int8")
        int8_seconds = time.perf_counter() - started
        candidates["predict: openvino int8, decoding threads"] = ours(
            engine="openvino", precision="int8"
        )
    started = time.perf_counter()
    auto = predictor.engine(images=len(paths))  # builds and times the compiled engines
    auto_seconds = time.perf_counter() - started
    for run in candidates.values():
        run(paths[:4])  # warm-up
    reference = clf.predict_proba(paths, engine="torch", decode_threads=0)
    times: dict[str, list[float]] = {name: [] for name in candidates}
    outputs: dict[str, np.ndarray] = {}
    for _ in range(args.rounds):
        for name, run in candidates.items():
            started = time.perf_counter()
            outputs[name] = run(paths)
            times[name].append(time.perf_counter() - started)
    few = paths[: args.bf16_files]
    bf16_name = f"predict: torch bfloat16 ({len(few)} photos{'' if native_bf16 else ', emulated'})"
    started = time.perf_counter()
    bf16_out = clf.predict_proba(few, engine="torch", precision="bfloat16")
    bf16_seconds = time.perf_counter() - started

    # The networks alone on tensors already decoded and normalised: the two engines of
    # predict, and the graph compilers of torch that predict does not use (timed to say why).
    photo = open_image(paths[0])
    inputs = [
        prep.eval_transform()(photo).unsqueeze(0).repeat(args.batch_size, 1, 1, 1)
        for _, prep in clf.networks_
    ]
    models = [model for model, _ in clf.networks_]
    eager = engines.TorchRunner(models, clf.device_, bf16=False)
    net_runs: dict[str, Callable[[list[torch.Tensor]], torch.Tensor]] = {
        "networks alone: torch float32": eager
    }
    compiled_kinds = [("onnxruntime", "float32")]
    if openvino:
        compiled_kinds.append(("openvino", "float32"))
        if engines.native_bfloat16():
            compiled_kinds.append(("openvino", "bfloat16"))
    if int8_check is not None:
        compiled_kinds.append(("openvino", "int8"))
    for engine, precision in compiled_kinds:
        net_runs[f"networks alone: {engine} {precision}"] = engines.runner(
            engines.EngineChoice(engine, precision, "bench"),  # type: ignore[arg-type]
            models,
            [p.input_shape for _, p in clf.networks_],
            clf.device_,
        )
    compile_seconds: dict[str, float] = {}
    started = time.perf_counter()
    net_runs["networks alone: torch frozen TorchScript"] = _frozen(models, inputs)
    compile_seconds["frozen TorchScript"] = time.perf_counter() - started
    if args.compiled:
        started = time.perf_counter()
        compiled = engines.TorchRunner(
            [torch.compile(model) for model in models], clf.device_, bf16=False
        )
        with torch.inference_mode():
            compiled(inputs)
        net_runs["networks alone: torch.compile (inductor)"] = compiled
        compile_seconds["torch.compile"] = time.perf_counter() - started
    net_rows = []
    with torch.inference_mode():
        expected = eager(inputs)
        for name, net in net_runs.items():
            diff = float((net(inputs) - expected).abs().max())
            samples = []
            for _ in range(max(args.rounds, 3)):
                started = time.perf_counter()
                net(inputs)
                samples.append(time.perf_counter() - started)
            net_rows.append((name, args.batch_size / statistics.median(samples), diff))

    def latency(fn: Callable[[str], Any]) -> float:
        samples = []
        for i in range(args.repeats):
            started = time.perf_counter()
            fn(paths[i % len(paths)])
            samples.append(time.perf_counter() - started)
        return statistics.median(samples)

    single = {
        "onnxruntime loop": latency(lambda p: onnx_loop([p])),
        f"predict(path), auto ({predictor.engine(images=1).engine})": latency(clf.predict),
    }

    baseline_name = next(iter(candidates))
    baseline = statistics.median(times[baseline_name])
    before = statistics.median(times["predict as before: torch float32, no threads"])
    rows = []
    known = [
        clf.classes_.index(label) if label in clf.classes_ else -1 for label in sample["label"]
    ]
    truth = np.array(known)
    reference_accuracy = float((reference.argmax(1) == truth).mean())
    print(
        f"\n{'run':<58}{'s':>7}{'photos/s':>10}{'vs ort':>8}{'vs before':>10}"
        f"{'max diff':>10}{'top-1':>7}{'acc pts':>8}"
    )
    for name in candidates:
        seconds = statistics.median(times[name])
        got = outputs[name]
        row = {
            "name": name,
            "seconds": seconds,
            "photos_per_second": len(paths) / seconds,
            "vs_onnx_loop": baseline / seconds,
            "vs_before": before / seconds,
            "max_abs_diff": float(np.abs(got - reference).max()),
            "top1_agreement": float((got.argmax(1) == reference.argmax(1)).mean()),
            "accuracy_change": float((got.argmax(1) == truth).mean()) - reference_accuracy,
        }
        rows.append(row)
        print(
            f"{name:<58}{seconds:>7.2f}{row['photos_per_second']:>10.1f}"
            f"{row['vs_onnx_loop']:>7.2f}x{row['vs_before']:>9.2f}x"
            f"{row['max_abs_diff']:>10.1e}{row['top1_agreement']:>7.3f}"
            f"{row['accuracy_change'] * 100:>+8.2f}"
        )
    if args.probabilities is not None:
        np.savez(args.probabilities, reference=reference, torch_bfloat16=bf16_out, **outputs)
    bf16_rate = len(few) / bf16_seconds
    bf16_diff = float(np.abs(bf16_out - reference[: len(few)]).max())
    bf16_top1 = float((bf16_out.argmax(1) == reference[: len(few)].argmax(1)).mean())
    print(
        f"{bf16_name:<58}{bf16_seconds:>7.2f}{bf16_rate:>10.1f}"
        f"{bf16_rate * baseline / len(paths):>7.2f}x{bf16_rate * before / len(paths):>9.2f}x"
        f"{bf16_diff:>10.1e}{bf16_top1:>7.3f}"
    )
    for name, rate, diff in net_rows:
        print(f"{name:<58}{'':>7}{rate:>10.1f}{'':>8}{'':>10}{diff:>10.1e}")
    print()
    for name, seconds in single.items():
        print(f"single photo, {name:<44}{seconds * 1000:>8.1f} ms")
    if openvino and not engines.native_bfloat16():
        print("predict: openvino bfloat16: not run, this CPU has no native bfloat16")
    if int8_check is not None:
        print(
            f"int8 quantised on the val split ({int8_check['photos']} photos) in "
            f"{int8_seconds:.1f} s: there, top-1 {int8_check['top1_change'] * 100:+.2f} points, "
            f"{int8_check['labels_changed']:.1%} of labels changed"
        )
    for name, check in clf.precision_checks_.items():
        allowed = engines.reduced_precision_allowed(check, name)
        print(
            f"recorded check of {name}: top-1 {check['top1_change'] * 100:+.2f} points on "
            f"{check['photos']} photos: auto {'may' if allowed else 'does not'} run it here"
        )
    print(
        f"export {export_seconds:.1f} s; predict's onnxruntime graph built in "
        f"{build_seconds:.1f} s (once per model and process); auto's first choice (builds "
        f"and timing) {auto_seconds:.1f} s; "
        + "; ".join(f"{name} built in {sec:.1f} s" for name, sec in compile_seconds.items())
    )
    fresh_one = engines.choose_engine(device=clf.device_, images=1)
    print(
        f"engine='auto' here, in a fresh process: {auto.engine} {auto.precision} for "
        f"{len(paths)} photos ({auto.reason}); {fresh_one.engine} for one photo "
        f"({fresh_one.reason}); the same engine for any call once its graph is built"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "photos": len(paths),
                "networks": [list(p.input_shape) for _, p in clf.networks_],
                "batch_size": args.batch_size,
                "threads": torch.get_num_threads(),
                "cpu_count": os.cpu_count(),
                "native_bf16": native_bf16,
                "reference_accuracy": reference_accuracy,
                "model": str(args.model or args.pretrained or "clothing18-lite0"),
                "load_average": os.getloadavg(),
                "rows": rows,
                "bf16": {"photos": len(few), "seconds": bf16_seconds, "max_abs_diff": bf16_diff},
                "networks_alone": {name: rate for name, rate, _ in net_rows},
                "networks_alone_max_abs_diff": {name: diff for name, _, diff in net_rows},
                "compile_seconds": compile_seconds,
                "single_ms": {k: v * 1000 for k, v in single.items()},
                "export_seconds": export_seconds,
                "graph_build_seconds": build_seconds,
                "auto_first_choice_seconds": auto_seconds,
                "auto": {"engine": auto.engine, "precision": auto.precision, "why": auto.reason},
                "precision_checks": clf.precision_checks_,
                "all_seconds": times,
            },
            indent=2,
        )
    )
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
