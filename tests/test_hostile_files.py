"""Hostile model files: small files that ask for large memory, well-formed values that
break validators, and random safetensors headers. Each one is refused with a
ModelFileError naming the file, and none costs memory out of proportion to its size."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from clothingclf import ClothingClassifier
from clothingclf.checkpoint import safe_load
from clothingclf.checkpoint.files import _serialize
from clothingclf.exceptions import ModelFileError
from test_property import SETTINGS, _model_file

Mutate = Callable[[dict[str, Any]], None]


@pytest.fixture(scope="module")
def valid(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _model_file(tmp_path_factory.mktemp("valid"))


def _variant(valid: Path, folder: Path, mutate: Mutate) -> Path:
    """A copy of the valid model file with ``mutate`` applied to its payload; the hash is
    right, so only the field checks can refuse it."""
    payload = safe_load(valid)
    mutate(payload)
    path = folder / "hostile.safetensors"
    path.write_bytes(_serialize(payload))
    return path


def _refused(path: Path, match: str) -> None:
    with pytest.raises(ModelFileError, match=match) as caught:
        ClothingClassifier.load(path, device="cpu")
    assert str(path) in str(caught.value)


def _set(*keys: str, value: Any) -> Mutate:
    def mutate(payload: dict[str, Any]) -> None:
        record = payload
        for key in keys[:-1]:
            record = record[key]
        record[keys[-1]] = value

    return mutate


def _large_network(payload: dict[str, Any]) -> None:
    """A 632-million-parameter network named by a file that holds SqueezeNet's weights."""
    payload["model"].update(name="vit_h_14", num_features=1280)
    payload["state_dict"]["head.weight"] = torch.zeros(3, 1280)


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (_set("model", "builder_kwargs", value={"num_classes": 400_000}), "builder_kwargs"),
        (_set("model", "builder_kwargs", value={"image_size": 10**6}), "builder_kwargs"),
        (_set("model", "name", value="vit_h_14"), "gives 1280 features but the model file"),
        (_large_network, "do not fit the architecture"),
        (_set("preprocessing", "mean", value=[10**400, 0.5, 0.5]), "mean"),
        (_set("history", value=[{"loss": 10**400}]), "history"),
        (_set("metrics", "best_val_accuracy", value=-(10**400)), "best_val_accuracy"),
    ],
    ids=[
        "builder-outputs",
        "builder-size",
        "large-network",
        "large-network-same-features",
        "huge-int-mean",
        "huge-int-row",
        "huge-int-metric",
    ],
)
def test_values_that_would_cost_memory_or_crash_a_validator_are_refused(
    valid: Path, tmp_path: Path, mutate: Mutate, match: str
) -> None:
    _refused(_variant(valid, tmp_path, mutate), match)


def test_a_tensor_type_that_clothingclf_never_writes_is_refused_by_name(
    valid: Path, tmp_path: Path
) -> None:
    def float8(payload: dict[str, Any]) -> None:
        state = payload["state_dict"]
        key = next(iter(state))
        state[key] = state[key].to(torch.float8_e4m3fn)

    _refused(_variant(valid, tmp_path, float8), "F8_E4M3")


def _raw(path: Path, header: bytes, rest: bytes = b"") -> Path:
    path.write_bytes(struct.pack("<Q", len(header)) + header + rest)
    return path


def test_a_header_without_the_hash_says_the_hash_is_missing(valid: Path, tmp_path: Path) -> None:
    data = valid.read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + length])
    del header["__metadata__"]["sha256"]
    text = json.dumps(header).encode()
    path = _raw(tmp_path / "nohash.safetensors", text, data[8 + length :])
    _refused(path, "lacks the SHA-256")


def test_json_nested_deeper_than_python_parses_is_damage(valid: Path, tmp_path: Path) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    _refused(
        _raw(tmp_path / "deep.safetensors", ('{"x": ' + deep + "}").encode()), "not valid JSON"
    )
    data = valid.read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + length])
    header["__metadata__"]["clothingclf"] = deep
    path = _raw(tmp_path / "deep2.safetensors", json.dumps(header).encode(), data[8 + length :])
    _refused(path, "header cannot be read")


def test_bytes_the_header_does_not_describe_are_refused_before_reading(
    valid: Path, tmp_path: Path
) -> None:
    sparse = tmp_path / "sparse.safetensors"
    sparse.write_bytes(valid.read_bytes())
    os.truncate(sparse, 20 * 2**30)  # 20 GB, sparse: no disk used
    _refused(sparse, "describes .* bytes but the file has 21474836480")
    cut = _raw(tmp_path / "cut.safetensors", valid.read_bytes()[8:-100])
    with pytest.raises(ModelFileError):
        ClothingClassifier.load(cut, device="cpu")


