"""reuse_memory: glibc's malloc switched to keep freed memory while training, and back."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from typing import Any

import pytest
import torch

from clothingclf.settings import resolve_options
from clothingclf.training import TrainConfig, resolve_config, train_model
from clothingclf.training import memory as _memory
from clothingclf.training.memory import heap_reuse_available
from test_training import CPU, PREP, config, tiny_net

DEFAULTS = [("mallopt", -4, 65536), ("mallopt", -1, 128 * 1024), ("malloc_trim", 0)]
REUSE = [("mallopt", -4, 0), ("mallopt", -1, -1)]


class FakeLibc:
    """Records the calls that glibc would get."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def mallopt(self, param: int, value: int) -> int:
        self.calls.append(("mallopt", param, value))
        return 1

    def malloc_trim(self, pad: int) -> int:
        self.calls.append(("malloc_trim", pad))
        return 1


@pytest.fixture
def libc(monkeypatch: pytest.MonkeyPatch) -> FakeLibc:
    fake = FakeLibc()
    monkeypatch.setattr(_memory, "_glibc", lambda: fake)
    return fake


def test_switched_on_inside_and_restored_and_trimmed_after(libc: FakeLibc) -> None:
    with _memory.reused_memory(True) as active:
        assert active
        assert libc.calls == REUSE
        _memory.trim_kept_memory()
        assert libc.calls[-1] == ("malloc_trim", 0)
    assert libc.calls == [*REUSE, ("malloc_trim", 0), *DEFAULTS]
    _memory.trim_kept_memory()  # outside: glibc trims by itself
    assert len(libc.calls) == 6


def test_restored_when_the_block_raises(libc: FakeLibc) -> None:
    with pytest.raises(KeyboardInterrupt), _memory.reused_memory(True):
        raise KeyboardInterrupt
    assert libc.calls == REUSE + DEFAULTS
    assert _memory._active == 0


def test_nested_blocks_restore_once_at_the_outermost(libc: FakeLibc) -> None:
    with _memory.reused_memory(True):
        with _memory.reused_memory(True):
            pass
        assert libc.calls == REUSE  # the inner exit leaves the switch on
    assert libc.calls == REUSE + DEFAULTS


def test_disabled_or_not_glibc_changes_nothing(
    libc: FakeLibc, monkeypatch: pytest.MonkeyPatch
) -> None:
    with _memory.reused_memory(False) as active:
        assert not active
    assert libc.calls == []
    monkeypatch.setattr(_memory, "_glibc", lambda: None)
    with _memory.reused_memory(True) as active:
        assert not active
    _memory.return_freed_memory()  # no libc: garbage collection only
    assert not _memory.heap_reuse_available()


def test_real_glibc_round_trip() -> None:
    """On this machine's C library: allocations in and after the block work as usual."""
    with _memory.reused_memory(True) as active:
        assert active == _memory.heap_reuse_available()
        for _ in range(3):  # 64 MiB blocks: mmap-sized under glibc's defaults
            block = torch.ones(16 * 2**20)
            assert float(block.sum()) == 16 * 2**20
            del block
        _memory.trim_kept_memory()
    assert _memory._active == 0
    assert float(torch.ones(16 * 2**20).sum()) == 16 * 2**20


@pytest.mark.parametrize(
    ("setting", "available", "expected"),
    [("on", False, True), ("off", True, False), ("auto", True, True), ("auto", False, False)],
)
def test_the_setting_decides(
    setting: str, available: bool, expected: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from clothingclf.training import loop as training

    monkeypatch.setattr(training, "heap_reuse_available", lambda: available)
    cfg = config(reuse_memory=setting)
    assert training._reuses_memory(cfg.options, CPU) is expected
    if setting == "auto":  # on a GPU the activations are not in the process heap
        assert not training._reuses_memory(cfg.options, torch.device("cuda"))


@pytest.mark.parametrize("setting", ["on", "off"])
def test_training_switches_around_the_fit_and_gives_the_same_weights(
    setting: str, synthetic_splits: Any, libc: FakeLibc
) -> None:
    def train(cfg: Any) -> Any:
        return train_model(
            tiny_net(),
            synthetic_splits.train,
            synthetic_splits.val,
            class_weights=None,
            preprocessing=PREP,
            device=CPU,
            **cfg.kwargs,
        )

    result = train(config(epochs=2, reuse_memory=setting))
    if setting == "on":
        # on for the whole fit, trimmed before each epoch, restored and trimmed at the end
        assert libc.calls == [*REUSE, ("malloc_trim", 0), ("malloc_trim", 0), *DEFAULTS]
    else:
        assert libc.calls == []
    reference = train(config(epochs=2))
    for name, value in result.final_state.items():
        assert torch.equal(value, reference.final_state[name]), name


def test_memory_reuse_is_a_run_option_never_saved() -> None:
    assert resolve_options().reuse_memory == "auto"
    assert "reuse_memory" not in resolve_config("fast").to_dict()
    data = {**resolve_config("fast").to_dict(), "reuse_memory": "on"}  # a file of 0.2
    assert TrainConfig.from_dict(data) == resolve_config("fast")


_PAGE_FAULTS = textwrap.dedent(
    """
    import resource, sys
    import torch
    from clothingclf.training.memory import reused_memory

    def faults(enabled):
        with reused_memory(enabled):
            torch.empty(16 << 20).fill_(1.0)  # one step first: the heap has grown once
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            for _ in range(40):  # as training steps: the same 64 MiB, allocated and freed
                torch.empty(16 << 20).fill_(1.0)
            return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

    print(faults(sys.argv[1] == "on"))
    """
)


@pytest.mark.skipif(not heap_reuse_available(), reason="glibc only")
def test_with_the_real_glibc_reused_memory_saves_the_page_faults_of_each_step() -> None:
    # The feature itself, not just the calls: with reuse on, the later "steps" find their
    # pages mapped; with it off, glibc unmaps each 64 MiB block (above the largest threshold
    # it adapts to) and every step faults its 16384 pages in again. Fresh processes, so
    # glibc's adaptive threshold starts the same.
    def faults(setting: str) -> int:
        run = subprocess.run(
            [sys.executable, "-c", _PAGE_FAULTS, setting],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        return int(run.stdout.split()[-1])

    off, on = faults("off"), faults("on")
    assert off > 40 * 8000  # 40 steps of 64 MiB in 4 KiB pages: ~16384 faults each
    assert on < off / 4  # at most the first few steps' (seen: 1 to 4 of the 40)
