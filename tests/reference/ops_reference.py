#!/usr/bin/python3
"""Independent NumPy reference for the core::ops CPU backend (core/ops.h).

Writes ops_reference.safetensors into the directory given as argv[1]: deterministic random inputs
and the expected outputs of every op, all float32. The expected outputs are computed in float64
from the float32-rounded inputs, straight from the documented semantics in core/ops.h and
wan-spec.md "DiT forward" (3D RoPE as in the official Wan2.2 wan/modules/model.py, rope_params /
rope_apply). Nothing here is derived from the C++ implementation: this is the check on it.
tests/unit/core/ops_*_test.cpp read the file.

Names are "<case>.<role>". Op parameters that are not tensors (eps, scale factors, attention
scale and k_lens, RoPE grid and token offset, conv stride and padding) are stored as small float32
tensors of the same case ("<case>.eps", ...) so the C++ tests read every number from this file.
"""

import json
import math
import os
import struct
import sys

import numpy as np

SEED = 20250611
rng = np.random.default_rng(SEED)
tensors = {}  # name -> float32 array, in insertion order


def f32(a):
    """Rounds to float32 (what the file holds) and returns it as float64 for the reference."""
    return np.asarray(a, dtype=np.float32).astype(np.float64)


def normal(shape, std=1.0, mean=0.0):
    return f32(rng.normal(mean, std, size=shape))


def uniform(shape, low, high):
    return f32(rng.uniform(low, high, size=shape))


def p32(value):
    """A parameter as the C++ side passes it (a float)."""
    return float(np.float32(value))


def put(name, value):
    assert name not in tensors, name
    tensors[name] = np.ascontiguousarray(np.asarray(value, dtype=np.float32))


def param(name, values):
    put(name, np.atleast_1d(np.asarray(values, dtype=np.float64)))


# ---------------------------------------------------------------- reference ops (float64)

def linear_ref(x, w, b):
    y = x @ w.T
    return y if b is None else y + b


def layer_norm_ref(x, w, b, eps):
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)  # biased, as PyTorch
    y = (x - mean) / np.sqrt(var + eps)
    if w is not None:
        y = y * w
    if b is not None:
        y = y + b
    return y


def rms_norm_ref(x, w, eps):
    y = x / np.sqrt((x * x).mean(axis=-1, keepdims=True) + eps)
    return y if w is None else y * w


def gelu_tanh_ref(x):
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def silu_ref(x):
    # x * sigmoid(x), written so that neither branch overflows
    sig = np.where(x >= 0, 1.0 / (1.0 + np.exp(-np.abs(x))),
                   np.exp(-np.abs(x)) / (1.0 + np.exp(-np.abs(x))))
    return x * sig


