"""The task: what the model is asked and how its answer is judged, the same in training and eval.

- prompt.py      THE prompt (system + user template, thinking flag)
- reward.py      THE verifiable reward (standard library only: VERL loads it by path)
- extractors.py  other people's answer checkers, scored beside ours
- datasets.py    THE list of datasets; gsm8k.py reads GSM8K's format, paper_data.py builds the paper's mix
- prepare.py     `gsm8k-rl prepare`: a dataset -> VERL's RL parquet
- reward_cli.py  `gsm8k-rl reward`: score one answer from the shell
"""
