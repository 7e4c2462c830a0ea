"""A tiny causal LM (built here, no download) generates the same greedy tokens with mc.decode_attention
over a KV cache as with dense F.scaled_dot_product_attention under the pattern's dense mask."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import maskc as mc

V, E, H, HKV, LAYERS, MAX_LEN = 40, 32, 4, 2, 2, 48


class TinyLM(nn.Module):
    def __init__(self, pattern: mc.Pattern) -> None:
        super().__init__()
        self.pattern, self.d = pattern, E // H
        self.tok, self.pos = nn.Embedding(V, E), nn.Embedding(MAX_LEN, E)
        self.blocks = nn.ModuleList(nn.ModuleDict({
            "ln1": nn.LayerNorm(E), "q": nn.Linear(E, E), "kv": nn.Linear(E, 2 * HKV * self.d), "o": nn.Linear(E, E),
            "ln2": nn.LayerNorm(E), "mlp": nn.Sequential(nn.Linear(E, 2 * E), nn.GELU(), nn.Linear(2 * E, E)),
        }) for _ in range(LAYERS))
        self.head = nn.Linear(E, V)

    def _qkv(self, blk, x):
        Bn, T, _ = x.shape
        h = blk["ln1"](x)
        q = blk["q"](h).view(Bn, T, H, self.d).transpose(1, 2)
        k, v = blk["kv"](h).view(Bn, T, 2, HKV, self.d).permute(2, 0, 3, 1, 4)
        return q, k, v

    def _finish(self, blk, x, att):
        x = x + blk["o"](att.transpose(1, 2).reshape(x.shape))
        return x + blk["mlp"](blk["ln2"](x))

    def dense_logits(self, ids: torch.Tensor) -> torch.Tensor:
        """Full recompute with SDPA and the pattern's dense mask (GQA by repeating k / v)."""
        n = ids.shape[1]
        mask = torch.from_numpy(self.pattern.dense(n)[0])
        x = self.tok(ids) + self.pos(torch.arange(n))
        for blk in self.blocks:
            q, k, v = self._qkv(blk, x)
            att = F.scaled_dot_product_attention(q, k.repeat_interleave(H // HKV, 1), v.repeat_interleave(H // HKV, 1),
                                                 attn_mask=mask)
            x = self._finish(blk, x, att)
        return self.head(x)

    def step_logits(self, ids: torch.Tensor, position: int, cache: list[tuple[torch.Tensor, torch.Tensor]]):
        """The chunk ``ids`` at ``position``: append its k / v to the preallocated cache, decode."""
        T = ids.shape[1]
        x = self.tok(ids) + self.pos(torch.arange(position, position + T))
        for blk, (kc, vc) in zip(self.blocks, cache):
            q, k, v = self._qkv(blk, x)
            kc[:, :, position:position + T], vc[:, :, position:position + T] = k, v
            x = self._finish(blk, x, mc.decode_attention(q, kc, vc, self.pattern, position))
        return self.head(x)


@pytest.mark.parametrize("pattern", [mc.prime_bird(window=2, global_tokens=1), mc.causal() & mc.window(5)],
                         ids=["prime_bird", "causal_window"])
def test_greedy_generation_matches_dense_sdpa(pattern: mc.Pattern) -> None:
    torch.manual_seed(0)
    model = TinyLM(pattern).eval()
    prompt = torch.randint(0, V, (2, 8))
    steps = 24
    with torch.no_grad():
        dense_ids, dense_logits = prompt, []
        for _ in range(steps):
            logits = model.dense_logits(dense_ids)[:, -1]
            dense_logits.append(logits)
            dense_ids = torch.cat([dense_ids, logits.argmax(-1, keepdim=True)], dim=1)
        shape = (2, HKV, MAX_LEN, E // H)  # preallocated; unwritten slots are NaN and never read
        cache = [(torch.full(shape, float("nan")), torch.full(shape, float("nan"))) for _ in range(LAYERS)]
        logits = model.step_logits(prompt, 0, cache)[:, -1]  # chunked prefill of the prompt
        ids, dec_logits = prompt, []
        for _ in range(steps):
            dec_logits.append(logits)
            nxt = logits.argmax(-1, keepdim=True)
            ids = torch.cat([ids, nxt], dim=1)
            logits = model.step_logits(nxt, ids.shape[1] - 1, cache)[:, -1]
    assert torch.equal(ids, dense_ids)
    assert len(set(ids[:, 8:].flatten().tolist())) > 3  # a real sequence, not one repeated token
    a, b = torch.stack(dec_logits), torch.stack(dense_logits)
    assert float((a - b).norm() / b.norm()) < 1e-5
