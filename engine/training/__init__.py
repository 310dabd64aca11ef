"""Train: supervised fine-tuning with TRL (LoRA or full), watched by validation loss and ROUGE-L.

The worker (`worker`, `python -m engine train RUN_DIR`) trains from a run folder in its own
process and never opens the database, reporting through `callbacks`; `config` is the one
dataclass of settings (presets, pre-flight checks, the mapping to TRL's SFTConfig) and `data`
fits examples to max_length. The app side (`runs`) freezes a dataset version, queues the run and
registers the model it made; `sweeps` searches hyperparameters through the same queue.
Entry points: `python -m engine retrain|sweep` (`cli`), the Train page.
"""
