#!/usr/bin/python3
"""Independent NumPy reference for the Wan2.1 / Wan2.2 DiT forward pass (model/wan/dit.h).

Writes, into the directory given as argv[1], one pair of files per case:
  dit_<case>.weights.safetensors  random weights of a tiny Wan DiT under the official tensor names
                                  (wan-spec.md "Checkpoint names"), F32 (BF16 for t2v_bf16; every
                                  name prefixed with "model.diffusion_model." for t2v_comfy)
  dit_<case>.io.safetensors       F32 inputs latent [C,F,H,W], timestep [1] or [L] (one per
                                  token), context [n, text_dim], optionally y [C',F,H,W] and
                                  clip [257, image_dim], and the expected output velocity
                                  [C_out,F,H,W]; metadata num_heads, case (and lora_strength)
and dit_lora.lora.safetensors (a rank-4 LoRA on block 0, merged by the "lora" case).

The expected velocity is computed in float64 from the stored (float32- or bfloat16-rounded)
values, straight from wan-spec.md "DiT forward" with the details settled by the official code:
Wan2.2 wan/modules/model.py (sinusoidal_embedding_1d, rope_params, rope_apply, WanRMSNorm,
WanSelfAttention, WanCrossAttention, WanAttentionBlock, Head, WanModel.forward / unpatchify) and,
for the Wan2.1 I2V image branch, Wan2.1 wan/modules/model.py (MLPProj, WanI2VCrossAttention).
Nothing here is derived from the C++ implementation: this is the check on it.

Tiny configuration: dim 64, ffn 128, 4 heads (head_dim 16), 2 blocks, text_dim 32, freq_dim 32,
image_dim 48, patch (1,2,2), eps 1e-6, text_len 512. Weights are scaled as model/wan/test_model.cpp
scales its random weights (Linear weights and biases U(±1/sqrt(fan_in)), norm weights U(0.9,1.1),
norm biases U(-0.1,0.1), modulation U(±sqrt(3))/sqrt(dim)); inputs are random normal.
"""

import math
import os
import sys

import numpy as np

from safetensors_np import bf16_round, read_safetensors, write_safetensors

SEED = 20250612

DIM, FFN, HEADS, LAYERS = 64, 128, 4, 2
TEXT_DIM, FREQ_DIM, IMAGE_DIM = 32, 32, 48
PATCH = (1, 2, 2)
EPS = 1e-6
TEXT_LEN = 512
CLIP_TOKENS = 257
# img_emb's two LayerNorms are plain torch.nn.LayerNorm (Wan2.1 model.py, MLPProj): eps 1e-5,
# not the model's 1e-6.
IMG_EMB_EPS = 1e-5
COMFY_PREFIX = "model.diffusion_model."
LORA_RANK, LORA_ALPHA, LORA_STRENGTH = 4, 8.0, 0.75
LORA_MODULES = ["self_attn.q", "self_attn.k", "self_attn.v", "self_attn.o",
                "cross_attn.q", "cross_attn.k", "cross_attn.v", "cross_attn.o", "ffn.0", "ffn.2"]


def f32(a):
    """Rounds to float32 (what a file holds) and returns it as float64 for the reference."""
    return np.asarray(a, dtype=np.float32).astype(np.float64)


# ---------------------------------------------------------------- weights

