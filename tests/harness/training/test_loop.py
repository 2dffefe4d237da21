"""The RAG losses equal brute-force computations; the generator's answer log-probs mask the prompt."""

import math

import pytest
import torch

from harness.builtins.models.tiny import tiny_llama_dir
from harness.builtins.strategies.rag_sequence import rag_sequence_loss
from harness.builtins.strategies.rag_token import rag_token_loss
from harness.models.generation import Generator
from harness.models.loading import load_causal_lm
from harness.training.likelihoods import passage_answer_log_probs
from harness.types import Passage


@pytest.fixture(scope="module")
def generator():
    model, tokenizer = load_causal_lm(str(tiny_llama_dir()), "cpu")
    return Generator(model, tokenizer)


def brute_force_token_lp(generator, prompt: str, answer: str) -> list[float]:
    """log p(y_t | prompt, y_<t) from one unpadded forward pass over the full logits."""
    prompt_ids = generator._encode([prompt])[0]
    answer_ids = generator.answer_token_ids(answer)
    ids = torch.tensor([prompt_ids + answer_ids])
    with torch.no_grad():
        logp = torch.log_softmax(generator.model(input_ids=ids).logits[0].float(), -1)
    return [logp[len(prompt_ids) + t - 1, tok].item() for t, tok in enumerate(answer_ids)]


def test_answer_log_probs_match_unpadded_forward(generator):
    prompts = ["short prompt", "a much longer prompt with many more words in it than the first"]
    answers = ["Paris", "the Mediterranean Sea"]
    with torch.no_grad():
        token_lp, mask = generator.answer_log_probs(prompts, answers)
    for b in range(2):
        expected = brute_force_token_lp(generator, prompts[b], answers[b])
        assert mask[b].sum().item() == len(expected)
        got = token_lp[b, : len(expected)].tolist()
        assert got == pytest.approx(expected, abs=1e-4)


def test_only_answer_positions_are_scored(generator):
    """A longer prompt adds no scored positions; the scored positions are exactly answer + EOS."""
    with torch.no_grad():
        lp_short, m_short = generator.answer_log_probs(["Q: x"], ["Rome"])
        lp_long, m_long = generator.answer_log_probs(["Q: x " + "padding words " * 20], ["Rome"])
    n = len(generator.answer_token_ids("Rome"))
    assert m_short.sum() == m_long.sum() == n
    assert not torch.allclose(lp_short, lp_long)  # the prompt conditions the answer


@pytest.mark.parametrize("k", [1, 2, 4])
def test_rag_losses_equal_brute_force(generator, k):
    torch.manual_seed(k)
    questions = ["What is the capital of France?", "Who wrote Hamlet?"]
    answers = ["Paris", "William Shakespeare"]
    passages = [[Passage(f"p{b}{i}", f"T{i}", f"passage {i} for {b}") for i in range(k)] for b in range(2)]
    log_pz = torch.log_softmax(torch.randn(2, k), -1)
    with torch.no_grad():
        token_lp, mask = passage_answer_log_probs(generator, questions, passages, answers)
    seq_expected, tok_expected = [], []
    for b in range(2):
        per_passage = [brute_force_token_lp(generator, generator.format_prompt(questions[b], [z]), answers[b])
                       for z in passages[b]]
        pz = log_pz[b].exp().tolist()
        seq_expected.append(-math.log(sum(pz[i] * math.exp(sum(per_passage[i])) for i in range(k))))
        T = len(per_passage[0])
        tok_expected.append(-sum(math.log(sum(pz[i] * math.exp(per_passage[i][t]) for i in range(k))) for t in range(T)))
    assert rag_sequence_loss(log_pz, token_lp, mask).item() == pytest.approx(sum(seq_expected) / 2, rel=1e-4)
    assert rag_token_loss(log_pz, token_lp, mask).item() == pytest.approx(sum(tok_expected) / 2, rel=1e-4)
