import pytest
import torch

from .conftest import logprobs, sample, sharp_fp32

PROMPTS = [
    [{"role": "user", "content": "About me: I am vegan.\n\nSuggest a quick dinner."}],
    [{"role": "user", "content": "Explain inflation."}],
    [{"role": "system", "content": "Solve step by step."}, {"role": "user", "content": "What is 3 + 4?"}],
]


def test_sampling_is_deterministic_given_seed(tiny):
    model, tok = tiny
    kw = dict(temperature=1.0, top_p=0.9, max_new_tokens=12, batch_size=2)
    a = sample(model, tok, PROMPTS, seed=1, **kw)
    assert a == sample(model, tok, PROMPTS, seed=1, **kw)
    assert len(a) == 3 and all(isinstance(x, str) for x in a)
    assert a != sample(model, tok, PROMPTS, seed=2, **kw)


def test_logprobs_match_a_plain_forward_and_ignore_padding(tiny_fp32):
    model, tok = tiny_fp32
    responses = ["Lentil soup with rice.", "Prices rise over time.", "3 + 4 = 7 #### 7"]
    batched = logprobs(model, tok, PROMPTS, responses, batch_size=3)
    single = logprobs(model, tok, PROMPTS, responses, batch_size=1)
    assert torch.allclose(torch.tensor(batched), torch.tensor(single), atol=1e-4)
    # By hand for the first pair: sum of log-softmax at each response position.
    p = list(tok.apply_chat_template(PROMPTS[0], add_generation_prompt=True, tokenize=True, return_dict=False))
    y = tok(responses[0], add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    with torch.no_grad():
        logits = model(torch.tensor([p + y], device=model.device)).logits[0].log_softmax(-1)
    by_hand = sum(logits[len(p) - 1 + j, t].item() for j, t in enumerate(y))
    assert abs(by_hand - single[0]) < 1e-3


def test_nucleus_sampling_matches_transformers_top_p():
    from transformers.generation.logits_process import TopPLogitsWarper

    from mipo.inference import Sampling
    from mipo.inference.decode import pick

    torch.manual_seed(0)
    logits = torch.randn(5, 512) * 3
    logits[0] = torch.randn(512) * 0.01  # nearly flat: the nucleus is wider than the 256-token fast path
    ref = TopPLogitsWarper(0.9)(None, logits.clone()).softmax(-1)  # the library's nucleus, renormalised
    gen = torch.Generator().manual_seed(1)
    draws = torch.stack([pick(logits, Sampling(1.0, 0.9), gen) for _ in range(3000)], dim=1)
    for row in range(5):
        assert (ref[row, draws[row]] > 0).all()  # never outside the nucleus
        freq = torch.bincount(draws[row], minlength=512).float() / draws.shape[1]
        if row > 0:  # with a handful of kept tokens the empirical law must match the library's
            assert 0.5 * (freq - ref[row]).abs().sum() < 0.06
    assert torch.equal(pick(logits, Sampling(0.0, 0.9), None), logits.argmax(-1))


def _sliding_window_model(tiny_model_dir, out):
    """The tiny Llama's tokenizer on a Mistral with sliding-window attention (window wider than every sequence, so
    the same attention): its static cache layers wrap around, so decode must fall back to the dynamic cache."""
    from transformers import AutoTokenizer, MistralConfig, MistralForCausalLM

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    torch.manual_seed(0)
    model = MistralForCausalLM(MistralConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, sliding_window=512, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id, tie_word_embeddings=True))
    model.generation_config.eos_token_id = tok.eos_token_id
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    return out


