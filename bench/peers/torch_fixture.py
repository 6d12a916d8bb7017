# The independent implementation behind test/fixtures/torch-train.json: a small LLaMA (Hugging Face
# layout: RMSNorm, rotate-half RoPE, grouped-query attention, SwiGLU, untied LM head) trained for a
# few AdamW steps in PyTorch, float64, with Llama 2's optimizer settings (betas 0.9/0.95, eps 1e-5,
# weight decay 0.1 on matrices only, global-norm clipping at 1.0) at a constant learning rate.
# Weights and tokens come from closed formulas (below and in test/train/torch-fixture.test.ts), so
# nothing binary is committed. longctx never needs Python: this regenerates the fixture only.
#
#   python3 bench/peers/torch_fixture.py > test/fixtures/torch-train.json
import json, math

import torch

torch.set_default_dtype(torch.float64)

CFG = dict(vocab_size=61, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
           num_key_value_heads=2, head_dim=8, rms_norm_eps=1e-5, rope_theta=10000.0)
B, T, STEPS, LR = 2, 24, 6, 3e-3
V, C, F, L = CFG["vocab_size"], CFG["hidden_size"], CFG["intermediate_size"], CFG["num_hidden_layers"]
NH, NKV, HS = CFG["num_attention_heads"], CFG["num_key_value_heads"], CFG["head_dim"]


def tensor_values(k, n, norm):
    # the k-th tensor in Hugging Face parameter order, element i: a gain near 1 or a weight near 0
    return [1 + 0.1 * math.sin(0.7 * i + k) if norm else 0.05 * math.sin(0.37 * i + 1.3 * k) for i in range(n)]


names = [("model.embed_tokens.weight", (V, C))]
for l in range(L):
    p = f"model.layers.{l}."
    names += [(p + "input_layernorm.weight", (C,)), (p + "self_attn.q_proj.weight", (NH * HS, C)),
              (p + "self_attn.k_proj.weight", (NKV * HS, C)), (p + "self_attn.v_proj.weight", (NKV * HS, C)),
              (p + "self_attn.o_proj.weight", (C, NH * HS)), (p + "post_attention_layernorm.weight", (C,)),
              (p + "mlp.gate_proj.weight", (F, C)), (p + "mlp.up_proj.weight", (F, C)), (p + "mlp.down_proj.weight", (C, F))]
names += [("model.norm.weight", (C,)), ("lm_head.weight", (V, C))]
params = {}
for k, (name, shape) in enumerate(names):
    n = math.prod(shape)
    # float32-rounded, as longctx stores weights
    params[name] = torch.tensor(tensor_values(k, n, len(shape) == 1), dtype=torch.float32).to(torch.float64).view(shape).requires_grad_()

tokens = torch.tensor([[(b * 7 + t * 13 + t * t) % V for t in range(T + 1)] for b in range(B)])
x_ids, y_ids = tokens[:, :T], tokens[:, 1:]

inv_freq = 1.0 / (CFG["rope_theta"] ** (torch.arange(0, HS, 2, dtype=torch.float64) / HS))
ang = torch.outer(torch.arange(T, dtype=torch.float64), inv_freq)
cos, sin = torch.cat([ang, ang], -1).cos(), torch.cat([ang, ang], -1).sin()
mask = torch.full((T, T), float("-inf")).triu(1)


def rms(x, w):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + CFG["rms_norm_eps"]) * w


def rot(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), -1)


def loss_fn():
    P = params
    x = P["model.embed_tokens.weight"][x_ids]
    for l in range(L):
        p = f"model.layers.{l}."
        h = rms(x, P[p + "input_layernorm.weight"])
        q = (h @ P[p + "self_attn.q_proj.weight"].T).view(B, T, NH, HS).transpose(1, 2)
        k = (h @ P[p + "self_attn.k_proj.weight"].T).view(B, T, NKV, HS).transpose(1, 2)
        v = (h @ P[p + "self_attn.v_proj.weight"].T).view(B, T, NKV, HS).transpose(1, 2)
        q, k = q * cos + rot(q) * sin, k * cos + rot(k) * sin
        k, v = k.repeat_interleave(NH // NKV, 1), v.repeat_interleave(NH // NKV, 1)
        a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(HS) + mask, -1) @ v
        x = x + a.transpose(1, 2).reshape(B, T, NH * HS) @ P[p + "self_attn.o_proj.weight"].T
        h = rms(x, P[p + "post_attention_layernorm.weight"])
        g = torch.nn.functional.silu(h @ P[p + "mlp.gate_proj.weight"].T) * (h @ P[p + "mlp.up_proj.weight"].T)
        x = x + g @ P[p + "mlp.down_proj.weight"].T
    logits = rms(x, P["model.norm.weight"]) @ P["lm_head.weight"].T
    return torch.nn.functional.cross_entropy(logits.reshape(-1, V), y_ids.reshape(-1))


decay = [p for n, p in params.items() if p.dim() >= 2]
no_decay = [p for n, p in params.items() if p.dim() < 2]
opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                        lr=LR, betas=(0.9, 0.95), eps=1e-5)
losses, norms = [], []
for step in range(STEPS):
    opt.zero_grad()
    loss = loss_fn()
    loss.backward()
    norms.append(float(torch.nn.utils.clip_grad_norm_(list(params.values()), 1.0)))
    losses.append(float(loss))
    opt.step()
with torch.no_grad():
    final = float(loss_fn())
print(json.dumps({
    "source": "bench/peers/torch_fixture.py, PyTorch " + torch.__version__ + ", float64",
    "config": CFG, "batch": B, "seq_len": T, "lr": LR, "steps": STEPS,
    "losses": losses, "grad_norms": norms, "final_loss": final,
}, indent=2))
