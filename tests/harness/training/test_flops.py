"""Training FLOPs: the formula on a tiny real model, the counter's hooks, the budget stop and schedule."""

import os

import pytest
import torch

from harness.store.db import Store
from harness.training.flops import FlopCounter, matmul_parameter_count, step_flops
from harness.training.loop import budget_horizon
from tests.conftest import run_cli, tiny_run_args


def test_matmul_parameters_leave_out_embedding_lookups_but_count_a_tied_head():
    emb = torch.nn.Embedding(100, 8)
    head = torch.nn.Linear(8, 100, bias=False)
    model = torch.nn.Sequential(emb, torch.nn.Linear(8, 8), head)
    assert matmul_parameter_count(model) == 8 * 8 + 8 + 100 * 8
    head.weight = emb.weight  # tied: one matmul weight, counted once
    assert matmul_parameter_count(model) == 8 * 8 + 8 + 100 * 8


def test_step_flops_is_2n_forward_plus_4n_backward_per_token():
    assert step_flops(1000, 10, backward=False) == 2 * 1000 * 10
    assert step_flops(1000, 10, backward=True) == 6 * 1000 * 10


def test_counter_charges_real_tokens_and_backward_only_with_grad():
    layer = torch.nn.Linear(4, 4)

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = layer

        def forward(self, input_ids, attention_mask):
            return self.inner(torch.ones(*input_ids.shape, 4))

    model, counter = Model(), FlopCounter()
    counter.watch(model)
    counter.watch(model.inner)  # nested watched module: not counted twice
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])  # 5 real tokens of 8
    model(input_ids=torch.zeros(2, 4, dtype=torch.long), attention_mask=mask)
    assert counter.take() == 6 * 20 * 5
    with torch.no_grad():
        model(input_ids=torch.zeros(2, 4, dtype=torch.long), attention_mask=mask)
    assert counter.take() == 2 * 20 * 5
    assert counter.total == 8 * 20 * 5 and counter.take() == 0


def test_budget_horizon_projects_the_steps_the_budget_pays_for():
    assert budget_horizon(100, steps_done=2, flops_spent_here=20.0, flops_left=35.0) == 5  # 10 per step
    assert budget_horizon(4, steps_done=2, flops_spent_here=20.0, flops_left=1e9) == 4  # never past the plan
    assert budget_horizon(100, steps_done=3, flops_spent_here=30.0, flops_left=-5.0) == 3


def step_log(run_id, name):
    rows = Store(os.environ["HARNESS_DB"]).query(
        "SELECT step, value FROM train_log WHERE run_id = ? AND name = ? ORDER BY step", [run_id, name])
    return [(r["step"], r["value"]) for r in rows]


def last_run():
    return Store(os.environ["HARNESS_DB"]).query("SELECT id FROM runs ORDER BY started_at DESC LIMIT 1")[0]["id"]


def test_ft_gen_logs_flops_per_step_and_in_total(tiny_data):
    assert run_cli(tiny_run_args(tiny_data, "ft_gen", "--eval-splits", "dev")) == 0
    run_id = last_run()
    per_step = [v for _, v in step_log(run_id, "train_flops")]
    assert len(per_step) == 2 and all(v > 0 for v in per_step)  # 6 train questions, batch 4
    total = Store(os.environ["HARNESS_DB"]).run_metrics(run_id)["cost"]["train_flops"]
    assert total >= sum(per_step) > 0


def test_max_train_flops_stops_early_and_decays_the_rate_to_the_budget(tiny_data, capsys):
    assert run_cli(tiny_run_args(tiny_data, "ft_gen", "--eval-splits", "dev", "--batch-size", "1")) == 0
    full = last_run()
    full_steps = step_log(full, "train_flops")
    budget = sum(v for _, v in full_steps[:2]) * 1.01  # a little over two steps
    assert run_cli(tiny_run_args(tiny_data, "ft_gen", "--eval-splits", "dev", "--batch-size", "1",
                                 "--max-train-flops", f"{budget:.6g}")) == 0
    capped = last_run()
    steps = step_log(capped, "train_flops")
    assert len(full_steps) == 6 and 2 <= len(steps) <= 3
    lrs = [v for _, v in step_log(capped, "lr")]
    assert lrs[-1] < lrs[0] / 2  # the schedule was re-aimed at the budget, not at 6 steps
    assert step_log(capped, "stopped_at_flop_budget")
    said = [line for line in capsys.readouterr().err.splitlines() if line.startswith("[budget]")]
    spent = Store(os.environ["HARNESS_DB"]).run_metrics(capped)["cost"]["train_flops"]  # the steps + setup retrieval
    assert spent >= sum(v for _, v in steps)
    assert said == [f"[budget] ft_gen: stopped after {len(steps)} of 6 steps, the training-FLOP budget is spent "
                    f"({spent:.3g} of --max-train-flops {budget:.3g})"]


def test_a_budget_spent_by_indp_generator_loop_leaves_its_embedder_loop_none_and_says_so(tiny_data, capsys):
    """indp runs its generator loop first: a budget under that loop's cost leaves the embedder untrained,
    which the run says in one line (README, "training FLOPs"). 1e8: above the setup's retrieval (~2e6 on the
    tiny models), below its setup plus one generator step (~1.4e8)."""
    assert run_cli(tiny_run_args(tiny_data, "indp", "--eval-splits", "dev", "--batch-size", "1",
                                 "--max-train-flops", "1e8")) == 0
    said = [line for line in capsys.readouterr().err.splitlines() if line.startswith("[budget]")]
    assert [line.split(":")[0] for line in said] == ["[budget] indp 1/2 (ft_gen)", "[budget] indp 2/2 (ft_embed)"]
    assert "stopped after 1 of 6 steps" in said[0] and "stopped after 0 of" in said[1]
    assert [name for name in ("embed_lr", "gen_lr") if step_log(last_run(), name)] == ["gen_lr"]


@pytest.mark.parametrize("value", ["0", "-1", "inf", "nan"])
def test_max_train_flops_must_be_a_finite_positive_number(tiny_data, value, capsys):
    assert run_cli(tiny_run_args(tiny_data, "ft_gen", "--max-train-flops", value)) == 2
    assert "--max-train-flops must be a finite number > 0" in capsys.readouterr().err


def test_a_watched_model_can_be_deep_copied_and_its_copy_counts_into_the_same_counter():
    import copy

    counter = FlopCounter()
    model = torch.nn.Linear(4, 4)
    counter.watch(model)
    twin = copy.deepcopy(model)  # what a snapshot tower or a posterior retriever does
    twin(torch.zeros(2, 4))
    assert counter.total > 0


def test_an_embedder_encode_is_charged_its_real_tokens():
    """sentence-transformers' `encode` hands the forward a BatchEncoding (a Mapping, not a dict): the corpus
    re-encodings and re-ranked candidates of the refresh policies go through it and must be charged."""
    from harness import plugins
    from harness.retrieval.index import encode_texts
    from harness.training.flops import step_flops
    from harness.training.loop import encoder_token_count
    from harness.types import ModelOptions

    plugins.load_plugins()
    tower = plugins.models()["embedder"].get("tiny-embedder").load(ModelOptions(device="cpu"))
    counter = FlopCounter()
    counter.watch(tower)
    texts = ["one passage about a river", "two", "a third passage, a little longer than the others"]
    encode_texts(tower, texts)
    tokens = encoder_token_count(tower, texts)
    assert tokens > 0 and counter.take() == step_flops(counter._watched[id(tower)], tokens, backward=False)