@pytest.mark.parametrize("arch", ["llama", "sliding-window"])
def test_greedy_decode_equals_transformers_generate(tiny_model_dir, tmp_path, arch):
    from mipo.inference import Sampling
    from mipo.inference.decode import decode, shared_prefix
    from mipo.inference.graphs import decode_fixed
    from mipo.inference.hf import eos_ids, prompt_ids
    from mipo.inference.kv_cache import make_cache as _cache

    path = tiny_model_dir if arch == "llama" else _sliding_window_model(tiny_model_dir, tmp_path / "mistral")
    model, tok = sharp_fp32(path)
    assert _cache(model, 64)[1] == (arch == "llama")  # static KV cache, or the dynamic fallback
    ids = prompt_ids(tok, PROMPTS)
    kw = dict(pad_id=tok.pad_token_id, gen=None)
    greedy = Sampling(0, 1.0, 24)
    first = decode(model, ids, greedy, eos_ids=eos_ids(model, tok), min_prefix=4, **kw)
    # a second stop token that ends row 0 early while the others go on: rows leave the batch mid-decode
    stop = eos_ids(model, tok) | {first[0][5]}
    mine = decode(model, ids, greedy, eos_ids=stop, min_prefix=4, **kw)
    tok.padding_side = "left"
    enc = tok.apply_chat_template(PROMPTS, add_generation_prompt=True, return_tensors="pt", padding=True,
                                  return_dict=True).to(model.device)
    hf = model.generate(**enc, do_sample=False, max_new_tokens=24, pad_token_id=tok.pad_token_id,
                        eos_token_id=sorted(stop))
    hf = hf[:, enc["input_ids"].shape[1]:].tolist()
    assert len({tuple(t) for t in mine}) > 1
    assert min(len(t) for t in mine) < 24 and max(len(t) for t in mine) == 24
    for a, b in zip(mine, hf):
        assert a == b[:len(a)] and (len(a) == 24 or a[-1] in stop)
    # the shared system turn went through the prefix KV cache; without it, the same tokens
    assert shared_prefix(ids) >= 4
    assert decode(model, ids, greedy, eos_ids=stop, min_prefix=10**9, **kw) == mine
    # the suffixes prefilled a row at a time and two rows at a time (groups of uneven width): the same tokens
    assert len({len(p) for p in ids}) == len(ids)
    assert decode(model, ids, greedy, eos_ids=stop, min_prefix=4, prefill_rows=1, **kw) == mine
    assert decode(model, ids, greedy, eos_ids=stop, min_prefix=4, prefill_rows=2, **kw) == mine
    # the fixed-shape loop the hf engine runs on CUDA (here its eager steps; sliding window: decode runs): the same
    for every in (1, 8):
        assert decode_fixed(model, ids, greedy, eos_ids=stop, min_prefix=4, graphs=False, check_every=every,
                            **kw) == mine


def test_fixed_shape_loop_samples_what_decode_samples(tiny_model_dir):
    """With no row ending early both loops draw the same random numbers for the same logits: the same tokens. (When
    rows end, decode drops them and draws fewer numbers; each loop is then deterministic on its own.)"""
    from mipo.inference import Sampling
    from mipo.inference.decode import decode
    from mipo.inference.graphs import decode_fixed
    from mipo.inference.hf import prompt_ids

    model, tok = sharp_fp32(tiny_model_dir)
    ids = prompt_ids(tok, PROMPTS)
    runs = [loop(model, ids, Sampling(0.9, 0.8, 20), pad_id=tok.pad_token_id, eos_ids={-1}, min_prefix=4,
                 gen=torch.Generator(device=model.device).manual_seed(3), **extra)
            for loop, extra in ((decode, {}), (decode_fixed, {"graphs": False}))]
    assert runs[0] == runs[1] and all(len(t) == 20 for t in runs[0])
    assert len({tuple(t) for t in runs[0]}) == len(PROMPTS)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA device")
