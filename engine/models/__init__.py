"""Models: the embedded default (SmolLM2-135M-Instruct, converted once from its GGUF file:
`embedded`), the registry of base and fine-tuned models and which one is in production
(`registry`), the versioned prompt template shared by drafting, training, evaluation and serving
(`prompts`), generation itself (`generation`: batched greedy or sampled summaries, streamed
chat), and drafting over a run folder (`drafting`: batched, resumable and cancellable, the core
of the drafting and evaluation workers). Used by every other stage; it starts no runs of its own.
"""
