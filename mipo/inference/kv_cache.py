"""The one place that reaches into transformers' cache internals (`StaticLayer`, `Cache(layers=...)`).

A static (preallocated) KV cache is written in place at each decode step, where the dynamic cache re-concatenates
the whole cache; `Slots` also makes attention read only the slots written so far, not all `max_cache_len` of them
(attention time is linear in the slots read). Figures: bench/README.md.
"""
from __future__ import annotations

from transformers import DynamicCache, StaticCache
from transformers.cache_utils import Cache, StaticLayer


class Slots(StaticLayer):
    """A static cache layer that returns (and sizes the attention mask to) the filled slots only. `filled` is a
    Python int so the mask size costs no device sync."""

    filled = 0

    def update(self, key_states, value_states, *args, **kwargs):
        keys, values = super().update(key_states, value_states, *args, **kwargs)
        self.filled += key_states.shape[-2]
        return keys[:, :, :self.filled], values[:, :, :self.filled]

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.filled + query_length, 0


def make_cache(model, length: int, slots: bool = True) -> tuple[Cache, bool]:
    """`Slots` layers for `length` positions (slots=False: transformers' `StaticLayer`s, whose attention reads all
    `length` slots: fixed shapes, for a CUDA graph); models with sliding-window layers keep transformers' dynamic
    cache (a static sliding layer wraps around). Returns (cache, static)."""
    layers = StaticCache(config=model.config, max_cache_len=length).layers
    if all(type(layer) is StaticLayer for layer in layers):
        return Cache(layers=[(Slots if slots else StaticLayer)(max_cache_len=length) for _ in layers]), True
    return DynamicCache(config=model.config), False


def dynamic_cache(model) -> DynamicCache:
    return DynamicCache(config=model.config)
