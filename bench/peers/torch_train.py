# PyTorch peer for `longctx bench train`: the same LLaMA (HF layout: RMSNorm, rotate-half RoPE,
# grouped-query attention, SwiGLU, untied or tied LM head), the same batch and AdamW, timed per step.
# Optional: longctx never needs Python; the benchmark uses this only to report a ratio.
# Config comes as JSON in LONGCTX_PEER_CONFIG: {model: <HF config>, seq_len, batch_size, steps, warmup}.
import json, math, os, resource, time

import torch
import torch.nn.functional as F

cfg = json.loads(os.environ["LONGCTX_PEER_CONFIG"])
m, T, B = cfg["model"], cfg["seq_len"], cfg["batch_size"]
steps, warmup = cfg.get("steps", 5), cfg.get("warmup", 1)
torch.manual_seed(0)
torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))

V, C, Fd, L = m["vocab_size"], m["hidden_size"], m["intermediate_size"], m["num_hidden_layers"]
NH = m["num_attention_heads"]
NKV = m.get("num_key_value_heads", NH)
HS = m.get("head_dim", C // NH)
eps = m.get("rms_norm_eps", 1e-6)
theta = m.get("rope_theta", 10000.0)
tied = m.get("tie_word_embeddings", False)


class RMSNorm(torch.nn.Module):
    def __init__(self, d):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(d))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * self.weight


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.ln1, self.ln2 = RMSNorm(C), RMSNorm(C)
        self.q = torch.nn.Linear(C, NH * HS, bias=False)
        self.k = torch.nn.Linear(C, NKV * HS, bias=False)
        self.v = torch.nn.Linear(C, NKV * HS, bias=False)
        self.o = torch.nn.Linear(NH * HS, C, bias=False)
        self.gate = torch.nn.Linear(C, Fd, bias=False)
        self.up = torch.nn.Linear(C, Fd, bias=False)
        self.down = torch.nn.Linear(Fd, C, bias=False)

    def forward(self, x, cos, sin, mask):
        h = self.ln1(x)
        q = self.q(h).view(B, T, NH, HS).transpose(1, 2)
        k = self.k(h).view(B, T, NKV, HS).transpose(1, 2)
        v = self.v(h).view(B, T, NKV, HS).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        if NKV != NH:
            k = k.repeat_interleave(NH // NKV, dim=1)
            v = v.repeat_interleave(NH // NKV, dim=1)
        att = (q @ k.transpose(-1, -2)) / math.sqrt(HS) + mask  # torch 1.13 has no fused SDPA
        y = torch.softmax(att, dim=-1) @ v
        x = x + self.o(y.transpose(1, 2).reshape(B, T, NH * HS))
        h = self.ln2(x)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


class Llama(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(V, C)
        self.layers = torch.nn.ModuleList([Block() for _ in range(L)])
        self.norm = RMSNorm(C)
        self.lm_head = torch.nn.Linear(C, V, bias=False)
        if tied:
            self.lm_head.weight = self.embed.weight
        inv = 1.0 / (theta ** (torch.arange(0, HS, 2).float() / HS))
        ang = torch.outer(torch.arange(T).float(), inv)
        emb = torch.cat((ang, ang), dim=-1)
        self.register_buffer("cos", emb.cos()[None, None])
        self.register_buffer("sin", emb.sin()[None, None])
        self.register_buffer("mask", torch.full((T, T), float("-inf")).triu(1))

    def forward(self, idx, targets):
        x = self.embed(idx)
        for blk in self.layers:
            x = blk(x, self.cos, self.sin, self.mask)
        logits = self.lm_head(self.norm(x))
        return F.cross_entropy(logits.view(-1, V), targets.view(-1))


model = Llama()
opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), eps=1e-5, weight_decay=0.1)
times, losses = [], []
for i in range(warmup + steps):
    idx = torch.randint(0, V, (B, T))
    tgt = torch.randint(0, V, (B, T))
    t0 = time.perf_counter()
    opt.zero_grad(set_to_none=True)
    loss = model(idx, tgt)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    dt = time.perf_counter() - t0
    if i >= warmup:
        times.append(dt)
        losses.append(loss.item())
times.sort()
med = times[len(times) // 2]
print(json.dumps({
    "peer": "pytorch " + torch.__version__,
    "threads": torch.get_num_threads(),
    "step_seconds": med,
    "tokens_per_second": B * T / med,
    "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    "loss": losses[-1] if losses else None,
}))
