"""`tiny-embedder` and `tiny-llama`: small random models for tests and quick checks (seconds, not minutes).

Both are built deterministically (seed 0) on first use and cached as ordinary model folders, so they load
through the same code path as any `hf:` folder. Their answers are noise; their gradients are real.
"""

from __future__ import annotations

import shutil
import string
from pathlib import Path

from harness import EmbedderSpec, GeneratorSpec, cache_dir, hookimpl
from harness.models import load_causal_lm, load_sentence_transformer
from harness.runtime import cache as cache_entries

VERSION = "v1"
_TRAINING_TEXT = (
    "You are a helpful general knowledge expert. Answer the following question using the relevant context. "
    "Use as few words as possible. ### Context: ### Question: ### Answer: what who when where which how many "
    "the of and in is was to a for on by with from as at capital city country river born year built team "
    + string.ascii_letters + string.digits + string.punctuation
)


def _build_atomically(target: Path, build) -> Path:
    """The model folder at `target`, (re)built with `build(folder)` when missing or damaged."""
    if cache_entries.load_verified(target, lambda folder: folder, "tiny model") is None:
        import torch

        with torch.random.fork_rng():  # the build seeds its own RNG: a run's RNG is the same, cached model or not
            cache_entries.publish(target, build)
    return target


def build_tiny_llama(folder: Path) -> None:
    """A 2-layer, width-64 Llama with a byte-level BPE tokenizer trained in memory."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<pad>", "<s>", "</s>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    bpe.train_from_iterator([_TRAINING_TEXT] * 4, trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<s>", eos_token="</s>", pad_token="<pad>")
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=2048, bos_token_id=1, eos_token_id=2, pad_token_id=0,
        tie_word_embeddings=True,
    )
    LlamaForCausalLM(config).save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)


def build_tiny_embedder(folder: Path) -> None:
    """A 2-layer, width-32 BERT with a character WordPiece vocabulary, mean pooling and normalization."""
    import torch
    from sentence_transformers import SentenceTransformer, models
    from transformers import BertConfig, BertModel, BertTokenizerFast

    chars = string.ascii_lowercase + string.digits + string.punctuation
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars, *(f"##{c}" for c in chars)]
    raw = folder / "raw"
    raw.mkdir(parents=True)
    (raw / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizerFast(vocab_file=str(raw / "vocab.txt"), do_lower_case=True).save_pretrained(raw)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=512)
    BertModel(config).save_pretrained(raw, safe_serialization=True)
    word = models.Transformer(str(raw), max_seq_length=256)
    model = SentenceTransformer(modules=[word, models.Pooling(32, "mean"), models.Normalize()], device="cpu")
    model.save(str(folder))
    shutil.rmtree(raw)


def tiny_llama_dir() -> Path:
    return _build_atomically(cache_dir() / "models" / f"tiny-llama-{VERSION}", build_tiny_llama)


def tiny_embedder_dir() -> Path:
    return _build_atomically(cache_dir() / "models" / f"tiny-embedder-{VERSION}", build_tiny_embedder)


@hookimpl
def register_models(register):
    register(EmbedderSpec("tiny-embedder", lambda o: load_sentence_transformer(str(tiny_embedder_dir()), o.device),
                          "random 2-layer BERT (tests)"))
    register(GeneratorSpec("tiny-llama", lambda o: load_causal_lm(str(tiny_llama_dir()), o.device, o.quantize),
                           "random 2-layer Llama (tests)"))
