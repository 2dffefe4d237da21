"""Generation: the Appendix A prompt, batched greedy decoding, and answer log-probabilities for training."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from harness.types import Passage

# Lawton et al., Appendix A: the prompt every strategy uses, with the top-k passages concatenated.
PROMPT = """You are a helpful general knowledge expert. Answer the following question using the relevant context. Use as few words as possible.

### Context:
{context}

### Question:
{question}

### Answer:
"""


def first_line(text: str) -> str:
    stripped = text.strip()
    return stripped.splitlines()[0].strip() if stripped else ""


class Generator:
    """A Hugging Face causal LM with its tokenizer, the prompt, and the two operations strategies need."""

    def __init__(self, model, tokenizer, sharded: bool = False):
        self.model = model
        self.tokenizer = tokenizer
        # weights sharded over the processes (FSDP, harness.distributed): every process must call the model
        # as often as the others, and `generate` keeps stepping until every process's batch is done
        self.sharded = sharded
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.chat = bool(getattr(tokenizer, "chat_template", None))

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def format_prompt(self, question: str, passages: Sequence[Passage]) -> str:
        context = "\n\n".join(p.as_text() for p in passages)
        text = PROMPT.format(context=context, question=question)
        if self.chat:
            messages = [{"role": "user", "content": text}]
            return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return text

    def _encode(self, texts: Sequence[str]) -> list[list[int]]:
        # A chat prompt already holds its special tokens as text; a plain one gets the tokenizer's own.
        return self.tokenizer(list(texts), add_special_tokens=not self.chat)["input_ids"]

    @torch.no_grad()
    def generate(self, prompts: Sequence[str], max_new_tokens: int = 24, batch_size: int = 8) -> list[str]:
        """Greedy answers, batched with left padding; the first line of each, stripped."""
        was_training = self.model.training
        self.model.eval()
        answers: list[str] = []
        try:
            for start in range(0, len(prompts), batch_size):
                ids = self._encode(prompts[start : start + batch_size])
                input_ids, attention = _pad(ids, self.tokenizer.pad_token_id, left=True)
                out = self.model.generate(
                    input_ids=input_ids.to(self.device), attention_mask=attention.to(self.device),
                    max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=self.tokenizer.pad_token_id,
                    synced_gpus=self.sharded,
                )
                new_tokens = out[:, input_ids.shape[1] :]
                answers += [first_line(t) for t in self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]
        finally:
            self.model.train(was_training)
        return answers

    def batch_size_for(self, prompts: Sequence[str], max_new_tokens: int, cpu_default: int = 8) -> int:
        """Generation batch size: `cpu_default` on the CPU; on a GPU as many of the longest prompt (plus its
        answer) as fit in half the free memory, by `harness.gpu.sequence_bytes`' estimate."""
        if self.device.type != "cuda" or not prompts:
            return cpu_default
        from harness.runtime.gpu import DecoderShape, generation_batch_size, probe, sequence_bytes

        longest = max(len(ids) for ids in self._encode(prompts)) + max_new_tokens
        dtype_bytes = 2 if probe(str(self.device)).bf16 else 4
        per_sequence = sequence_bytes(DecoderShape.from_config(self.model.config), longest, dtype_bytes)
        free, _ = torch.cuda.mem_get_info(self.device)
        return generation_batch_size(free, per_sequence)

    def answer_token_ids(self, answer: str) -> list[int]:
        """The answer's tokens followed by EOS: the model learns to stop after the answer."""
        return self.tokenizer(answer, add_special_tokens=False)["input_ids"] + [self.tokenizer.eos_token_id]

    def answer_log_probs(self, prompts: Sequence[str], answers: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-token log p(y_t | prompt, y_<t) for each (prompt, answer) pair, with grad.

        Returns (log_probs, mask), both (B, T) with T the longest answer (+EOS) and mask 1 on real answer
        tokens. Prompt tokens never enter the loss. Rows are left-padded so every answer ends in the last
        column; logits are computed only for the last T+1 positions, not the whole (B, L, V) block.
        """
        prompt_ids = self._encode(prompts)
        answer_ids = [self.answer_token_ids(a) for a in answers]
        input_ids, attention = _pad([p + a for p, a in zip(prompt_ids, answer_ids)], self.tokenizer.pad_token_id, left=True)
        input_ids, attention = input_ids.to(self.device), attention.to(self.device)
        position_ids = (attention.cumsum(-1) - 1).clamp(min=0)  # positions count real tokens only
        T = max(len(a) for a in answer_ids)
        logits = self.model(
            input_ids=input_ids, attention_mask=attention, position_ids=position_ids, logits_to_keep=T + 1
        ).logits[:, -(T + 1) :]  # (B, T+1, V): logits at positions L-T-1 .. L-1
        lengths = torch.tensor([len(a) for a in answer_ids], device=logits.device)  # (B,)
        t = torch.arange(T, device=logits.device)
        mask = (t[None, :] < lengths[:, None]).float()  # (B, T)
        # answer token t of row b sits at column L - A_b + t; the logit predicting it is one column earlier,
        # i.e. index T - A_b + t in the kept block; its target is the token at kept index T - A_b + t + 1.
        idx = (T - lengths[:, None] + t[None, :]).clamp(min=0, max=T - 1)  # (B, T)
        targets = input_ids[:, -T:].gather(1, idx)  # (B, T)
        log_probs = F.log_softmax(logits.float(), dim=-1)  # (B, T+1, V)
        token_lp = log_probs.gather(1, idx[..., None].expand(-1, -1, log_probs.shape[-1])).gather(-1, targets[..., None])
        return token_lp.squeeze(-1) * mask, mask


def _pad(sequences: Sequence[Sequence[int]], pad_id: int, left: bool) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(sequences), width), dtype=torch.long)
    for i, seq in enumerate(sequences):
        if left:
            ids[i, width - len(seq) :] = torch.tensor(seq)
            attention[i, width - len(seq) :] = 1
        else:
            ids[i, : len(seq)] = torch.tensor(seq)
            attention[i, : len(seq)] = 1
    return ids, attention
