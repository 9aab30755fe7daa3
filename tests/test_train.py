import json

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from mipo import ModelArgs, models
from mipo.config import Config
from mipo.io import MipoError
from mipo.methods import get_method
from mipo.train import make_dpo_trainer, pairs_dataset

PAIRS = [
    ("About me: I am vegan.\n\nSuggest a quick dinner.", "Lentil soup with rice.", "Grilled steak."),
    ("Explain inflation.", "Prices rise over time.", "I like trains."),
    ("What is 3 + 4?", "3 + 4 = 7 #### 7", "The answer is 12."),
    ("About me: I run.\n\nPlan my week.", "Run Monday, rest Tuesday.", "Watch films."),
]


def write_pairs(path):
    with path.open("w") as f:
        for i, (x, c, r) in enumerate(PAIRS):
            f.write(json.dumps({"prompt": [{"role": "user", "content": x}],
                                "chosen": [{"role": "assistant", "content": c}],
                                "rejected": [{"role": "assistant", "content": r}], "meta": {"prompt_id": str(i)}}) + "\n")
    return path


def seq_logps(model, batch):
    """Sum of log p over completion tokens, straight from the model's logits."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    logp = logits[:, :-1].log_softmax(-1).gather(-1, batch["input_ids"][:, 1:, None]).squeeze(-1)
    return (logp * batch["completion_mask"][:, 1:]).sum(-1)


def test_trl_dpo_loss_equals_formula_by_hand(tiny_model_dir, tmp_path):
    policy, tok = models.load(ModelArgs(name=str(tiny_model_dir), dtype="float32"))  # by hand to 1e-4: fp32
    ref, _ = models.load(ModelArgs(name=str(tiny_model_dir), dtype="float32"))
    torch.manual_seed(0)
    with torch.no_grad():  # make the reference differ from the policy so the margins are not all zero
        for p in ref.parameters():
            p.add_(0.05 * torch.randn_like(p))
    cfg = Config(seed=0)
    cfg.train.lora, cfg.train.beta, cfg.train.batch_size = False, 0.3, 4
    trainer = make_dpo_trainer(cfg, policy, tok, pairs_dataset(write_pairs(tmp_path / "p.jsonl")), str(tmp_path / "o"),
                           ref_model=ref)
    batch = next(iter(trainer.get_train_dataloader()))
    trainer.model.eval()
    with torch.no_grad():
        trl_loss = trainer.compute_loss(trainer.model, batch).item()
        pi_c, pi_r = seq_logps(policy, batch).chunk(2)
        ref_c, ref_r = seq_logps(ref, batch).chunk(2)
    # DPO (Rafailov et al. 2023, eq. 7): -log σ(β[(log π(y_w|x) − log π_ref(y_w|x)) − (log π(y_l|x) − log π_ref(y_l|x))])
    by_hand = -F.logsigmoid(0.3 * ((pi_c - ref_c) - (pi_r - ref_r))).mean().item()
    assert batch["input_ids"].shape[0] == 8
    assert abs(trl_loss - by_hand) < 1e-4
    assert abs(by_hand - torch.log(torch.tensor(2.0)).item()) > 1e-3  # a real margin, not the trivial log 2


def test_lora_training_changes_adapter_and_saves_hf_format(tiny_model_dir, tmp_path):
    model, tok = models.load(ModelArgs(name=str(tiny_model_dir)))
    cfg = Config(seed=0)
    cfg.train.learning_rate, cfg.train.batch_size, cfg.train.merge = 1e-2, 2, True
    summary = get_method("mipo").fit(cfg, model, tok, write_pairs(tmp_path / "p.jsonl"), tmp_path / "train")
    assert summary["steps"] == 2
    weights = load_file(tmp_path / "train" / "adapter" / "adapter_model.safetensors")
    lora_b = [v for k, v in weights.items() if "lora_B" in k]
    assert lora_b and any(v.abs().sum() > 0 for v in lora_b)  # B starts at zero: nonzero means it trained
    assert json.loads((tmp_path / "train" / "adapter" / "adapter_config.json").read_text())["r"] == cfg.train.lora_r
    merged, _ = models.load(ModelArgs(name=str(tmp_path / "train" / "merged")))
    base, _ = models.load(ModelArgs(name=str(tiny_model_dir)))
    diff = sum((a - b).abs().sum().item() for a, b in zip(merged.parameters(), base.parameters()))
    assert diff > 0


def test_empty_pairs_file_is_refused(tmp_path):
    (tmp_path / "p.jsonl").write_text("")
    with pytest.raises(MipoError, match="no pairs to train on"):
        pairs_dataset(tmp_path / "p.jsonl")
    (tmp_path / "p.jsonl").write_text('{"prompt": [{"role": "user", "content": "x"}], "chosen": [], "rejected": []}\n')
    with pytest.raises(MipoError, match=r"p.jsonl:1: field 'chosen' is missing or empty"):
        pairs_dataset(tmp_path / "p.jsonl")


def test_lora_keeps_one_copy_of_the_weights(tiny_model_dir, tmp_path):
    model, tok = models.load(ModelArgs(name=str(tiny_model_dir)))
    n_base = sum(p.numel() for p in model.parameters())
    trainer = make_dpo_trainer(Config(), model, tok, pairs_dataset(write_pairs(tmp_path / "p.jsonl")), str(tmp_path / "o"))
    assert trainer.ref_model is None  # the reference is the same weights with the adapter disabled
    n_all = sum(p.numel() for p in trainer.model.parameters())
    n_trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    assert n_all == n_base + n_trainable and n_trainable < 0.5 * n_base
    assert not trainer.args.bf16  # bf16 GEMM on CPU is ~270x slower than fp32


def test_precomputed_reference_trains_the_same_and_keeps_no_reference_copy(tiny_model_dir, tmp_path):
    """train.precompute_ref (auto = on CUDA): TRL scores every pair under the reference before training; the losses
    must equal those of a reference forward per step, and a full fine-tune then holds no reference model."""
    data = pairs_dataset(write_pairs(tmp_path / "p.jsonl"))
    runs = {}
    for precompute in ("false", "true"):  # to 1e-5: fp32 on any device
        policy, tok = models.load(ModelArgs(name=str(tiny_model_dir), dtype="float32"))
        cfg = Config(seed=0)
        cfg.train.lora, cfg.train.batch_size, cfg.train.learning_rate = False, 2, 1e-3
        cfg.train.precompute_ref = precompute
        trainer = make_dpo_trainer(cfg, policy, tok, data, str(tmp_path / precompute))
        assert trainer.args.precompute_ref_log_probs is (precompute == "true")
        assert (trainer.ref_model is None) is (precompute == "true")
        trainer.train()
        runs[precompute] = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert len(runs["true"]) == 2 and runs["true"] == pytest.approx(runs["false"], abs=1e-5)
    assert runs["true"][1] != pytest.approx(runs["true"][0], abs=1e-4)  # the second step saw trained weights


def test_gradient_checkpointing_setting_reaches_every_trainer(tiny_model_dir, tmp_path):
    """auto keeps checkpointing on CPU (it cost no speed there) and, on CUDA, turns it off for a step as small as the
    tiny model's; true/false are obeyed by DPO and SFT alike."""
    data = pairs_dataset(write_pairs(tmp_path / "p.jsonl"))
    for setting, expected in (("auto", not torch.cuda.is_available()), ("false", False), ("true", True)):
        cfg = Config(seed=0)
        cfg.train.gradient_checkpointing = setting
        policy, tok = models.load(ModelArgs(name=str(tiny_model_dir)))
        assert make_dpo_trainer(cfg, policy, tok, data, str(tmp_path / "d")).args.gradient_checkpointing is expected
        cfg.method = "sft-self"
        policy, tok = models.load(ModelArgs(name=str(tiny_model_dir)))
        sft = get_method("sft-self").trainer(cfg, policy, tok, tmp_path / "p.jsonl", str(tmp_path / "s"))
        assert sft.args.gradient_checkpointing is expected
    assert Config().fingerprint("train") == cfg.fingerprint("train")  # speed only: a run resumes whatever it is


