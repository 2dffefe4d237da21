"""`siriwardhana2021`: Siriwardhana et al. (2021), "Fine-tune the entire RAG architecture (including DPR
retriever) for question-answering", Table 1: RAG (the question encoder and generator fine-tuned over a fixed
index) against rag-end2end (the passage encoder too, the knowledge base re-encoded and re-indexed while
training) on SQuAD, with SQuAD's own contexts, chunked to at most 100 words, as the knowledge base.
EM 28.12 against 40.02. The paper used DPR and BART-large; the nearest pipeline registered here is MPNet with
Mistral-7B-Instruct (a causal LM), so the comparison is between the two strategies, not of the models.
"""

from __future__ import annotations

from harness import hookimpl
from harness.study import ANY_PIPELINE, Claim, DatasetAxis, Pipeline, Protocol, Published, Scale, StrategyAxis, Study

CITATION = ("Siriwardhana, Weerasekera, Wen, Nanayakkara (2021). Fine-tune the entire RAG architecture "
            "(including DPR retriever) for question-answering.")

STUDY = Study(
    name="siriwardhana2021", title="RAG vs rag-end2end on SQuAD (Siriwardhana et al. 2021)", citation=CITATION,
    strategies=(StrategyAxis("rag_token", "RAG-Original"), StrategyAxis("rag_end2end", "RAG-end2end")),
    datasets=(DatasetAxis("squad", "squad", None, 78_839, 20_000,
                          get="huggingface-cli download --repo-type dataset rajpurkar/squad"),),
    pipelines=(Pipeline("MPNet + Mistral-7b (for DPR + BART-large)", "mpnet", "mistral-7b", 85.6e6, 7.11e9),),
    protocol=Protocol("dev", "test", {"k": 5, "epochs": 1, "index": "flat", "eval_splits": ["dev", "test"]}),
    seeds=(0,),
    published=(Published("rag_token", "squad", ANY_PIPELINE, "em", 28.12, "Table 1"),
               Published("rag_end2end", "squad", ANY_PIPELINE, "em", 40.02, "Table 1")),
    metric_notes={"em": "exact match on SQuAD's validation set (our test split), normalised as in SQuAD's script "
                        "(the same definition as ours)"},
    claims=(Claim("rag-end2end beats RAG in EM", "beats", ("rag_end2end", "rag_token")),),
    setting="SQuAD v1.1, knowledge base = its contexts in 100-word chunks (about 20,000 passages); hours not "
            "reported",
    scales={"smoke": Scale("SMOKE SCALE: tiny random models, synthbio in place of SQuAD, 4 questions per split: "
                           "it checks the plumbing; its numbers mean nothing",
                           pipelines=(Pipeline("tiny", "tiny-embedder", "tiny-llama", 1e5, 1e5),),
                           datasets=(DatasetAxis("squad", "synthbio:people=40,seed=2", None, 100, 80,
                                                 get="generated offline from a seed (synthbio)"),),
                           seeds=(0,), config={"limit": 4, "max_new_tokens": 4, "corpus_limit": 40})},
)


@hookimpl
def register_studies(register):
    register(STUDY)