def softmax_ref(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def attention_ref(q, k, v, scale=None, k_lens=None, bias=None):
    """q [B,Lq,H,D], k [B,Lk,H,D], v [B,Lk,H,Dv] -> [B,Lq,H,Dv]; fully masked queries give 0."""
    B, Lq, H, D = q.shape
    Lk, Dv = k.shape[1], v.shape[3]
    if scale is None:
        scale = 1.0 / math.sqrt(D)
    out = np.zeros((B, Lq, H, Dv))
    for b in range(B):
        n = Lk if k_lens is None else int(k_lens[b])
        if n == 0:
            continue  # every key masked: zeros
        for h in range(H):
            s = (q[b, :, h, :] @ k[b, :n, h, :].T) * scale  # [Lq, n]
            if bias is not None:
                s = s + bias[h, :, :n]
            out[b, :, h, :] = softmax_ref(s) @ v[b, :n, h, :]
    return out


def rope_freqs(head_dim, max_pos=1024, theta=10000.0):
    """Angles [max_pos, head_dim/2]: frame, height and width tables side by side (wan-spec)."""
    d = head_dim
    parts = [d - 4 * (d // 6), 2 * (d // 6), 2 * (d // 6)]
    tables = []
    for dim_part in parts:
        inv = 1.0 / np.power(theta, np.arange(0, dim_part, 2, dtype=np.float64) / dim_part)
        tables.append(np.outer(np.arange(max_pos, dtype=np.float64), inv))
    return tables  # three [max_pos, dim_part/2] angle tables


def rope_ref(x, grid, token_offset):
    """x [L,H,D] holding global tokens token_offset.. token_offset+L-1 of the f*h*w grid."""
    L, H, D = x.shape
    f, h, w = grid
    tf, th, tw = rope_freqs(D)
    out = x.copy()
    for i in range(L):
        t = token_offset + i
        if t >= f * h * w:
            continue  # sequence padding: unchanged
        fi, hi, wi = t // (h * w), (t // w) % h, t % w
        ang = np.concatenate([tf[fi], th[hi], tw[wi]])  # [D/2]
        rot = np.exp(1j * ang)
        z = (x[i, :, 0::2] + 1j * x[i, :, 1::2]) * rot  # pairs (2j, 2j+1) as complex
        out[i, :, 0::2] = z.real
        out[i, :, 1::2] = z.imag
    return out


def conv3d_ref(x, w, b, stride, padding):
    """x [(N,)C,T,H,W], w [O,C,kt,kh,kw]; zero padding (t0,t1,h0,h1,w0,w1); cross-correlation."""
    batched = x.ndim == 5
    if not batched:
        x = x[None]
    N, C, T, H, W = x.shape
    O, _, kt, kh, kw = w.shape
    st, sh, sw = stride
    xp = np.pad(x, ((0, 0), (0, 0), (padding[0], padding[1]), (padding[2], padding[3]),
                    (padding[4], padding[5])))
    To = (T + padding[0] + padding[1] - kt) // st + 1
    Ho = (H + padding[2] + padding[3] - kh) // sh + 1
    Wo = (W + padding[4] + padding[5] - kw) // sw + 1
    out = np.zeros((N, O, To, Ho, Wo))
    for a in range(kt):
        for c in range(kh):
            for e in range(kw):
                patch = xp[:, :, a:a + st * (To - 1) + 1:st, c:c + sh * (Ho - 1) + 1:sh,
                           e:e + sw * (Wo - 1) + 1:sw]  # [N,C,To,Ho,Wo]
                out += np.einsum("nctyx,oc->notyx", patch, w[:, :, a, c, e])
    if b is not None:
        out += b[None, :, None, None, None]
    return out if batched else out[0]


# ---------------------------------------------------------------- cases

def linear_cases():
    x = normal((2, 3, 96))
    w = normal((40, 96), std=1.0 / math.sqrt(96))
    b = normal((40,), std=0.5)
    put("linear_bias.x", x); put("linear_bias.weight", w); put("linear_bias.bias", b)
    put("linear_bias.out", linear_ref(x, w, b))

    x = normal((5, 257), std=2.0)  # odd K, not a multiple of any vector width
    w = normal((33, 257), std=0.1)
    put("linear_nobias.x", x); put("linear_nobias.weight", w)
    put("linear_nobias.out", linear_ref(x, w, None))


def matmul_cases():
    a2, b2 = normal((7, 13)), normal((13, 9))
    put("matmul_2d.a", a2); put("matmul_2d.b", b2); put("matmul_2d.out", a2 @ b2)

    a, b = normal((3, 7, 13)), normal((3, 13, 9))
    put("matmul_batched.a", a); put("matmul_batched.b", b)
    put("matmul_batched.out", np.einsum("bmk,bkn->bmn", a, b))

    a, b = normal((3, 7, 13)), normal((13, 9))
    put("matmul_shared_b.a", a); put("matmul_shared_b.b", b)
    put("matmul_shared_b.out", np.einsum("bmk,kn->bmn", a, b))

    a, b = normal((3, 7, 13)), normal((3, 9, 13))
    put("matmul_transpose_b.a", a); put("matmul_transpose_b.b", b)
    put("matmul_transpose_b.out", np.einsum("bmk,bnk->bmn", a, b))

    a, b = normal((2, 5, 11)), normal((6, 11))
    put("matmul_shared_transpose_b.a", a); put("matmul_shared_transpose_b.b", b)
    put("matmul_shared_transpose_b.out", np.einsum("bmk,nk->bmn", a, b))


def norm_cases():
    # Offset mean so that a missing or wrong mean subtraction shows.
    x = normal((4, 6, 64), std=2.0, mean=3.0)
    w = normal((64,), std=0.3, mean=1.0)
    b = normal((64,), std=0.5)
    eps = p32(1e-6)
    put("layer_norm_affine.x", x); put("layer_norm_affine.weight", w)
    put("layer_norm_affine.bias", b); param("layer_norm_affine.eps", eps)
    put("layer_norm_affine.out", layer_norm_ref(x, w, b, eps))

    x = normal((5, 48), std=0.3, mean=-1.0)
    eps = p32(0.05)  # comparable to the variance: checks eps goes inside the square root
    put("layer_norm_plain.x", x); param("layer_norm_plain.eps", eps)
    put("layer_norm_plain.out", layer_norm_ref(x, None, None, eps))

    # Large mean, unit spread: a one-pass E[x²] − E[x]² variance loses it in fp32.
    x = normal((3, 128), std=1.0, mean=50.0)
    eps = p32(1e-6)
    put("layer_norm_large_mean.x", x); param("layer_norm_large_mean.eps", eps)
    put("layer_norm_large_mean.out", layer_norm_ref(x, None, None, eps))

    x = normal((2, 5, 96), std=1.5)
    w = normal((96,), std=0.3, mean=1.0)
    eps = p32(1e-6)
    put("rms_norm_weight.x", x); put("rms_norm_weight.weight", w); param("rms_norm_weight.eps", eps)
    put("rms_norm_weight.out", rms_norm_ref(x, w, eps))

    x = normal((4, 40), std=0.2)
    eps = p32(0.01)
    put("rms_norm_plain.x", x); param("rms_norm_plain.eps", eps)
    put("rms_norm_plain.out", rms_norm_ref(x, None, eps))


def activation_cases():
    x = np.concatenate([uniform((480,), -8.0, 8.0), f32([-60.0, -20.0, -0.0, 0.0, 1e-4, 20.0, 60.0,
                                                           -100.0, 100.0, 0.5])]).reshape(10, 49)
    put("activation.x", x)
    put("gelu_tanh.out", gelu_tanh_ref(x))
    put("silu.out", silu_ref(x))

    rows = [normal((37,), std=3.0),
            normal((37,), std=3.0) + 1000.0,   # large positive: exp would overflow unshifted
            normal((37,), std=3.0) - 1000.0,   # large negative: exp would underflow to 0/0
            uniform((37,), -50.0, 200.0),
            f32(np.full(37, 7.25)),            # uniform row
            normal((37,), std=0.01)]
    x = f32(np.stack(rows))
    put("softmax_rows.x", x); put("softmax_rows.out", softmax_ref(x))
    x = normal((2, 3, 17), std=2.0)
    put("softmax_3d.x", x); put("softmax_3d.out", softmax_ref(x))


def elementwise_cases():
    a = normal((3, 4, 5))
    for tag, bshape in [("same", (3, 4, 5)), ("trailing2", (4, 5)), ("trailing1", (5,))]:
        b = normal(bshape, std=2.0)
        put(f"add_{tag}.a", a); put(f"add_{tag}.b", b); put(f"add_{tag}.out", a + b)
        put(f"mul_{tag}.a", a); put(f"mul_{tag}.b", b); put(f"mul_{tag}.out", a * b)
    x = normal((50,), std=3.0)
    factor = p32(-0.37)
    put("scale.x", x); param("scale.factor", factor); put("scale.out", x * factor)


def wan_fusion_cases():
    L, D = 6, 64
    x = normal((L, D), std=2.0, mean=0.5)
    y = normal((L, D))
    eps = p32(1e-6)
    for tag, shape in [("vector", (D,)), ("row", (1, D)), ("per_token", (L, D))]:
        shift = normal(shape, std=0.5)
        scale = normal(shape, std=0.3)
        gate = normal(shape, std=0.5)
        n = f"layernorm_modulate_{tag}"
        put(n + ".x", x); put(n + ".shift", shift); put(n + ".scale", scale); param(n + ".eps", eps)
        put(n + ".out", layer_norm_ref(x, None, None, eps) * (1.0 + scale) + shift)
        n = f"gated_residual_{tag}"
        put(n + ".x", x); put(n + ".y", y); put(n + ".gate", gate)
        put(n + ".out", x + y * gate)
        # The residual-then-norm fusion: the updated stream, and the modulated norm of it.
        n = f"residual_layernorm_modulate_{tag}"
        put(n + ".x", x); put(n + ".y", y); put(n + ".gate", gate)
        put(n + ".shift", shift); put(n + ".scale", scale); param(n + ".eps", eps)
        stream = x + y * gate
        put(n + ".x_out", stream)
        put(n + ".out", layer_norm_ref(stream, None, None, eps) * (1.0 + scale) + shift)
    # The same with an affine layer norm (the DiT's norm3), gated by a [D] gate or a plain sum.
    weight = normal((D,), std=0.3, mean=1.0)
    bias = normal((D,), std=0.5)
    gate = normal((D,), std=0.5)
    for tag, stream in [("gated", x + y * gate), ("sum", x + y)]:
        n = f"residual_layer_norm_{tag}"
        put(n + ".x", x); put(n + ".y", y); put(n + ".weight", weight); put(n + ".bias", bias)
        param(n + ".eps", eps)
        if tag == "gated":
            put(n + ".gate", gate)
        put(n + ".x_out", stream)
        put(n + ".out", layer_norm_ref(stream, weight, bias, eps))


def attention_cases():
    def qkv(B, Lq, Lk, H, D, Dv):
        return normal((B, Lq, H, D), std=1.5), normal((B, Lk, H, D), std=1.5), normal((B, Lk, H, Dv))

    def store(n, q, k, v, out, **params):
        put(n + ".q", q); put(n + ".k", k); put(n + ".v", v)
        for key, value in params.items():
            if key == "bias":
                put(n + ".bias", value)
            else:
                param(n + "." + key, value)
        put(n + ".out", out)

    q, k, v = qkv(2, 5, 7, 3, 16, 16)
    store("attention_basic", q, k, v, attention_ref(q, k, v))

    q, k, v = qkv(2, 4, 9, 2, 16, 8)  # Dv != D, custom scale
    store("attention_scale_dv", q, k, v, attention_ref(q, k, v, scale=p32(0.3)),
          scale=0.3)

    q, k, v = qkv(3, 4, 8, 2, 8, 8)
    k_lens = [8, 3, 0]  # full, partial, every key masked (zeros)
    store("attention_k_lens", q, k, v, attention_ref(q, k, v, k_lens=k_lens), k_lens=k_lens)

    q, k, v = qkv(2, 5, 6, 3, 8, 8)
    bias = normal((3, 5, 6), std=2.0)
    store("attention_bias", q, k, v, attention_ref(q, k, v, bias=bias), bias=bias)

    q, k, v = qkv(2, 3, 6, 2, 8, 4)
    bias = normal((2, 3, 6), std=2.0)
    k_lens = [4, 6]
    store("attention_bias_k_lens", q, k, v, attention_ref(q, k, v, k_lens=k_lens, bias=bias),
          bias=bias, k_lens=k_lens)


def rope_cases():
    D, H = 128, 2
    grid = (3, 4, 6)  # 72 tokens; f, h, w all different so a swapped axis shows
    n_real = grid[0] * grid[1] * grid[2]

    def case(n, L, heads, grid, offset):
        x = normal((L, heads, D))
        put(n + ".x", x); param(n + ".grid", grid); param(n + ".token_offset", offset)
        put(n + ".out", rope_ref(x, grid, offset))

    case("rope_full_padded", n_real + 6, H, grid, 0)  # whole sequence plus 6 padding tokens
    case("rope_rank_slice", 24, H, grid, 24)          # a middle Ulysses rank: tokens 24..47
    case("rope_rank_tail", 20, H, grid, 60)           # last rank: tokens 60..71 real, 72..79 padding
    # A 480p 81-frame grid (21×30×52): large positions, a slice deep into the sequence.
    case("rope_large_grid", 16, 1, (21, 30, 52), 30000)


def conv3d_cases():
    def case(n, x, w, b, stride, padding):
        put(n + ".x", x); put(n + ".weight", w)
        if b is not None:
            put(n + ".bias", b)
        param(n + ".stride", stride); param(n + ".padding", padding)
        put(n + ".out", conv3d_ref(x, w, b, stride, padding))

    # Patch embedding: kernel = stride = (1, 2, 2), no padding, [C,T,H,W].
    case("conv3d_patch", normal((4, 3, 8, 10)), normal((6, 4, 1, 2, 2), std=0.3),
         normal((6,), std=0.5), (1, 2, 2), (0, 0, 0, 0, 0, 0))
    # Causal VAE conv: t padded (2, 0), h and w (1, 1), batched [N,C,T,H,W].
    case("conv3d_causal_batched", normal((2, 3, 5, 6, 7)), normal((4, 3, 3, 3, 3), std=0.2),
         normal((4,), std=0.5), (1, 1, 1), (2, 0, 1, 1, 1, 1))
    # Asymmetric padding on every axis, strides that do not divide evenly, no bias.
    case("conv3d_asymmetric_nobias", normal((3, 4, 7, 9)), normal((5, 3, 3, 3, 2), std=0.2),
         None, (2, 2, 1), (2, 0, 0, 1, 1, 0))


def write_safetensors(path, items):
    header, offset, blobs = {}, 0, []
    for name, arr in items.items():
        data = arr.astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(arr.shape),
                        "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * ((8 - len(text) % 8) % 8)  # pad so the data starts 8-byte aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)


def main():
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} OUTPUT_DIR")
    linear_cases()
    matmul_cases()
    norm_cases()
    activation_cases()
    elementwise_cases()
    wan_fusion_cases()
    attention_cases()
    rope_cases()
    conv3d_cases()
    for name, arr in tensors.items():
        assert np.all(np.isfinite(arr)), name
    os.makedirs(sys.argv[1], exist_ok=True)
    path = os.path.join(sys.argv[1], "ops_reference.safetensors")
    tmp = path + ".tmp"
    write_safetensors(tmp, tensors)
    os.replace(tmp, path)  # never leave a half-written fixture behind


if __name__ == "__main__":
    main()