def test_step_memory_estimate_decides_as_measured_on_gpus():
    """The CUDA auto rule: checkpointing only when step_bytes exceeds 80% of the free memory. Issue 17 ran the
    Llama-3.2-1B shape's full fine-tune (8 pairs, 19,858 tokens a step) without checkpointing on a 141 GB H200, so
    the estimate must let that fit; a 7B full fine-tune (fp32 master weights and AdamW: 16 B/param) cannot fit a
    80 GB card at all, so checkpointing must be on there."""
    from transformers import LlamaConfig

    from mipo.train import step_bytes

    llama1b = LlamaConfig(hidden_size=2048, num_hidden_layers=16, num_attention_heads=32, num_key_value_heads=8,
                          intermediate_size=8192, vocab_size=128256)
    need = step_bytes(llama1b, 1_235_814_400, 19_858, full=True, ref_copy=False)
    free_h200 = 141e9 - 1_235_814_400 * 4  # fp32 master weights loaded
    assert 40e9 < need < 0.8 * free_h200
    assert step_bytes(llama1b, 1_235_814_400, 19_858, full=False, ref_copy=False) < need  # LoRA: no optimizer state
    llama8b = LlamaConfig(hidden_size=4096, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
                          intermediate_size=14336, vocab_size=128256)
    assert step_bytes(llama8b, 8_030_261_248, 8192, full=True, ref_copy=True) > 0.8 * 80e9
    assert step_bytes(llama1b, 1, 2000, False, False) < step_bytes(llama1b, 1, 4000, False, False)