def _zip_bomb(path: Path, inflated: int) -> None:
    """A torch.save-like zip whose data.pkl inflates to ``inflated`` bytes (zeros)."""
    import zipfile

    block = b"\0" * 2**20
    with (
        zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive,
        archive.open("archive/data.pkl", "w", force_zip64=True) as member,
    ):
        for _ in range(inflated // len(block)):
            member.write(block)


def test_a_zip_that_inflates_to_gigabytes_is_named_without_inflating_it(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.pt"
    _zip_bomb(bomb, 64 * 2**20)
    assert bomb.stat().st_size < 2**20
    _refused(bomb, "torch.save archive")


# ------------------------------------------------------------------ random headers

_ENTRY = st.fixed_dictionaries(
    {
        "dtype": st.sampled_from(["F32", "F16", "BF16", "I64", "F8_E4M3", "X", 3]),
        "shape": st.lists(st.integers(-1, 5), max_size=3) | st.just("2"),
        "data_offsets": st.lists(st.integers(-2, 2**40), min_size=0, max_size=3),
    }
)


@settings(max_examples=150, **SETTINGS)  # type: ignore[arg-type]
@given(
    entries=st.dictionaries(st.text(max_size=4), _ENTRY | st.integers(), max_size=3),
    metadata=st.none()
    | st.dictionaries(
        st.sampled_from(["clothingclf", "sha256", "x"]), st.text(max_size=8), max_size=3
    ),
    length_delta=st.sampled_from([0, 0, 0, -1, 1, 2**40, -(2**20)]),
    data=st.binary(max_size=64),
)
def test_the_reader_on_random_headers_gives_a_model_file_error(
    entries: dict[str, Any], metadata: dict[str, str] | None, length_delta: int, data: bytes
) -> None:
    header: dict[str, Any] = dict(entries)
    if metadata is not None:
        header["__metadata__"] = metadata
    text = json.dumps(header).encode()
    length = max(0, len(text) + length_delta)
    folder = Path(os.environ.get("TMPDIR", "/tmp"))
    path = folder / f"random-header-{os.getpid()}.safetensors"
    try:
        path.write_bytes(struct.pack("<Q", min(length, 2**64 - 1)) + text + data)
        with pytest.raises(ModelFileError, match="random-header"):
            safe_load(path)
    finally:
        path.unlink(missing_ok=True)


# ------------------------------------------------------------------ memory

_MEMORY_SCRIPT = textwrap.dedent(
    """
    import resource, sys
    from pathlib import Path
    from clothingclf import ClothingClassifier
    from clothingclf.exceptions import ModelFileError

    def peak_mb():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    paths = [Path(p) for p in sys.argv[2:]]
    ClothingClassifier.load(sys.argv[1], device="cpu")  # warm: every import made
    base = peak_mb()
    for path in paths:
        try:
            ClothingClassifier.load(path, device="cpu")
            print(path.name, "LOADED")
        except ModelFileError:
            print(path.name, round(peak_mb() - base))
    """
)


def test_hostile_small_files_cost_bounded_memory(valid: Path, tmp_path: Path) -> None:
    """Each of these files is under 8 MB (or sparse) and asked for 1 to 20 GB before; the
    peak memory of loading all of them stays within 200 MB of a valid load's."""
    cases = {
        "outputs": _set("model", "builder_kwargs", value={"num_classes": 400_000}),
        "network": _large_network,
    }
    paths = []
    for name, mutate in cases.items():
        folder = tmp_path / name
        folder.mkdir()
        paths.append(_variant(valid, folder, mutate).rename(tmp_path / f"{name}.safetensors"))
    _zip_bomb(tmp_path / "bomb.pt", 2**30)
    paths.append(tmp_path / "bomb.pt")
    sparse = tmp_path / "sparse.safetensors"
    sparse.write_bytes(valid.read_bytes())
    os.truncate(sparse, 20 * 2**30)
    paths.append(sparse)
    deep = "[" * 100_000 + "]" * 100_000
    paths.append(_raw(tmp_path / "deep.safetensors", ('{"x": ' + deep + "}").encode()))
    assert all(p.stat().st_blocks * 512 < 8 * 2**20 for p in paths)
    done = subprocess.run(
        [sys.executable, "-c", _MEMORY_SCRIPT, str(valid), *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    grown = dict(line.split() for line in done.stdout.splitlines())
    assert len(grown) == len(paths) and "LOADED" not in grown.values(), grown
    assert max(int(mb) for mb in grown.values()) < 200, grown


def _number_leaves(value: Any, where: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """The place of every int or float in a payload (tensors excluded), one history row."""
    if isinstance(value, dict):
        items = list(value.items())
    elif isinstance(value, list):
        items = list(enumerate(value[:1]))
    else:
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        return [where] if number else []
    return [leaf for key, item in items for leaf in _number_leaves(item, (*where, key))]


def test_every_number_of_a_model_file_may_be_huge_or_non_finite(
    valid: Path, tmp_path: Path
) -> None:
    """Each number of the file in turn replaced by an int of 400 digits, then by NaN: the
    model loads (a value the model does not use) or the load is a ModelFileError, never
    OverflowError or ValueError from a conversion."""
    payload = safe_load(valid)
    leaves = [leaf for leaf in _number_leaves(payload) if leaf[0] != "state_dict"]
    assert len(leaves) > 20
    for leaf in leaves:
        for value in (10**400, float("nan")):
            path = _variant(valid, tmp_path, _set(*leaf, value=value))
            try:
                ClothingClassifier.load(path, device="cpu")
            except ModelFileError as error:
                assert str(path) in str(error), leaf


def test_a_header_number_of_5000_digits_is_damage(tmp_path: Path) -> None:
    header = '{"w": {"dtype": "F32", "shape": [' + "9" * 5000 + '], "data_offsets": [0, 4]}}'
    _refused(_raw(tmp_path / "digits.safetensors", header.encode(), b"\0" * 4), "not valid JSON")


def test_a_network_whose_builder_reads_values_still_loads(tmp_path: Path) -> None:
    """RegNet's builder computes widths from tensor values, which the meta device cannot
    give: the shape check before building is skipped, the file still loads."""
    clf = ClothingClassifier.load(_model_file(tmp_path, "regnet_y_400mf"), device="cpu")
    assert clf.classes_ == ["Cap", "Hat", "Shoes"]
