"""Cache entries are never trusted half-written: a build killed mid-way leaves nothing a reader uses, a
truncated file is found before use, and a damaged entry is rebuilt with a line saying so."""

import json
import signal
import subprocess
import sys
import textwrap
from types import SimpleNamespace

import pytest

from harness import errors
from harness.runtime import cache as cache_entries
from harness.store.folder import RunFolder
from harness.training.context import FitContext
from tests.conftest import sigterm_inside_a_c_extension_import


def write_entry(folder, payload=b"x" * 4096):
    (folder / "data.bin").write_bytes(payload)
    (folder / "meta.json").write_text(json.dumps({"n": len(payload)}))


def test_a_published_entry_is_verified_and_a_truncated_one_rebuilt(tmp_path, capsys):
    target = cache_entries.publish(tmp_path / "entry", write_entry)
    assert cache_entries.problem(target) is None
    assert cache_entries.load_verified(target, lambda f: (f / "meta.json").read_text(), "entry") == '{"n": 4096}'
    (target / "data.bin").write_bytes(b"x" * 100)  # what a full disk or a copy cut short leaves
    assert "data.bin is 100 bytes, 4096 when written" in cache_entries.problem(target)
    assert cache_entries.load_verified(target, lambda f: f, "test entry") is None
    assert not target.exists()  # set aside: the caller builds it again
    assert "cache: test entry at" in capsys.readouterr().err


def test_a_signal_that_comes_out_as_a_load_error_keeps_the_entry_and_ends_the_run(tmp_path, capsys):
    """SIGTERM while a cache entry loads, turned into another error on the way (a C extension's import makes it
    `ImportError: initialization failed`): the sound entry is not set aside as damaged, the interrupt goes on."""
    target = cache_entries.publish(tmp_path / "entry", write_entry)
    with pytest.raises(errors.Terminated) as raised:
        cache_entries.load_verified(target, sigterm_inside_a_c_extension_import, "entry")
    errors.forget_interrupts()
    assert isinstance(raised.value.__cause__, ImportError)
    assert cache_entries.problem(target) is None and "damaged" not in capsys.readouterr().err

    def load_failing(folder):
        raise ImportError("initialization failed")

    assert cache_entries.load_verified(target, load_failing, "entry") is None  # no signal: a damaged entry's error
    assert not target.exists()  # set aside, to be rebuilt


def test_a_truncated_safetensors_file_is_found_without_a_manifest(tmp_path):
    """Entries from before manifests: the safetensors header says how long the data must be."""
    import torch
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(64, 64)}, str(tmp_path / "model.safetensors"))
    assert cache_entries.problem(tmp_path) is None
    data = (tmp_path / "model.safetensors").read_bytes()
    (tmp_path / "model.safetensors").write_bytes(data[: len(data) // 2])
    assert "truncated" in cache_entries.problem(tmp_path)


def test_an_interrupted_build_leaves_no_entry_and_no_temp_folder(tmp_path):
    def interrupted(folder):
        (folder / "data.bin").write_bytes(b"half")
        raise KeyboardInterrupt

    try:
        cache_entries.publish(tmp_path / "entry", interrupted)
    except KeyboardInterrupt:
        pass
    assert list(tmp_path.iterdir()) == []


def test_a_build_killed_mid_write_is_never_read(tmp_path):
    """SIGKILL while the entry is being written: the target never appears, the next build makes it whole."""
    script = textwrap.dedent(f"""
        import time
        from pathlib import Path
        from harness import cache_entries
        def slow(folder):
            (folder / "data.bin").write_bytes(b"x" * 1000)
            print("writing", flush=True)
            time.sleep(60)
        cache_entries.publish(Path({str(tmp_path / 'entry')!r}), slow)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "writing"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    leftovers = [p.name for p in tmp_path.iterdir()]
    assert leftovers and all(name.startswith(".tmp-") for name in leftovers)  # only the temp folder
    assert cache_entries.load_verified(tmp_path / "entry", lambda f: f, "entry") is None
    cache_entries.publish(tmp_path / "entry", write_entry)
    assert cache_entries.problem(tmp_path / "entry") is None


def test_an_artifact_interrupted_while_saving_is_not_registered(tmp_path):
    folder = RunFolder.create(tmp_path / "r1", {"strategy": "s"}, {"run_id": "r1"})
    ctx = SimpleNamespace(folder=folder, is_main_process=True)  # what save_artifact uses

    def interrupted(folder):
        (folder / "adapter_model.safetensors").write_bytes(b"half")
        raise KeyboardInterrupt

    try:
        FitContext.save_artifact(ctx, "adapter", interrupted)
    except KeyboardInterrupt:
        pass
    assert folder.artifacts() == {}
    assert not (tmp_path / "r1" / "artifacts" / "adapter").exists()