def weight_specs(in_dim, out_dim, image_branch):
    """(name, shape, fan_in, kind) for every tensor, in checkpoint order (wan-spec names)."""
    specs = []

    def linear(name, out, inp):
        specs.append((name + ".weight", (out, inp), inp, "linear"))
        specs.append((name + ".bias", (out,), inp, "linear"))

    def norm(name, width, bias):
        specs.append((name + ".weight", (width,), width, "norm_weight"))
        if bias:
            specs.append((name + ".bias", (width,), width, "norm_bias"))

    patch_fan_in = in_dim * math.prod(PATCH)
    specs.append(("patch_embedding.weight", (DIM, in_dim) + PATCH, patch_fan_in, "linear"))
    specs.append(("patch_embedding.bias", (DIM,), patch_fan_in, "linear"))
    linear("text_embedding.0", DIM, TEXT_DIM)
    linear("text_embedding.2", DIM, DIM)
    linear("time_embedding.0", DIM, FREQ_DIM)
    linear("time_embedding.2", DIM, DIM)
    linear("time_projection.1", 6 * DIM, DIM)
    for i in range(LAYERS):
        b = f"blocks.{i}."
        for attn in ("self_attn", "cross_attn"):
            for proj in ("q", "k", "v", "o"):
                linear(b + attn + "." + proj, DIM, DIM)
            norm(b + attn + ".norm_q", DIM, False)
            norm(b + attn + ".norm_k", DIM, False)
        if image_branch:
            linear(b + "cross_attn.k_img", DIM, DIM)
            linear(b + "cross_attn.v_img", DIM, DIM)
            norm(b + "cross_attn.norm_k_img", DIM, False)
        norm(b + "norm3", DIM, True)
        linear(b + "ffn.0", FFN, DIM)
        linear(b + "ffn.2", DIM, FFN)
        specs.append((b + "modulation", (1, 6, DIM), DIM, "modulation"))
    linear("head.head", math.prod(PATCH) * out_dim, DIM)
    specs.append(("head.modulation", (1, 2, DIM), DIM, "modulation"))
    if image_branch:
        norm("img_emb.proj.0", IMAGE_DIM, True)
        linear("img_emb.proj.1", IMAGE_DIM, IMAGE_DIM)
        linear("img_emb.proj.3", DIM, IMAGE_DIM)
        norm("img_emb.proj.4", DIM, True)
    return specs


def random_weights(rng, specs):
    """{name: float32 array}, scaled like model/wan/test_model.cpp's random test weights."""
    out = {}
    for name, shape, fan_in, kind in specs:
        bound = 1.0 / math.sqrt(fan_in)
        if kind == "linear":
            v = rng.uniform(-bound, bound, size=shape)
        elif kind == "norm_weight":
            v = rng.uniform(0.9, 1.1, size=shape)
        elif kind == "norm_bias":
            v = rng.uniform(-0.1, 0.1, size=shape)
        else:  # modulation
            v = rng.uniform(-math.sqrt(3.0), math.sqrt(3.0), size=shape) * bound
        out[name] = np.asarray(v, dtype=np.float32)
    return out


# ---------------------------------------------------------------- reference ops (float64)

def linear(x, w, b):
    return x @ w.T + b


def layer_norm(x, eps, w=None, b=None):
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)  # biased, as PyTorch
    y = (x - mean) / np.sqrt(var + eps)
    if w is not None:
        y = y * w
    if b is not None:
        y = y + b
    return y


def rms_norm(x, w, eps):
    return x / np.sqrt((x * x).mean(axis=-1, keepdims=True) + eps) * w


def silu(x):
    return x / (1.0 + np.exp(-x))


def gelu_tanh(x):
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


_erf = np.vectorize(math.erf, otypes=[np.float64])


def gelu_erf(x):
    """nn.GELU() (exact): x·Φ(x)."""
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def attention(q, k, v):
    """q [Lq,H,d], k and v [Lk,H,d] -> [Lq,H,d]; softmax(q·k/sqrt(d)), no mask."""
    s = np.einsum("qhd,khd->hqk", q, k) / math.sqrt(q.shape[-1])
    return np.einsum("hqk,khd->qhd", softmax(s), v)


def sinusoid(dim, t):
    """[L] positions -> [L, dim]: cos of t·10000^(-i/half), then sin (cos first)."""
    half = dim // 2
    freqs = np.power(10000.0, -np.arange(half, dtype=np.float64) / half)
    arg = np.outer(np.asarray(t, dtype=np.float64), freqs)
    return np.concatenate([np.cos(arg), np.sin(arg)], axis=1)