@pytest.mark.parametrize("temperature", [0.0, 0.9])
def test_cuda_graph_replay_equals_eager_steps(tiny_model_dir, temperature):
    """The recorded step replays what the eager step computes: the same tokens, greedy and sampled, with rows ending
    mid-batch (graphs=True fails loudly if the step cannot be recorded)."""
    from mipo.inference import Sampling
    from mipo.inference.graphs import decode_fixed
    from mipo.inference.hf import eos_ids, prompt_ids

    model, tok = sharp_fp32(tiny_model_dir)
    ids = prompt_ids(tok, PROMPTS)
    first = decode_fixed(model, ids, Sampling(0.0, 1.0, 24), pad_id=tok.pad_token_id, eos_ids=eos_ids(model, tok),
                         gen=None, min_prefix=4, graphs=False)
    stop = eos_ids(model, tok) | {first[0][5]}  # ends row 0 early
    runs = [decode_fixed(model, ids, Sampling(temperature, 0.9, 24), pad_id=tok.pad_token_id, eos_ids=stop,
                         gen=torch.Generator(device=model.device).manual_seed(3), min_prefix=4, graphs=graphs)
            for graphs in (False, True)]
    assert runs[0] == runs[1] and min(map(len, runs[0])) < 24


def test_static_cache_attends_over_filled_slots_only(tiny_model_dir):
    """The preallocated cache hands attention the slots written so far and sizes the mask to match, so a decode
    step reads prompt + generated tokens, not all `max_cache_len` slots."""
    from mipo import ModelArgs, models
    from mipo.inference.kv_cache import make_cache as _cache

    model, _ = models.load(ModelArgs(name=str(tiny_model_dir)))
    cache, static = _cache(model, 64)
    assert static
    k = torch.randn(3, model.config.num_key_value_heads, 5, model.config.head_dim)
    keys, values = cache.update(k, k.clone(), 0)
    assert keys.shape[2] == values.shape[2] == 5 and torch.equal(keys, k)
    assert cache.get_mask_sizes(1, 0) == (6, 0)
    keys, _ = cache.update(k[:, :, :1], k[:, :, :1], 0)
    assert keys.shape[2] == 6 and torch.equal(keys[:, :, 5], k[:, :, 0])
    assert cache.layers[0].keys.shape[2] == 64  # still one preallocated buffer, written in place


def test_shared_prefix_leaves_every_prompt_a_token():
    from mipo.inference.decode import shared_prefix

    assert shared_prefix([[1, 2, 3, 4], [1, 2, 3, 5], [1, 2, 3, 4, 9]]) == 3
    assert shared_prefix([[1, 2, 3], [1, 2, 3, 4]]) == 2  # the shortest prompt keeps its last token
    assert shared_prefix([[7, 1], [8, 1]]) == 0


def test_resume_log_tells_adapters_apart(tiny_model_dir, tmp_path):
    """Two adapters on one base, one resume dir: each gets its own responses, never the other's logged ones."""
    from peft import LoraConfig, get_peft_model

    from mipo import ModelArgs, models
    from mipo.inference.adapters import weights_id

    base, tok = models.load(ModelArgs(name=str(tiny_model_dir)))
    model = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))

    def new_adapter(seed):  # same name and shapes, other weights: what two trained adapters look like
        torch.manual_seed(seed)
        for n, p in model.named_parameters():
            if "lora_" in n:
                p.data.normal_(0, 0.5)

    new_adapter(0)
    kw = dict(temperature=1.0, top_p=1.0, max_new_tokens=10, batch_size=2, seed=0, resume_dir=tmp_path)
    with model.disable_adapter():
        assert weights_id(model)["adapter"] is None
        off = sample(model, tok, PROMPTS, **kw)
    first = sample(model, tok, PROMPTS, **kw)
    id_first = weights_id(model)
    new_adapter(1)
    assert weights_id(model)["adapter"] != id_first["adapter"] and weights_id(model)["model"] == id_first["model"]
    second = sample(model, tok, PROMPTS, **kw)
    fresh = sample(model, tok, PROMPTS, **{**kw, "resume_dir": None})
    assert second == fresh and second != first and first != off
    assert len(list(tmp_path.glob("*.jsonl"))) == 3  # one log per weights, base included


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA device")
def test_a_step_that_cannot_be_recorded_falls_back_to_eager_steps(caplog):
    """A step that reads a value back to the host cannot be recorded: strict recording raises; otherwise the eager
    step's result comes back with no graph, and the warning is logged once however many batches try."""
    from mipo.inference import graphs
    from mipo.inference.graphs import record

    graphs._warned.clear()
    x = torch.arange(4.0, device="cuda")

    def step():
        return x * float(x.sum())  # .item() under the hood: not allowed while recording

    with pytest.raises(RuntimeError):
        record(step, strict=True)
    for _ in range(2):
        logits, graph, out = record(step, strict=False)
        assert graph is None and out is None and torch.equal(logits, x * 6)
    assert sum("could not be recorded" in r.getMessage() for r in caplog.records) == 1


