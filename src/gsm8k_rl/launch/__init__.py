"""Launch: configure, check, start and supervise a VERL run, and turn its checkpoint into a model.

- compose.py        the named configs (configs/, the PPO hyperparameters in configs/_recipe.yaml)
                    composed as VERL's Hydra would, every override checked
- layout.py         THE hardware layout rules: GPUs found, the model's size, the memory model, the
                    measured budgets -> VERL overrides
- kernels.py        the fast path: attention, packed micro-batches, fused log-probs, liger-kernel
- validate.py       the checks VERL lacks, then VERL's own validation
- plan.py           a run decided before anything starts (`Launch`); local_backend.py for no vLLM
- ray_env.py        what VERL's Ray actors must see in their environment
- run_dir.py        the run folder, metrics merge, checkpoint rollback
- supervisor.py     VERL as a child process; the run folder kept true on any exit
- train.py, doctor.py, export.py   the `gsm8k-rl train`, `doctor` and `export` commands
- smoke.py          the tiny random Qwen3 of smoke runs and CPU tests
"""
