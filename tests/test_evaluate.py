"""`gsm8k-rl eval` end to end on CPU: a tiny random Qwen3 carrying the REAL Qwen3 tokenizer and chat
template, real GSM8K test problems, the transformers backend, the real reward. Accuracy of a random
model is meaningless (0); what is tested is the plumbing: prompt, decoding, scoring, files, resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gsm8k_rl import UserError
from gsm8k_rl.cli import main
from gsm8k_rl.common.generation import stop_token_ids
from gsm8k_rl.evaluation.backends import TransformersBackend
from gsm8k_rl.evaluation.run import BATCHES, METRICS, SAMPLES, SETTINGS, read_samples

SAMPLE_FIELDS = {
    "index", "question", "gold", "output", "extracted", "score", "rule", "extractor_scores",
    "n_prompt_tokens", "n_output_tokens", "finish_reason", "scored_with",
}
METRIC_FIELDS = {
    "accuracy", "accuracy_ci95", "interval", "correct", "n", "no_answer_rate", "truncation_rate", "output_tokens",
    "tokens_per_s", "wall_time_s", "generation_time_s", "model", "backend", "decoding", "prompt", "versions",
    "extractors", "headline_extractor", "dataset", "split", "n_in_split", "settings_hash", "scoring_fingerprint",
    "hardware", "resumed_samples", "generated_samples",
}


def _eval(model: Path, data: Path, out: Path, *extra: str) -> int:
    return main(["eval", "--model", str(model), "--source", str(data), "--out", str(out),
                 "--backend", "transformers", "--max-new-tokens", "8", "--batch-size", "2", *extra])


def _lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def test_eval_writes_samples_and_metrics(tiny_qwen3_tok_model_dir, gsm8k_dir, qwen3_tokenizer, tmp_path):
    from gsm8k_rl.task.extractors import EXTRACTORS
    from gsm8k_rl.task.gsm8k import gold_number, load_gsm8k_split
    from gsm8k_rl.task.prompt import build_messages, prompt_fingerprint, render
    from gsm8k_rl.task.reward import compute_score, score_details

    out = tmp_path / "eval"
    assert _eval(tiny_qwen3_tok_model_dir, gsm8k_dir, out, "--limit", "4") == 0
    rows = load_gsm8k_split(gsm8k_dir, "test")[:4]
    samples = _lines(out / SAMPLES)
    assert sorted(s["index"] for s in samples) == [0, 1, 2, 3]
    for s in samples:
        assert set(s) == SAMPLE_FIELDS
        row = rows[s["index"]]
        assert s["question"] == row["question"] and s["gold"] == gold_number(row["answer"])
        # the training prompt: same messages, same chat-template kwargs (thinking off by default)
        prompt = render(qwen3_tokenizer, build_messages(row["question"]), thinking=False)
        assert s["n_prompt_tokens"] == len(qwen3_tokenizer(prompt, add_special_tokens=False)["input_ids"])
        # scored by the training reward itself
        assert s["score"] == compute_score("openai/gsm8k", s["output"], s["gold"])
        details = score_details(s["output"], s["gold"])
        assert (s["extracted"], s["rule"]) == (details["extracted"], details["rule"])
        assert set(s["extractor_scores"]) == set(EXTRACTORS)
        assert 1 <= s["n_output_tokens"] <= 8 and s["finish_reason"] in ("stop", "length")
        if s["finish_reason"] == "length":
            assert s["n_output_tokens"] == 8

    m = json.loads((out / METRICS).read_text())
    assert METRIC_FIELDS <= set(m)
    assert m["n"] == 4 and m["n_in_split"] == 1319 and m["dataset"] == "gsm8k" and m["backend"] == "transformers"
    assert m["correct"] == sum(s["score"] for s in samples) and m["accuracy"] == m["correct"] / 4
    lo, hi = m["accuracy_ci95"]
    assert 0 <= lo <= m["accuracy"] <= hi <= 1 and "Wilson" in m["interval"]
    assert m["truncation_rate"] == sum(s["finish_reason"] == "length" for s in samples) / 4
    assert m["no_answer_rate"] == sum(s["extracted"] is None for s in samples) / 4
    assert m["output_tokens"]["max"] == max(s["n_output_tokens"] for s in samples)
    assert m["decoding"]["temperature"] == 0.0 and m["decoding"]["max_new_tokens"] == 8
    assert m["prompt"]["fingerprint"] == prompt_fingerprint("plain", False) and m["prompt"]["thinking"] is False
    assert set(m["extractors"]) == set(EXTRACTORS) and m["headline_extractor"] == "ours"
    assert m["extractors"]["ours"]["accuracy"] == m["accuracy"]
    assert m["versions"]["torch"] and m["versions"]["transformers"] and m["versions"]["gsm8k_rl"]
    assert m["tokens_per_s"] > 0 and m["generated_samples"] == 4 and m["resumed_samples"] == 0
    assert sum(b["size"] for b in _lines(out / BATCHES)) == 4


def test_resume_generates_only_missing(tiny_qwen3_tok_model_dir, gsm8k_dir, tmp_path):
    out = tmp_path / "eval"
    assert _eval(tiny_qwen3_tok_model_dir, gsm8k_dir, out, "--limit", "2") == 0
    first = (out / SAMPLES).read_text()
    assert _eval(tiny_qwen3_tok_model_dir, gsm8k_dir, out, "--limit", "4") == 0
    text = (out / SAMPLES).read_text()
    assert text.startswith(first)  # appended, earlier samples untouched
    indices = [s["index"] for s in _lines(out / SAMPLES)]
    assert sorted(indices) == [0, 1, 2, 3]
    batches = _lines(out / BATCHES)
    assert [b["size"] for b in batches] == [2, 2]  # one batch per invocation: only 2 new generations
    m = json.loads((out / METRICS).read_text())
    assert (m["n"], m["resumed_samples"], m["generated_samples"]) == (4, 2, 2)
    # a rerun with everything present generates nothing and rewrites the same metrics
    assert _eval(tiny_qwen3_tok_model_dir, gsm8k_dir, out, "--limit", "4") == 0
    assert len(_lines(out / BATCHES)) == 2
    m2 = json.loads((out / METRICS).read_text())
    assert (m2["accuracy"], m2["n"], m2["generated_samples"]) == (m["accuracy"], 4, 0)


@pytest.mark.parametrize(
    "change, key",
    [
        (["--max-new-tokens", "9"], "max_new_tokens"),
        (["--thinking"], "thinking"),
        (["--template", "hash"], "template"),
        (["--dtype", "bfloat16"], "dtype"),
    ],
)
def test_changed_settings_refused(tiny_qwen3_tok_model_dir, gsm8k_dir, tmp_path, capsys, change, key):
    out = tmp_path / "eval"
    assert _eval(tiny_qwen3_tok_model_dir, gsm8k_dir, out, "--limit", "2") == 0
    before = (out / SAMPLES).read_text()
    args = ["eval", "--model", str(tiny_qwen3_tok_model_dir), "--source", str(gsm8k_dir), "--out", str(out),
            "--backend", "transformers", "--max-new-tokens", "8", "--batch-size", "2", "--limit", "4"]
    for flag in change:  # replace the flag's default value, or add it
        if flag.startswith("--") and flag in args:
            del args[args.index(flag) : args.index(flag) + 2]
    assert main(args + change) == 2
    err = capsys.readouterr().err
    assert "different settings" in err and key in err
    assert (out / SAMPLES).read_text() == before  # nothing written


def test_other_model_refused(tiny_qwen3_tok_model_dir, gsm8k_dir, tmp_path, capsys):
    from gsm8k_rl.launch.smoke import build_tiny_model

    out = tmp_path / "eval"
    assert _eval(tiny_qwen3_tok_model_dir, gsm8k_dir, out, "--limit", "2") == 0
    other = build_tiny_model(tmp_path / "other", tokenizer_dir=tiny_qwen3_tok_model_dir, hidden_size=32, head_dim=8)
    assert _eval(other, gsm8k_dir, out, "--limit", "2") == 2
    assert "model_fingerprint" in capsys.readouterr().err


def test_unfinished_checks_a_folder_and_writes_nothing(tiny_qwen3_tok_model_dir, gsm8k_dir, tmp_path):
    """The check `gsm8k-rl run` makes before reusing a finished eval: None when evaluate() with these
    options would leave the folder as it is, else why not; other settings are refused by name (the
    resume guard's message, with the caller's advice). Nothing is written, not even a torn line cut."""
    from gsm8k_rl.evaluation.metrics import scoring_fingerprint
    from gsm8k_rl.evaluation.run import unfinished

    out = tmp_path / "eval"
    model = str(tiny_qwen3_tok_model_dir)
    opts = {"source": gsm8k_dir, "backend": "transformers", "max_new_tokens": 8}
    assert unfinished(model, out, limit=3, **opts) == "no metrics.json"
    assert _eval(tiny_qwen3_tok_model_dir, gsm8k_dir, out, "--limit", "3") == 0
    with (out / SAMPLES).open("a") as f:  # a torn last line: not a sample, and left where it is
        f.write('{"index": 3, "question": "half a li')

    def snapshot():
        return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in out.iterdir()}

    before = snapshot()
    assert unfinished(model, out, limit=3, **opts) is None
    assert unfinished(model, out, limit=4, **opts) == "no sample for 1 of its 4 problems"
    assert unfinished(model, out, limit=2, **opts) == "its metrics.json covers 3 problems, not the 2 selected"
    with pytest.raises(UserError, match=r"different settings \(max_new_tokens: 8 -> 9\); delete it$"):
        unfinished(model, out, limit=3, fix="delete it", **{**opts, "max_new_tokens": 9})
    with pytest.raises(UserError, match=r"; thinking: False -> True\); use a new --out, or delete the folder"):
        unfinished(model, out, limit=3, thinking=True, **opts)
    assert snapshot() == before

    lines = (out / SAMPLES).read_text().splitlines(keepends=True)
    stale = {**json.loads(lines[0]), "scored_with": "older code"}
    (out / SAMPLES).write_text(json.dumps(stale) + "\n" + "".join(lines[1:]))
    assert stale["scored_with"] != scoring_fingerprint()
    why = unfinished(model, out, limit=3, **opts)
    assert why == "1 sample(s) scored by other scoring code, to rescore (nothing to generate)"
    assert _eval(tiny_qwen3_tok_model_dir, gsm8k_dir, out, "--limit", "3") == 0  # what `gsm8k-rl run` does then
    assert json.loads((out / METRICS).read_text())["generated_samples"] == 0
    assert unfinished(model, out, limit=3, **opts) is None


def test_resume_after_kill(tiny_qwen3_tok_model_dir, gsm8k_dir, tmp_path):
    """SIGKILL the eval after its first batch is on disk, then finish it: no index twice, none lost."""
    out = tmp_path / "eval"
    cmd = [sys.executable, "-m", "gsm8k_rl.cli", "eval", "--model", str(tiny_qwen3_tok_model_dir),
           "--source", str(gsm8k_dir), "--out", str(out), "--backend", "transformers",
           "--limit", "4", "--batch-size", "1", "--max-new-tokens", "64"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})
    try:
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None:
            if (out / SAMPLES).exists() and (out / SAMPLES).read_text().count("\n") >= 1:
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    done = _lines(out / SAMPLES)
    assert 1 <= len(done) < 4, "the eval finished (or never started) before it could be killed"
    # simulate a kill in the middle of a write as well: half a JSON line at the end
    with (out / SAMPLES).open("a") as f:
        f.write('{"index": 3, "question": "half a li')
    # ... and in the batch timing log, appended right after the samples (the resume used to die on
    # it with a JSONDecodeError, so the fault-injection harness's job never finished)
    with (out / BATCHES).open("a") as f:
        f.write('{"time": "2026-01-01T00:0')
    assert main(["eval", "--model", str(tiny_qwen3_tok_model_dir), "--source", str(gsm8k_dir), "--out", str(out),
                 "--backend", "transformers", "--limit", "4", "--batch-size", "2", "--max-new-tokens", "64"]) == 0
    samples = _lines(out / SAMPLES)
    assert sorted(s["index"] for s in samples) == [0, 1, 2, 3]
    by_index = {s["index"]: s for s in samples}
    for old in done:  # kept as generated ("scored_with" changes only if the scoring code changed meanwhile)
        assert {**by_index[old["index"]], "scored_with": None} == {**old, "scored_with": None}
    m = json.loads((out / METRICS).read_text())
    assert (m["resumed_samples"], m["generated_samples"]) == (len(done), 4 - len(done))
    assert all(json.loads(line) for line in (out / BATCHES).read_text().splitlines())
    assert sorted(p.name for p in out.iterdir()) == sorted([SAMPLES, BATCHES, SETTINGS, METRICS])  # no .tmp left


def test_platinum(tiny_qwen3_tok_model_dir, platinum_dir, tmp_path):
    out = tmp_path / "plat"
    assert _eval(tiny_qwen3_tok_model_dir, platinum_dir, out, "--dataset", "platinum", "--limit", "2") == 0
    m = json.loads((out / METRICS).read_text())
    assert (m["dataset"], m["n"], m["n_in_split"]) == ("platinum", 2, 1209)
    assert json.loads((out / SETTINGS).read_text())["settings"]["dataset"] == "platinum"


def test_vllm_missing_is_a_user_error(tiny_qwen3_tok_model_dir, gsm8k_dir, tmp_path, capsys):
    pytest.importorskip("torch")
    try:
        import vllm  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("vLLM is installed here")
    rc = main(["eval", "--model", str(tiny_qwen3_tok_model_dir), "--source", str(gsm8k_dir),
               "--out", str(tmp_path / "v"), "--backend", "vllm", "--limit", "1"])
    assert rc == 2 and "vLLM" in capsys.readouterr().err


def test_missing_scorer_package_fails_before_generating(tiny_qwen3_tok_model_dir, gsm8k_dir, tmp_path, capsys,
                                                        monkeypatch):
    # Seen on the GPU machine: an install without math-verify generated a whole batch with vLLM, then
    # died scoring its first answer. Now the check comes before any model is loaded.
    monkeypatch.setitem(sys.modules, "math_verify", None)  # `import math_verify` raises ImportError
    monkeypatch.setattr(TransformersBackend, "__init__", lambda *a, **k: pytest.fail("model loaded before the check"))
    rc = _eval(tiny_qwen3_tok_model_dir, gsm8k_dir, tmp_path / "e", "--limit", "2")
    err = capsys.readouterr().err
    assert rc == 2 and "math-verify" in err and "pip install math-verify" in err
    assert not (tmp_path / "e" / SAMPLES).exists()


def test_engine_closed_when_a_batch_fails(tiny_qwen3_tok_model_dir, gsm8k_dir, tmp_path, monkeypatch):
    # vLLM's engine-core process must be stopped even when scoring raises (left to interpreter exit,
    # its shutdown hung); checked with the real transformers engine and a scorer that raises.
    import gsm8k_rl.evaluation.run as ev

    closed = []
    monkeypatch.setattr(TransformersBackend, "close", lambda self: closed.append(self.name))
    monkeypatch.setattr(ev, "score_output", lambda *a: (_ for _ in ()).throw(RuntimeError("scorer broke")))
    with pytest.raises(RuntimeError, match="scorer broke"):
        _eval(tiny_qwen3_tok_model_dir, gsm8k_dir, tmp_path / "e", "--limit", "2")
    assert closed == ["transformers"]


def test_left_padding_matches_unpadded(tiny_qwen3_tok_model_dir, qwen3_tokenizer, gsm8k_dir):
    """Greedy outputs of a left-padded batch equal those of each prompt alone (padding is masked)."""
    from gsm8k_rl.task.gsm8k import load_gsm8k_split
    from gsm8k_rl.task.prompt import build_messages, render

    rows = load_gsm8k_split(gsm8k_dir, "test")[:3]
    prompts = [qwen3_tokenizer(render(qwen3_tokenizer, build_messages(r["question"])),
                               add_special_tokens=False)["input_ids"]
               for r in rows]
    assert len({len(p) for p in prompts}) > 1  # the batch really is padded
    backend = TransformersBackend(str(tiny_qwen3_tok_model_dir), qwen3_tokenizer, "float32", 6,
                                  stop_token_ids(str(tiny_qwen3_tok_model_dir), qwen3_tokenizer))
    assert backend.generate(prompts) == [backend.generate([p])[0] for p in prompts]


def test_read_samples_rejects_duplicates(tmp_path):
    path = tmp_path / SAMPLES
    path.write_text('{"index": 0}\n{"index": 1}\n{"index": 0}\n')
    with pytest.raises(UserError, match="index 0 appears twice"):
        read_samples(path)
    path.write_text('{"index": 0}\nnot json\n{"index": 1}\n')
    with pytest.raises(UserError, match=r"samples.jsonl:2"):
        read_samples(path)


# -- sampled answers: pass@k and maj@k -------------------------------------------------------------


def test_sampled_eval_writes_k_answers_and_pass_at_k(tiny_qwen3_tok_model_dir, gsm8k_dir, tmp_path, capsys):
    """--samples K: one row per problem with its K answers; metrics hold pass@k and maj@k for k = 1..K,
    computed from those rows; the seed makes a run repeatable, and a resume with another seed or
    temperature is refused by name."""
    from gsm8k_rl.evaluation.metrics import majority_vote
    from gsm8k_rl.evaluation.stats import pass_at_k

    out = tmp_path / "s"
    sampled = ["--limit", "3", "--samples", "4", "--temperature", "1.0", "--seed", "7"]
    assert _eval(tiny_qwen3_tok_model_dir, gsm8k_dir, out, *sampled) == 0
    assert "pass@k" in capsys.readouterr().out
    rows = sorted(_lines(out / "samples.jsonl"), key=lambda r: r["index"])  # written in batches by prompt length
    assert [r["index"] for r in rows] == [0, 1, 2] and all(len(r["samples"]) == r["n_samples"] == 4 for r in rows)
    # a random toy model samples different texts
    assert any(len({a["output"] for a in r["samples"]}) > 1 for r in rows)
    m = json.loads((out / "metrics.json").read_text())
    assert m["decoding"] == {**m["decoding"], "greedy": False, "temperature": 1.0, "samples": 4, "seed": 7}
    assert sorted(m["pass_at_k"], key=int) == sorted(m["maj_at_k"], key=int) == ["1", "2", "3", "4"]
    for k in (1, 2, 3, 4):
        assert m["pass_at_k"][str(k)] == pytest.approx(sum(pass_at_k(4, r["n_correct"], k) for r in rows) / 3)
        assert m["maj_at_k"][str(k)] == pytest.approx(sum(majority_vote(r["samples"][:k])["score"] for r in rows) / 3)
    assert m["accuracy"] == pytest.approx(m["pass_at_k"]["1"]) and m["n"] == 3 and m["n_answers"] == 12
    settings = json.loads((out / "eval_settings.json").read_text())["settings"]
    assert (settings["samples"], settings["temperature"], settings["seed"]) == (4, 1.0, 7)

    again = tmp_path / "again"
    assert _eval(tiny_qwen3_tok_model_dir, gsm8k_dir, again, *sampled) == 0
    repeated = sorted(_lines(again / "samples.jsonl"), key=lambda r: r["index"])
    assert [r["samples"] for r in repeated] == [r["samples"] for r in rows]
    capsys.readouterr()
    assert _eval(tiny_qwen3_tok_model_dir, gsm8k_dir, out, "--limit", "3", "--samples", "4", "--seed", "8") == 2
    assert "seed: 7 -> 8" in capsys.readouterr().err


def test_sampling_flags_that_cannot_work_are_refused(tiny_qwen3_tok_model_dir, gsm8k_dir, tmp_path, capsys):
    assert _eval(tiny_qwen3_tok_model_dir, gsm8k_dir, tmp_path / "a", "--samples", "4", "--temperature", "0") == 2
    assert "greedy decoding gives the same answer every time" in capsys.readouterr().err
    assert _eval(tiny_qwen3_tok_model_dir, gsm8k_dir, tmp_path / "b", "--samples", "0") == 2
    assert "--samples must be >= 1" in capsys.readouterr().err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_report_on_sampled_evals_shows_pass_at_k_and_does_not_pair(tiny_qwen3_tok_model_dir, gsm8k_dir, tmp_path):
    for name in ("base", "trained"):
        assert _eval(tiny_qwen3_tok_model_dir, gsm8k_dir, tmp_path / name, "--limit", "2", "--samples", "3") == 0
    out = tmp_path / "report"
    assert main(["report", "--base-eval", str(tmp_path / "base"), "--trained-eval", str(tmp_path / "trained"),
                 "--out", str(out)]) == 0
    md = (out / "report.md").read_text()
    assert "## pass@k and majority vote" in md and "k=3: pass@k / maj@k" in md
    assert "compared by their pass@k and maj@k" in md and "**Headline:**" not in md
    assert (out / "pass_at_k.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
