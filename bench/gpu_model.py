"""bench/gpu.py's model and machine: a random-initialised Llama of a named shape with a byte-level tokenizer (both
built here, no download), the device's peak bandwidth and FLOP/s, synchronised timing and peak memory."""
from __future__ import annotations

import gc
import re
import resource
import time
from pathlib import Path

import torch

# The shapes (Llama-3.2-1B; a Llama-3-8B-like 7B; tiny = a few seconds per section on a 2-core CPU).
SHAPES = {
    "tiny": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                 intermediate_size=256, vocab_size=2048, tie_word_embeddings=True),
    "1b": dict(hidden_size=2048, num_hidden_layers=16, num_attention_heads=32, num_key_value_heads=8,
               intermediate_size=8192, vocab_size=128256, tie_word_embeddings=True),
    "7b": dict(hidden_size=4096, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
               intermediate_size=14336, vocab_size=128256, tie_word_embeddings=False),
}
# Spec-sheet peaks (dense bf16 FLOP/s, HBM bytes/s), the convention; matched in this order by substring of
# torch.cuda.get_device_name(). The H200 here measured ~790 TFLOP/s and ~4.3 TB/s (device/KINDS.md).
PEAKS = [("H200", 4.8e12, 989e12), ("H100 PCIe", 2.0e12, 756e12), ("H100", 3.35e12, 989e12),
         ("A100", 2.0e12, 312e12)]
CHATML = (  # tests/conftest.py's template: DPOTrainer applies it to the conversational pairs
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
NUCLEUS = 8  # tokens a top-p 0.9 nucleus may hold at 90% of positions once the random model's logits are peaked


def byte_tokenizer():
    """One token per byte (256) plus three specials; no merges, so nothing to train or download. The model's
    vocabulary may be larger: its extra rows are never fed in (generation prompts use byte ids)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    raw = Tokenizer(models.BPE(vocab={c: i for i, c in enumerate(alphabet)}, merges=[]))
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    tok = PreTrainedTokenizerFast(tokenizer_object=raw, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                  pad_token="<|im_end|>", unk_token="<|endoftext|>")
    tok.chat_template = CHATML
    return tok


@torch.no_grad()
def peak_logits(model, eos_id: int, temperature: float = 0.7, top_p: float = 0.9) -> dict:
    """Make the random model's next-token distributions peaked like a trained model's, and the end token unlikely.

    Random weights give near-uniform logits (std < 1 over the vocabulary), so top-p would keep most of it and every
    engine would sort the whole vocabulary each step, which a real model's sampling does not. The logits are
    linear in the final norm's weight, so scaling that weight by s scales them by s: s is the smallest scale (by
    bisection, on one batch of random ids) at which 90% of positions keep at most NUCLEUS tokens in the top-p
    nucleus. The end token's output row is zeroed (its logit 0, about the median; tied, its input embedding too,
    which nothing here relies on), so no row stops early and every engine decodes the same number of steps."""
    model.get_output_embeddings().weight[eos_id] = 0
    ids = torch.randint(0, 256, (4, 64), device=model.device)
    logits = model(input_ids=ids).logits.float().flatten(0, 1) / temperature

    def nucleus(s):  # tokens top-p keeps per position, and the sorted probabilities
        probs = (s * logits).softmax(-1).sort(-1, descending=True).values
        return ((probs.cumsum(-1) - probs) < top_p).sum(-1).float(), probs

    lo, hi = 0.0, 1000.0
    for _ in range(30):
        s = (lo + hi) / 2
        lo, hi = (s, hi) if nucleus(s)[0].quantile(0.9) > NUCLEUS else (lo, s)
    model.model.norm.weight.mul_(hi)
    kept, probs = nucleus(hi)
    return {"norm_scale": hi, "top1_mass_median": probs[:, 0].median().item(),
            "nucleus_tokens_median": kept.median().item(), "nucleus_tokens_max": kept.max().item(),
            "eos_mass_max": (hi * logits).softmax(-1)[:, eos_id].max().item()}


def build(shape: str, out: Path, device: torch.device, dtype: torch.dtype, seed: int = 0) -> dict:
    """Write the random model and tokenizer to `out` (safetensors), as mipo loads any local model; return facts."""
    from transformers import AutoModelForCausalLM, LlamaConfig

    tok = byte_tokenizer()
    config = LlamaConfig(**SHAPES[shape], rope_theta=500000.0, max_position_embeddings=8192,
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    torch.manual_seed(seed)
    with torch.device(device):  # initialised where it runs: a 1B model's init on a CPU takes minutes
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    facts = {"shape": shape, **SHAPES[shape], "params": model.num_parameters(), "matmul_params": matmul_params(model),
             "dtype": str(dtype).removeprefix("torch."), "logits": peak_logits(model, tok.eos_token_id)}
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    return facts


def matmul_params(model) -> int:
    """Parameters that take part in a matrix product per token: N of the 2N FLOP/token convention. An untied input
    embedding is only gathered from, so it is left out (tied, it is also the LM head and counts)."""
    emb, head = model.get_input_embeddings().weight, model.get_output_embeddings().weight
    return model.num_parameters() - (0 if emb is head else emb.numel())


def kv_bytes_per_token(config, dtype: torch.dtype) -> int:
    """KV-cache bytes one context token holds (keys and values, every layer)."""
    head_dim = config.hidden_size // config.num_attention_heads
    return 2 * config.num_hidden_layers * config.num_key_value_heads * head_dim * dtype.itemsize


def peaks(device: torch.device, bw: float | None, flops: float | None) -> dict:
    """The device's name and peak bandwidth/FLOP/s: the flags if given, else PEAKS on CUDA, else none (CPU)."""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    for key, b, f in PEAKS if device.type == "cuda" else []:
        if key in name:
            bw, flops = bw or b, flops or f
            break
    return {"device": name, "peak_bw": bw, "peak_flops": flops}


def free(device: torch.device) -> None:
    """Return what dropped objects held (cycles included) before the next part measures its peak memory."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def clock(device: torch.device) -> float:
    """perf_counter after the device's queued work has finished: CUDA kernels run asynchronously."""
    sync(device)
    return time.perf_counter()


def reset_peak(device: torch.device) -> None:
    """Start a new peak-memory window: CUDA's allocator stats, or the process's RSS high-water mark (Linux clears
    it on writing 5 to clear_refs; where that is refused, the peak stays the process's since it began)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def peak_memory(device: torch.device) -> int:
    """Bytes: torch.cuda.max_memory_allocated on CUDA, else the peak RSS (VmHWM) since `reset_peak`."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    try:
        return int(re.search(r"VmHWM:\s+(\d+) kB", Path("/proc/self/status").read_text()).group(1)) * 1024
    except (OSError, AttributeError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
