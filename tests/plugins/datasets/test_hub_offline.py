"""Without a local copy every benchmark goes to the hub; offline that is one clear line naming the dataset,
the hub id and how to pass --data-dir. Run in a fresh process so `datasets` reads HF_HUB_OFFLINE at import."""

import json
import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import json
    from harness import plugins
    from harness.errors import UserError
    from harness.types import DatasetOptions
    plugins.load_plugins()
    out = {}
    for name in ("squad", "hotpotqa", "hotpotqa_wiki", "popqa", "nq_open", "triviaqa", "triviaqa_rc"):
        try:
            plugins.datasets().get(name).load(DatasetOptions())
            out[name] = "loaded"
        except UserError as exc:
            out[name] = str(exc)
    from harness.data import load_wikipedia_corpus
    try:
        load_wikipedia_corpus("popqa", None)
    except UserError as exc:
        out["corpus"] = str(exc)
    print(json.dumps(out))
""")
HUB_IDS = {"squad": "rajpurkar/squad", "hotpotqa": "hotpotqa/hotpot_qa (distractor)",
           "hotpotqa_wiki": "hotpotqa/hotpot_qa (distractor)", "popqa": "akariasai/PopQA",
           "nq_open": "google-research-datasets/nq_open (nq_open)", "triviaqa": "mandarjoshi/trivia_qa (unfiltered.nocontext)",
           "triviaqa_rc": "mandarjoshi/trivia_qa (rc.nocontext)"}


def test_each_benchmark_offline_names_itself_the_hub_id_and_the_data_dir_way(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "HF_DATASETS_CACHE": str(tmp_path / "hf")}
    proc = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    messages = json.loads(proc.stdout.strip().splitlines()[-1])
    for name, hub_id in HUB_IDS.items():
        message = messages[name]
        assert message.startswith(f"dataset '{name}': could not load {hub_id} split "), message
        assert "HF_HUB_OFFLINE=1" in message and "--data-dir DIR" in message and "docs/datasets.md" in message
        assert "\n" not in message
    assert messages["corpus"].startswith("dataset 'popqa': could not load MedRAG/wikipedia split 'train'")
    assert "corpus.jsonl" in messages["corpus"]