@pytest.mark.parametrize("lora", [False, True])
def test_fixed_shape_step_is_recordable(tiny_model_dir, monkeypatch, lora):
    """What a CUDA graph cannot record, checked on any device: the decode step reads no value back to the host
    (`.item()`, `bool(t)`: aten._local_scalar_dense), builds no tensor from host data (aten.lift_fresh) and makes
    no tensor whose shape depends on values (nonzero). The base model and a PEFT model (the engine samples from
    adapters between rounds) both."""
    from torch.utils._python_dispatch import TorchDispatchMode

    from mipo.inference import Sampling, graphs
    from mipo.inference.hf import eos_ids, prompt_ids

    class Ops(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            seen.append(func.overloadpacket.__name__)
            return func(*args, **(kwargs or {}))

    def watched(*args):
        with Ops():
            return forward(*args)

    model, tok = sharp_fp32(tiny_model_dir)
    if lora:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], lora_dropout=0.1)).eval()
    seen, forward = [], graphs.forward
    monkeypatch.setattr(graphs, "forward", watched)
    ids = prompt_ids(tok, PROMPTS)
    graphs.decode_fixed(model, ids, Sampling(0.9, 0.9, 6), pad_id=tok.pad_token_id, eos_ids=eos_ids(model, tok),
                        gen=torch.Generator().manual_seed(0), min_prefix=4, graphs=False)
    assert "linear" in seen or "mm" in seen  # the step ran under the watch
    assert not {"_local_scalar_dense", "item", "lift_fresh", "nonzero", "masked_select"} & set(seen), sorted(set(seen))


@pytest.mark.parametrize("lora", [False, True])
def test_fixed_shape_step_runs_where_no_host_data_can_reach(tiny_model_dir, lora):
    """The decode step with the model, cache and inputs on the meta device (shapes, no data): a tensor made on the
    host and used in the step (which a CUDA graph would bake in or refuse) fails there with a device mismatch, and
    a value read back (`.item()`) has nothing to read. A 0-dim host tensor would pass (PyTorch takes it as a scalar);
    the one counter the replay depends on, the cache's write position, is checked to live on the device."""
    from mipo import ModelArgs, models
    from mipo.inference.graphs import forward
    from mipo.inference.kv_cache import make_cache

    model, _ = models.load(ModelArgs(name=str(tiny_model_dir), dtype="float32"))
    if lora:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"])).eval()
    model, c = model.to("meta"), model.config
    cache, static = make_cache(model, 40, slots=False)
    heads, dim = c.num_key_value_heads, c.hidden_size // c.num_attention_heads
    for i in range(c.num_hidden_layers):  # the prefill's 20 slots
        cache.update(*(torch.zeros(3, heads, 20, dim, device="meta") for _ in "kv"), i)
    ids, pos = (torch.zeros(3, 1, dtype=torch.long, device="meta") for _ in "ip")
    with torch.inference_mode():
        logits = forward(model, ids, torch.zeros(3, 1, 1, 40, dtype=torch.bool, device="meta"), pos, cache)
    assert static and logits.device.type == "meta" and logits.shape == (3, c.vocab_size)
    # the write position each replay advances lives on the device too (a host scalar would be baked in at recording)
    assert all(layer.cumulative_length.device.type == "meta" for layer in cache.layers)
