import torch

from mipo.generate import logprobs, sample

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


def test_logprobs_match_a_plain_forward_and_ignore_padding(tiny):
    model, tok = tiny
    responses = ["Lentil soup with rice.", "Prices rise over time.", "3 + 4 = 7 #### 7"]
    batched = logprobs(model, tok, PROMPTS, responses, batch_size=3)
    single = logprobs(model, tok, PROMPTS, responses, batch_size=1)
    assert torch.allclose(torch.tensor(batched), torch.tensor(single), atol=1e-4)
    # By hand for the first pair: sum of log-softmax at each response position.
    p = list(tok.apply_chat_template(PROMPTS[0], add_generation_prompt=True, tokenize=True, return_dict=False))
    y = tok(responses[0], add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    with torch.no_grad():
        logits = model(torch.tensor([p + y])).logits[0].log_softmax(-1)
    by_hand = sum(logits[len(p) - 1 + j, t].item() for j, t in enumerate(y))
    assert abs(by_hand - single[0]) < 1e-3