def rope_tables(head_dim, max_pos=1024, theta=10000.0):
    """Angle tables [max_pos, part/2] for the frame, height and width parts of a head."""
    d = head_dim
    tables = []
    for part in (d - 4 * (d // 6), 2 * (d // 6), 2 * (d // 6)):
        inv = 1.0 / np.power(theta, np.arange(0, part, 2, dtype=np.float64) / part)
        tables.append(np.outer(np.arange(max_pos, dtype=np.float64), inv))
    return tables


def rope_positions(grid):
    f, h, w = grid
    fi, hi, wi = np.meshgrid(np.arange(f), np.arange(h), np.arange(w), indexing="ij")
    return fi.reshape(-1), hi.reshape(-1), wi.reshape(-1)


def rope_apply(x, positions):
    """x [L,H,d]; positions (frame, height, width) index arrays [L]. Pairs (2j, 2j+1) are the
    real and imaginary parts of complex channel j, multiplied by exp(i·angle_j(position))."""
    tf, th, tw = rope_tables(x.shape[-1])
    fi, hi, wi = positions
    ang = np.concatenate([tf[fi], th[hi], tw[wi]], axis=-1)  # [L, d/2]
    z = (x[..., 0::2] + 1j * x[..., 1::2]) * np.exp(1j * ang)[:, None, :]
    out = np.empty_like(x)
    out[..., 0::2] = z.real
    out[..., 1::2] = z.imag
    return out


def patch_embed(x, w, b):
    """Conv3d with kernel = stride = PATCH on x [C,F,H,W] -> tokens [L, dim] ordered f, h, w."""
    C, F, H, W = x.shape
    pt, ph, pw = PATCH
    f, h, wd = F // pt, H // ph, W // pw
    assert (f * pt, h * ph, wd * pw) == (F, H, W)
    cols = (x.reshape(C, f, pt, h, ph, wd, pw).transpose(1, 3, 5, 0, 2, 4, 6)
            .reshape(f * h * wd, C * pt * ph * pw))  # each row in (c, p, q, r) order
    return cols @ w.reshape(w.shape[0], -1).T + b, (f, h, wd)


def unpatchify(u, grid, c):
    """[L, pt·ph·pw·c] with columns (p, q, r, c) -> [c, f·pt, h·ph, w·pw]."""
    f, h, w = grid
    pt, ph, pw = PATCH
    return (u.reshape(f, h, w, pt, ph, pw, c).transpose(6, 0, 3, 1, 4, 2, 5)
            .reshape(c, f * pt, h * ph, w * pw))


def patchify_out(v):
    """Inverse of unpatchify: [c, F, H, W] -> [L, pt·ph·pw·c] (self-check only)."""
    c, F, H, W = v.shape
    pt, ph, pw = PATCH
    f, h, w = F // pt, H // ph, W // pw
    return (v.reshape(c, f, pt, h, ph, w, pw).transpose(1, 3, 5, 2, 4, 6, 0)
            .reshape(f * h * w, pt * ph * pw * c))


# ---------------------------------------------------------------- the model

def dit_forward(p, latent, timestep, context, y=None, clip=None, text_keys=TEXT_LEN):
    """p: {official name: float64 array}. Returns the velocity [C_out, F, H, W].

    text_keys < TEXT_LEN masks the padded text rows out of cross-attention; only the self-check
    that shows the reference does NOT do that uses it."""
    d = DIM // HEADS

    def lin(x, name):
        return linear(x, p[name + ".weight"], p[name + ".bias"])

    # Patch embedding (I2V: condition channels appended after the latent's).
    x_in = latent if y is None else np.concatenate([latent, y], axis=0)
    x, grid = patch_embed(x_in, p["patch_embedding.weight"], p["patch_embedding.bias"])
    L = x.shape[0]
    positions = rope_positions(grid)

    # Time: one value per sample (broadcast to every token) or one per token (TI2V).
    t = np.asarray(timestep, dtype=np.float64).reshape(-1)
    if t.size == 1:
        t = np.full(L, t[0])
    assert t.shape == (L,), t.shape
    e = lin(silu(lin(sinusoid(FREQ_DIM, t), "time_embedding.0")), "time_embedding.2")  # [L, dim]
    e0 = lin(silu(e), "time_projection.1").reshape(L, 6, DIM)

    # Text: zero-padded to TEXT_LEN rows before text_embedding, so the padding rows become the
    # embedding of zero (bias terms) and are attended to.
    n = context.shape[0]
    assert n <= TEXT_LEN
    ctx = np.concatenate([context, np.zeros((TEXT_LEN - n, context.shape[1]))], axis=0)
    ctx = lin(gelu_tanh(lin(ctx, "text_embedding.0")), "text_embedding.2")  # [512, dim]
    if clip is not None:  # Wan2.1 I2V: MLPProj over the CLIP tokens, put before the text
        g = layer_norm(clip, IMG_EMB_EPS, p["img_emb.proj.0.weight"], p["img_emb.proj.0.bias"])
        g = lin(gelu_erf(lin(g, "img_emb.proj.1")), "img_emb.proj.3")
        g = layer_norm(g, IMG_EMB_EPS, p["img_emb.proj.4.weight"], p["img_emb.proj.4.bias"])
        ctx = np.concatenate([g, ctx], axis=0)
    n_img = ctx.shape[0] - TEXT_LEN  # WanI2VCrossAttention splits off the last TEXT_LEN rows
    ctx_img, ctx_txt = ctx[:n_img], ctx[n_img:n_img + text_keys]

    def heads(a):
        return a.reshape(a.shape[0], HEADS, d)

    for i in range(LAYERS):
        b = f"blocks.{i}."
        mod = p[b + "modulation"].reshape(1, 6, DIM) + e0  # [L, 6, dim]
        shift_msa, scale_msa, gate_msa, shift_ffn, scale_ffn, gate_ffn = (
            mod[:, j, :] for j in range(6))

        # self-attention: RMSNorm over the full dim before the head split, then RoPE
        h = layer_norm(x, EPS) * (1.0 + scale_msa) + shift_msa
        q = heads(rms_norm(lin(h, b + "self_attn.q"), p[b + "self_attn.norm_q.weight"], EPS))
        k = heads(rms_norm(lin(h, b + "self_attn.k"), p[b + "self_attn.norm_k.weight"], EPS))
        v = heads(lin(h, b + "self_attn.v"))
        a = attention(rope_apply(q, positions), rope_apply(k, positions), v).reshape(L, DIM)
        x = x + lin(a, b + "self_attn.o") * gate_msa

        # cross-attention: norm3 with affine, no modulation, no RoPE, no key mask
        h = layer_norm(x, EPS, p[b + "norm3.weight"], p[b + "norm3.bias"])
        q = heads(rms_norm(lin(h, b + "cross_attn.q"), p[b + "cross_attn.norm_q.weight"], EPS))
        k = heads(rms_norm(lin(ctx_txt, b + "cross_attn.k"), p[b + "cross_attn.norm_k.weight"], EPS))
        v = heads(lin(ctx_txt, b + "cross_attn.v"))
        a = attention(q, k, v)
        if n_img > 0:
            k_img = heads(rms_norm(lin(ctx_img, b + "cross_attn.k_img"),
                                   p[b + "cross_attn.norm_k_img.weight"], EPS))
            v_img = heads(lin(ctx_img, b + "cross_attn.v_img"))
            a = a + attention(q, k_img, v_img)
        x = x + lin(a.reshape(L, DIM), b + "cross_attn.o")

        # feed-forward
        h = layer_norm(x, EPS) * (1.0 + scale_ffn) + shift_ffn
        x = x + lin(gelu_tanh(lin(h, b + "ffn.0")), b + "ffn.2") * gate_ffn

    # head: its own modulation plus e (not e0)
    mod = p["head.modulation"].reshape(1, 2, DIM) + e[:, None, :]
    shift, scale = mod[:, 0, :], mod[:, 1, :]
    out = lin(layer_norm(x, EPS) * (1.0 + scale) + shift, "head.head")
    out_dim = p["head.head.weight"].shape[0] // math.prod(PATCH)
    return unpatchify(out, grid, out_dim)


# ---------------------------------------------------------------- self-checks

def close(a, b, tol=1e-12):
    return np.max(np.abs(a - b)) <= tol * max(1.0, np.max(np.abs(b)))


def rel_diff(a, b):
    return np.max(np.abs(a - b)) / np.max(np.abs(b))


def self_check_ops(rng):
    # RoPE: position (0,0,0) is the identity; rotations keep each pair's norm; the score between
    # a rotated query and key depends only on the position difference.
    x = rng.normal(size=(3, HEADS, DIM // HEADS))
    zero = (np.zeros(3, int), np.zeros(3, int), np.zeros(3, int))
    assert close(rope_apply(x, zero), x), "RoPE at position 0 must be the identity"
    pos = (np.array([1, 4, 7]), np.array([2, 0, 5]), np.array([3, 9, 1]))
    r = rope_apply(x, pos)
    assert close(r[..., 0::2] ** 2 + r[..., 1::2] ** 2, x[..., 0::2] ** 2 + x[..., 1::2] ** 2)
    assert not close(r, x, 1e-3)
    q, k = rng.normal(size=(1, 1, 16)), rng.normal(size=(1, 1, 16))

    def score(pq, pk):
        a = rope_apply(q, tuple(np.array([c]) for c in pq))
        b = rope_apply(k, tuple(np.array([c]) for c in pk))
        return float(np.sum(a * b))
    assert abs(score((1, 2, 3), (0, 1, 1)) - score((5, 7, 9), (4, 6, 7))) < 1e-12
    assert abs(score((1, 2, 3), (0, 1, 1)) - score((1, 2, 3), (0, 1, 2))) > 1e-6
    # Part sizes for head_dim 128 as wan-spec states them: 44/42/42 channels.
    assert [t.shape[1] for t in rope_tables(128)] == [22, 21, 21]
    # Token order is f, h, w (row-major).
    fi, hi, wi = rope_positions((2, 3, 4))
    assert (fi[13], hi[13], wi[13]) == (1, 0, 1)

    # Sinusoid: cos first, then sin.
    s = sinusoid(FREQ_DIM, np.array([0.0, 1.0]))
    assert close(s[0], np.r_[np.ones(FREQ_DIM // 2), np.zeros(FREQ_DIM // 2)])
    assert abs(s[1, 0] - math.cos(1.0)) < 1e-15 and abs(s[1, FREQ_DIM // 2] - math.sin(1.0)) < 1e-15

    # Patch embedding (reshape form) against the convolution written out token by token.
    xin = rng.normal(size=(3, 2, 4, 6))
    w, b = rng.normal(size=(5, 3) + PATCH), rng.normal(size=5)
    tok, grid = patch_embed(xin, w, b)
    assert grid == (2, 2, 3)
    for t, (f, h, ww) in enumerate(zip(*rope_positions(grid))):
        window = xin[:, f:f + 1, 2 * h:2 * h + 2, 2 * ww:2 * ww + 2]
        direct = np.einsum("ocpqr,cpqr->o", w, window) + b
        assert close(tok[t], direct)

    # Unpatchify: the round trip, and one element placed by hand (token (f,h,w), sub-position
    # (p,q,r), channel c -> [c, f·pt+p, h·ph+q, w·pw+r]; head columns ordered p, q, r, c).
    v = rng.normal(size=(5, 3, 4, 6))
    assert close(unpatchify(patchify_out(v), (3, 2, 3), 5), v)
    u = np.zeros((3 * 2 * 3, 4 * 5))
    tok = (2 * 2 + 1) * 3 + 2  # f=2, h=1, w=2
    u[tok, (0 * 4 + 1 * 2 + 0) * 5 + 3] = 1.0  # p=0, q=1, r=0, c=3
    v = unpatchify(u, (3, 2, 3), 5)
    assert v[3, 2, 3, 4] == 1.0 and v.sum() == 1.0

    # Activations and BF16 rounding (to nearest, ties to even).
    assert abs(gelu_erf(np.array([1.0]))[0] - 0.8413447460685429) < 1e-15
    assert abs(gelu_tanh(np.array([1.0]))[0] - 0.8411919906082768) < 1e-15
    ties = np.array([1.0 + 2.0 ** -8, 1.0 + 3 * 2.0 ** -8, 1.0 + 2.0 ** -8 + 2.0 ** -20,
                     -2.5e-3], dtype=np.float32)
    assert list(bf16_round(ties)[:3]) == [1.0, 1.0 + 2.0 ** -6, 1.0 + 2.0 ** -7]
    assert (bf16_round(ties).view(np.uint32) & 0xFFFF == 0).all()


def check_velocity(case, v):
    assert np.all(np.isfinite(v)), case
    std = float(np.std(v))
    assert 0.05 < std < 20.0, f"{case}: velocity std {std} out of range"
    return std


# ---------------------------------------------------------------- cases

def make_case(case_id, in_dim, out_dim, image_branch, latent_shape, timestep, n_text,
              y_channels=0, clip=False, bf16=False):
    rng = np.random.default_rng([SEED, case_id])
    w32 = random_weights(rng, weight_specs(in_dim, out_dim, image_branch))
    if bf16:
        w32 = {k: bf16_round(v) for k, v in w32.items()}
    io = {"latent": f32(rng.normal(size=latent_shape)),
          "timestep": f32(np.atleast_1d(timestep)),
          "context": f32(rng.normal(size=(n_text, TEXT_DIM)))}
    if y_channels:
        io["y"] = f32(rng.normal(size=(y_channels,) + tuple(latent_shape[1:])))
    if clip:
        # Small spread (std 0.02, mean 0.01) so img_emb's LayerNorm eps (1e-5, not 1e-6) and
        # its mean subtraction visibly matter.
        io["clip"] = f32(rng.normal(0.01, 0.02, size=(CLIP_TOKENS, IMAGE_DIM)))
    return w32, io


def run_forward(w32, io):
    p = {k: v.astype(np.float64) for k, v in w32.items()}
    return dit_forward(p, io["latent"], io["timestep"], io["context"], io.get("y"), io.get("clip"))


def write_case(outdir, case, w32, io, velocity, extra_meta=None, prefix="", bf16=False):
    weights = {prefix + k: v for k, v in w32.items()}
    dtypes = {k: "BF16" for k in weights} if bf16 else None
    meta = {"format": "pt", "wanbatch": "dit_reference.py random test weights"}
    wpath = os.path.join(outdir, f"dit_{case}.weights.safetensors")
    write_safetensors(wpath, weights, meta, dtypes)
    tensors = dict(io)
    tensors["velocity"] = velocity
    meta = {"num_heads": str(HEADS), "case": case}
    meta.update(extra_meta or {})
    iopath = os.path.join(outdir, f"dit_{case}.io.safetensors")
    write_safetensors(iopath, tensors, meta)
    # Read both back: what the file holds is exactly what the reference used.
    got, _, got_dtypes = read_safetensors(wpath)
    assert list(got) == list(weights)
    for k, v in weights.items():
        assert got[k].shape == v.shape and np.array_equal(got[k], v.astype(np.float32)), k
        assert got_dtypes[k] == ("BF16" if bf16 else "F32")
    got, got_meta, _ = read_safetensors(iopath)
    for k, v in tensors.items():
        assert np.array_equal(got[k], v.astype(np.float32)), k
    assert got_meta["num_heads"] == str(HEADS) and got_meta["case"] == case


def main():
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} OUTPUT_DIR")
    outdir = sys.argv[1]
    os.makedirs(outdir, exist_ok=True)
    self_check_ops(np.random.default_rng([SEED, 999]))
    report = []

    # t2v: Wan2.1/2.2 T2V, 16 -> 16 channels, 45 tokens, 7 text tokens.
    w, io = make_case(1, 16, 16, False, (16, 3, 6, 10), 937.0, 7)
    v = run_forward(w, io)
    # The padded text rows are attended to: masking them would give a different answer.
    p64 = {k: a.astype(np.float64) for k, a in w.items()}
    masked = dit_forward(p64, io["latent"], io["timestep"], io["context"], text_keys=7)
    assert rel_diff(masked, v) > 1e-3, "padded context rows must change the output"
    write_case(outdir, "t2v", w, io, v)
    report.append(("t2v", v))
    t2v_w, t2v_io, t2v_v = w, io, v

    # t2v_bf16: BF16 weights (the reference uses the rounded values), a 1-token prompt.
    w, io = make_case(2, 16, 16, False, (16, 3, 6, 10), 500.0, 1, bf16=True)
    v = run_forward(w, io)
    write_case(outdir, "t2v_bf16", w, io, v, bf16=True)
    report.append(("t2v_bf16", v))

    # t2v_comfy: ComfyUI names, a full 512-token context (no padding), a 5x1x3 grid, t = 1.
    w, io = make_case(3, 16, 16, False, (16, 5, 2, 6), 1.0, TEXT_LEN)
    v = run_forward(w, io)
    write_case(outdir, "t2v_comfy", w, io, v, prefix=COMFY_PREFIX)
    report.append(("t2v_comfy", v))

    # ti2v: Wan2.2 TI2V-5B layout, 48 -> 48 channels, per-token timestep (0 on the first frame).
    grid = (3, 3, 7)
    per_frame = grid[1] * grid[2]
    t = np.full(math.prod(grid), 700.0)
    t[:per_frame] = 0.0
    w, io = make_case(4, 48, 48, False, (48, 3, 6, 14), t, 11)
    v = run_forward(w, io)
    p64 = {k: a.astype(np.float64) for k, a in w.items()}
    flat = dit_forward(p64, io["latent"], np.array([700.0]), io["context"])
    assert rel_diff(flat[:, 0], v[:, 0]) > 1e-3, "per-token timestep must reach the first frame"
    write_case(outdir, "ti2v", w, io, v)
    report.append(("ti2v", v))

    # i2v: Wan2.2 I2V-A14B layout, 16 latent + 20 condition channels in, 16 out, no image branch.
    w, io = make_case(5, 36, 16, False, (16, 2, 4, 8), 999.0, 5, y_channels=20)
    v = run_forward(w, io)
    write_case(outdir, "i2v", w, io, v)
    report.append(("i2v", v))

    # i2v_clip: Wan2.1 I2V-14B layout with the CLIP image branch.
    w, io = make_case(6, 36, 16, True, (16, 2, 4, 8), 250.0, 9, y_channels=20, clip=True)
    v = run_forward(w, io)
    p64 = {k: a.astype(np.float64) for k, a in w.items()}
    no_img = dit_forward(p64, io["latent"], io["timestep"], io["context"], io["y"])
    assert rel_diff(no_img, v) > 1e-3, "the image branch must change the output"
    write_case(outdir, "i2v_clip", w, io, v)
    report.append(("i2v_clip", v))

    # lora: the t2v weights and inputs, plus a rank-4 LoRA on every Linear of block 0, merged as
    # W + strength·(alpha/rank)·up@down.
    rng = np.random.default_rng([SEED, 7])
    lora, merged = {}, {k: a.astype(np.float64) for k, a in t2v_w.items()}
    for module in LORA_MODULES:
        name = "blocks.0." + module
        out_f, in_f = t2v_w[name + ".weight"].shape
        down = np.asarray(rng.normal(0.0, 1.0 / math.sqrt(in_f), size=(LORA_RANK, in_f)), np.float32)
        up = np.asarray(rng.normal(0.0, 0.1, size=(out_f, LORA_RANK)), np.float32)
        key = "diffusion_model." + name
        lora[key + ".lora_down.weight"] = down
        lora[key + ".lora_up.weight"] = up
        lora[key + ".alpha"] = np.array(LORA_ALPHA, dtype=np.float32)  # shape []
        merged[name + ".weight"] += (LORA_STRENGTH * (LORA_ALPHA / LORA_RANK)
                                     * (up.astype(np.float64) @ down.astype(np.float64)))
    v = dit_forward(merged, t2v_io["latent"], t2v_io["timestep"], t2v_io["context"])
    assert rel_diff(v, t2v_v) > 1e-2, "the LoRA must change the output"
    write_case(outdir, "lora", t2v_w, t2v_io, v, extra_meta={"lora_strength": str(LORA_STRENGTH)})
    lpath = os.path.join(outdir, "dit_lora.lora.safetensors")
    write_safetensors(lpath, lora, {"wanbatch": "dit_reference.py rank-4 LoRA on block 0",
                                    "rank": str(LORA_RANK), "alpha": str(LORA_ALPHA)})
    got, _, _ = read_safetensors(lpath)
    assert got["diffusion_model.blocks.0.ffn.2.alpha"].shape == ()
    report.append(("lora", v))

    for case, v in report:
        std = check_velocity(case, v)
        print(f"dit_reference: {case}: velocity {list(v.shape)} std {std:.4f}")


if __name__ == "__main__":
    main()
