"""Evaluation: greedy (or sampled) answers to every test problem, scored as training scores them.

- run.py       `gsm8k-rl eval`: the eval folder (samples.jsonl, batches.jsonl, eval_settings.json,
               metrics.json), resumable, refused when its settings changed
- backends.py  transformers (the batched generate the hf rollout shares) and vLLM's offline engine
- metrics.py   scoring by the reward and every extractor; accuracy, pass@k, maj@k
- stats.py     Wilson interval, exact McNemar, pass@k (scipy)
"""
