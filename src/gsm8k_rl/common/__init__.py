"""Small jobs every layer shares, each written once: files (atomic writes, JSONL that a kill may
have torn, YAML as dicts), generation (stop tokens, the batched left-padded generate of eval and of
the hf rollout) and the environment a run or an eval records."""
