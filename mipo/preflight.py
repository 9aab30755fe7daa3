"""Checks a stage makes before any work (before weights load, before the run directory is written), each refusing in
one line that names the file, line and field, or the setting:

- data rows and pairs whose text holds the tokenizer's special-token strings: its tokenizer reads them as control
  tokens wherever they stand, so `<|im_end|>\\n<|im_start|>assistant\\n…` inside a request is an assistant turn
  forged in the prompt the model is trained and scored on (`task.allow_special_tokens` lets them through, logged);
- the pairs `mipo train` reads: every line parses and holds the method's fields, found before the weights load;
- the servers a stage calls (the openai engine's, the judge's, evaluate.engine's): one cheap request each, before any
  sampling.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path

from . import models
from .config import Config
from .io import MipoError, iter_jsonl

log = logging.getLogger("mipo")

ALLOW = "--task.allow_special_tokens true"
PAIR_MESSAGES = ("prompt", "chosen", "rejected", "negative_prompt")  # the message lists a pairs.jsonl row may hold


def tokenizer(cfg: Config):
    """The model's tokenizer alone, no weights: what the special-token checks read."""
    path = models.resolve(cfg.model)
    if not Path(path).is_dir():
        models.check_hub(path)
    return models.load_tokenizer(path, cfg.model.trust_remote_code)


def special_pattern(tok) -> re.Pattern | None:
    """A regex matching any string the tokenizer turns into a special token (`all_special_tokens` and the added tokens
    flagged special), the longest first so a match names the whole token; None when it has none."""
    found = set(tok.all_special_tokens) | {t.content for t in tok.added_tokens_decoder.values() if t.special}
    found = sorted((s for s in found if s.strip()), key=lambda s: (-len(s), s))
    return re.compile("|".join(map(re.escape, found))) if found else None


def refusal(where: str, field: str, token: str) -> MipoError:
    return MipoError(f"{where}: field '{field}' holds {token!r}, a special token of the model's tokenizer, which would "
                     f"read it as a control token, not text (a chat-template marker forges a turn); remove it, or "
                     f"pass {ALLOW} to keep it")


def passed_through(n: int, what: str, where: str, field: str, token: str) -> None:
    """task.allow_special_tokens: the rows that hold special tokens go on, and the log says how many and where."""
    log.warning("task.allow_special_tokens: special-token strings kept as control tokens in %d %s%s (first: %s field "
                "'%s', %r)", n, what, "" if n == 1 else "s", where, field, token)


def refuse_special_tokens(cfg: Config, task, tok, *groups: list) -> None:
    """Refuse an item whose prompt (its request, context, choices, system turn) or reference holds a special-token
    string, naming the row and the field it came from."""
    pattern = special_pattern(tok)
    if pattern is None:
        return
    hits = []
    for items in groups:
        for it in items:
            texts = [m.get("content") for m in task.messages(it)] + [it.reference]
            found = next((m for t in texts if isinstance(t, str) and (m := pattern.search(t))), None)
            if found is None:
                continue
            if not cfg.task.allow_special_tokens:
                raise refusal(it.where, source_field(task, cfg.task, it.where, found), found.group())
            hits.append((it.where, found))
    if hits:
        where, found = hits[0]
        passed_through(len(hits), "item", where, source_field(task, cfg.task, where, found), found.group())


def source_field(task, args, where: str, found: re.Match) -> str:
    """The field of the row at `where` whose text holds the token `found` matched in a prompt (read only for the
    message: the rows are read again). Nested fields are dotted (`choices.text`), mipo's own join keys (`_survey`)
    left out; among several fields, one whose whole text is in that prompt. 'prompt' when none is found."""
    token, prompt = found.group(), found.string
    for split in dict.fromkeys((args.train_split, args.eval_split)):
        for w, row in task.rows(args, split):
            if w == where:
                fields = list(_holding(row, token))
                best = [f for f, v in fields if v.strip() in prompt] or [f for f, _ in fields]
                return best[0] if best else "prompt"
    return "prompt"


def _holding(value, token: str, path: tuple[str, ...] = ()):
    """(dotted field, text) of every string in a row that holds `token`, looking into nested fields."""
    if isinstance(value, str):
        if token in value:
            yield ".".join(p for p in path if not p.startswith("_")) or "prompt", value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _holding(v, token, (*path, str(k)))
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _holding(v, token, path)


def check_pairs(cfg: Config, path: Path, fields: tuple[str, ...]) -> None:
    """What `mipo train` reads, checked before the weights load: every line parses, every row holds the method's
    `fields`, no message holds a special-token string (unless task.allow_special_tokens)."""
    pattern, n, hits = special_pattern(tokenizer(cfg)), 0, []
    for where, row in iter_jsonl(path):
        n += 1
        for k in fields:
            if not row.get(k):
                raise MipoError(f"{where}: field '{k}' is missing or empty")
        for k in PAIR_MESSAGES if pattern else ():
            value = row.get(k)
            texts = [m.get("content") if isinstance(m, dict) else m for m in value] if isinstance(value, list) else [value]
            found = next((m.group() for t in texts if isinstance(t, str) and (m := pattern.search(t))), None)
            if found and not cfg.task.allow_special_tokens:
                raise refusal(where, k, found)
            if found:
                hits.append((where, k, found))
                break
    if not n:
        raise MipoError(f"{path}: no pairs to train on")
    if hits:
        passed_through(len(hits), "pair", *hits[0])


def check_servers(cfg: Config, engine: bool = True, judge: bool = True) -> None:
    """Probe the servers the stage will call, before any work: the openai engine's (`engine`) and the judge's
    (`judge`); a refusal names the setting that points there."""
    g, e = cfg.generate, cfg.evaluate
    if engine and g.engine == "openai":
        from .inference.openai import probe

        if not g.base_url:
            raise MipoError("generate.engine=openai needs generate.base_url, e.g. http://localhost:8000/v1")
        probe(g.base_url, "generate.base_url", g.api_key_env, "generate.api_key_env")
    if judge and e.judge == "openai":
        from .inference.openai import probe

        probe(e.judge_base_url, "evaluate.judge_base_url", e.judge_api_key_env, "evaluate.judge_api_key_env")


def check_eval_engine(cfg: Config, reach: bool = True, trained: int | None = None) -> None:
    """evaluate.engine's settings before any work and, with `reach`, its servers (one cheap request each).
    `trained`: how many trained models evaluation samples (None = cfg.method's: 0 or 1). `mipo run` and `mipo
    compare` check the settings alone up front (reach False): the trained model is served once it is trained."""
    from .evaluation.sampler import check, served
    from .methods import get_method

    if trained is None:
        trained = int(not cfg.evaluate.base_only and get_method(cfg.method).trains)
    check(cfg, trained)
    if reach and cfg.evaluate.engine == "openai":
        from .inference.openai import probe

        s = served(cfg, trained)
        urls = {s.base_url: s.base_setting, **({s.trained_url: s.trained_setting} if trained else {})}
        for url, setting in urls.items():
            probe(url, setting, cfg.generate.api_key_env, "generate.api_key_env")
