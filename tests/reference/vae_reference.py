#!/usr/bin/python3
"""Independent NumPy reference for the Wan2.1 (z16) and Wan2.2 (z48) video VAEs (float64).

Writes, into the directory given as argv[1]:
  vae21.weights.safetensors  random F32 weights of a Wan2.1 `WanVAE_` under the official
                             state-dict names (those of Wan2.1_VAE.pth; `--list-keys` prints them
                             with their shapes); metadata: the configuration (see below)
  vae21.io.safetensors       latents [16,3,2,3] (normalised, as the DiT produces them, ~N(0,1))
                             -> video [3,9,16,24] = decode(latents), clamped to [-1,1];
                             video_in [3,9,16,24] (a smooth pattern in [-1,1])
                             -> latents_out [16,3,2,3] = encode(video_in), the normalised mean;
                             also video_unclamped [3,9,16,24] (decode before the clamp), mu_raw
                             [16,3,2,3] (encode before (mu - mean)/std) and latents_mean /
                             latents_std [16] (the Wan2_1_VAE constants); metadata: case and the
                             configuration
  vae22.weights.safetensors  the same for a Wan2.2 `WanVAE_` (the TI2V-5B VAE)
  vae22.io.safetensors       latents [48,2,2,2] -> video [3,5,32,32]; video_in [3,5,32,32] ->
                             latents_out [48,2,2,2]; video_unclamped, mu_raw, latents_mean /
                             latents_std [48]
No batch dimension anywhere: videos are [C, F, H, W], latents [z, f, h, w].

CHANNEL WIDTH. The real base widths (2.1: dim 96; 2.2: encoder dim 160, decoder dec_dim 256) give
127M / ~700M parameters (0.5 / 2.8 GB in F32), far over a test fixture's budget. The fixtures keep
everything else of the real architectures (z_dim 16 / 48, dim_mult [1,2,4,4], num_res_blocks 2,
attn_scales [], temperal_downsample [False,True,True], the patchify, every module and tensor name)
and shrink only the base width: 2.1 dim = 12 (so dims 12/24/48, 2*z = 32 differs from all of
them), 2.2 dim = 10 and dec_dim = 16 (the real 160:256 ratio). Every tensor shape follows from
(dim, dec_dim, z_dim) exactly as in the official modules (`--list-keys` prints the fixture
shapes, `--list-keys real` those of the released checkpoints, which the script also checks
against known shapes and counts: 194 tensors / 126,892,531 parameters for Wan2.1_VAE.pth, 196 /
704,688,668 for Wan2.2_VAE.pth). The metadata of all four files carries dim, dec_dim, z_dim,
dim_mult, num_res_blocks, attn_scales, temperal_downsample, patch_size, cache_t, clamp and
real_dim (the released widths "dim,dec_dim").

SOURCES. Everything is taken from the official code, wan/modules/vae2_1.py and vae2_2.py of
Wan-Video/Wan2.2 (and wan-spec.md "VAEs"); nothing from the C++ implementation:
  * CausalConv3d: padding (2*pt, 0) in time (past side only), (ph, ph), (pw, pw) in space; a
    cache (the previous chunk's last CACHE_T = 2 input frames) is prepended and the zero padding
    shrinks by its length (so a 1-frame cache still gets 1 zero frame in front).
  * the cache rule used by every 3x3x3 conv of ResidualBlock / Encoder3d / Decoder3d (conv1, head):
    cache <- last 2 frames of the conv's *input*; when the chunk has a single frame and a previous
    cache exists, that cache's last frame is put in front. 1x1x1 convs (shortcut, conv1, conv2)
    never use a cache (their padding is 0).
  * RMS_norm: F.normalize over the channel axis (x / max(||x||_2, 1e-12)) * sqrt(C) * gamma; no
    bias (bias=False everywhere, so no `.bias` key). gamma is [C,1,1,1] (images=False) in residual
    blocks and heads, [C,1,1] (images=True) in the attention block.
  * ResidualBlock: residual = [RMS_norm, SiLU, conv3 (2), RMS_norm, SiLU, Dropout(0), conv3 (6)],
    shortcut = 1x1x1 CausalConv3d when in != out, else identity; out = residual(x) + shortcut(x).
  * AttentionBlock: per frame, one head of width C over the h*w positions: RMS_norm, to_qkv
    (1x1 Conv2d, C -> 3C; q, k, v = channel thirds in that order), softmax(q k^T / sqrt(C)) v,
    proj (1x1 Conv2d), + identity.
  * Resample: upsample = nearest-exact x2 in h, w (= pixel repeat for an exact factor 2), then a
    3x3 Conv2d pad 1 to dim//2 channels (2.1) or dim channels (2.2); upsample3d first runs
    time_conv (CausalConv3d dim -> 2*dim, kernel (3,1,1), padding (1,0,0)) and interleaves the two
    channel halves in time (frame 2t from channels [0, dim), frame 2t+1 from [dim, 2*dim)).
    Chunked: on the first chunk the cache slot is set to "Rep" and time_conv is skipped (1 frame
    in, 1 frame out); on the next chunk time_conv runs with zero padding (no cache) and the cache
    becomes [0, x] for a 1-frame chunk; later chunks use the cache. So frame 0 passes through and
    the causal conv runs over frames 1.. as one sequence: 1 + 2(T-1) frames.
    downsample = ZeroPad2d (0,1,0,1) (right and bottom) then a 3x3 Conv2d stride 2;
    downsample3d then runs time_conv (dim -> dim, kernel (3,1,1), stride 2, no padding): on the
    first chunk it is skipped (the frame is stored), later chunks are prepended with the last
    frame of the previous chunk (after the spatial conv). So frame 0 passes through and the
    valid stride-2 conv runs over the whole sequence: 1 + (T-1)/2 frames.
    The order is: temporal then spatial for upsampling, spatial then temporal for downsampling.
  * Encoder3d / Decoder3d / WanVAE_ layouts (module indices give the key names); the 2.1 decoder
    halves in_dim at levels 1, 2, 3 (the upsample convs output dim//2). 2.2: patchify
    "b c f (h q) (w r) -> b (c r q) f h w" with q = r = 2 (channel = c*4 + r*2 + q, i.e. the w
    sub-position before the h sub-position), encoder conv1 12 -> dim, decoder head -> 12,
    unpatchify inverse; Down_ResidualBlock = residual blocks (+ Resample) + AvgDown3D shortcut
    of the block input (always, also for the last level where it is the identity);
    Up_ResidualBlock = residual blocks (+ Resample) + DupUp3D shortcut only when up_flag (not at
    the last level: there the block input is not added). AvgDown3D pads zero frames in *front* to
    a multiple of factor_t, groups (t, h, w) sub-positions into channels (c, kt, kh, kw) and
    averages groups of in*factor/out consecutive channels; DupUp3D repeat_interleaves channels
    and spreads them back to (out, kt, kh, kw); on the first decode chunk it drops the first
    factor_t - 1 frames.
  * WanVAE_.encode: frames split 1, 4, 4, ... (trailing frames beyond 1 + 4k ignored), the
    encoder run per chunk with the cache, outputs concatenated, conv1 (1x1x1, 2z -> 2z), mu =
    first z channels, mu = (mu - mean) * (1/std). WanVAE_.decode: z = z / (1/std) + mean,
    conv2 (1x1x1) over all frames, then the decoder one latent frame at a time with the cache
    (the first latent frame gives 1 frame, every later one 4); Wan2_x_VAE.decode clamps to
    [-1, 1]. The official code runs under autocast(float32) / float32; here everything is
    float64 from the stored float32 values.
The fixtures are computed with the chunked, cached algorithm as written in the official code.
As a self-check, the same network is also run as one whole sequence with the semantics derived
above (first frame passes through the temporal resamplers, DupUp3D drops its first factor_t - 1
frames, AvgDown3D pads in front); both must agree to rounding.

Further self-checks: conv_valid (im2col) against explicit loops; a cached causal conv over
chunks [1,4,4], [1]*9, [1,2,2,4], [3,3,3] equals the conv over the whole zero-padded sequence;
upsample3d / downsample3d chunked == whole semantics, frame counts 1 + 2(T-1) / 1 + (T-1)/2, the
"Rep" slot and the [0, x] cache; patchify/unpatchify round trip and channel order; AvgDown3D /
DupUp3D shapes and element placement; the attention block against a per-position loop; every
weight used; decode of the first k latent frames == the first 1 + 4(k-1) frames of the full
decode (and encode likewise), 1 + 4(T-1) frames, stride 8 (2.1) / 16 (2.2); the clamp is in
[-1, 1] and really cuts some values; files read back bit-exactly.

WEIGHTS. Conv weights U(-a, a) with a = gain * sqrt(3 / fan_in) (variance gain^2 / fan_in,
fan_in = in_channels * kernel volume), gain 1 except the second conv of each residual block
(RES_GAIN = 0.7) so that the residual stream does not grow much; conv biases U(-0.05, 0.05);
RMS gammas U(0.9, 1.1). Inputs: latents N(0, 1); video_in two travelling sine waves per channel
(|v| <= 0.9). The script prints the activation RMS at the main stages of each network (all
between 0.3 and 2.2); about 9% (2.1) / 5% (2.2) of the decoded values are clamped.
"""

import math
import os
import sys
import time

import numpy as np

from safetensors_np import read_safetensors, write_safetensors

SEED = 20250613
CACHE_T = 2
NORM_EPS = 1e-12          # F.normalize's default eps
REP = "Rep"               # Resample's first-chunk cache marker (upsample3d)

DIM_MULT = [1, 2, 4, 4]
NUM_RES_BLOCKS = 2
TEMPERAL_DOWNSAMPLE = [False, True, True]  # both Wan2_1_VAE (via _video_vae) and Wan2_2_VAE
DIM21 = 12                 # real: 96
DIM22, DEC_DIM22 = 10, 16  # real: 160, 256
RES_GAIN = 0.7

MEAN21 = [-0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508,
          0.4134, -0.0715, 0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921]
STD21 = [2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
         3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.9160]
MEAN22 = [-0.2289, -0.0052, -0.1323, -0.2339, -0.2799, 0.0174, 0.1838, 0.1557,
          -0.1382, 0.0542, 0.2813, 0.0891, 0.1570, -0.0098, 0.0375, -0.1825,
          -0.2246, -0.1207, -0.0698, 0.5109, 0.2665, -0.2108, -0.2158, 0.2502,
          -0.2055, -0.0322, 0.1109, 0.1567, -0.0729, 0.0899, -0.2799, -0.1230,
          -0.0313, -0.1649, 0.0117, 0.0723, -0.2839, -0.2083, -0.0520, 0.3748,
          0.0152, 0.1957, 0.1433, -0.2944, 0.3573, -0.0548, -0.1681, -0.0667]
STD22 = [0.4765, 1.0364, 0.4514, 1.1677, 0.5313, 0.4990, 0.4818, 0.5013,
         0.8158, 1.0344, 0.5894, 1.0901, 0.6885, 0.6165, 0.8454, 0.4978,
         0.5759, 0.3523, 0.7135, 0.6804, 0.5833, 1.4146, 0.8986, 0.5659,
         0.7069, 0.5338, 0.4889, 0.4917, 0.4069, 0.4999, 0.6866, 0.4093,
         0.5709, 0.6065, 0.6415, 0.4944, 0.5726, 1.2042, 0.5458, 1.6887,
         0.3971, 1.0600, 0.3943, 0.5537, 0.5444, 0.4089, 0.7468, 0.7744]


def f32(a):
    """Rounds to float32 (what a file holds) and returns it as float64 for the reference."""
    return np.asarray(a, dtype=np.float32).astype(np.float64)


# ---------------------------------------------------------------- float64 primitives

def conv_valid(x, w, b, stride=(1, 1, 1)):
    """Unpadded 3D cross-correlation by im2col + one matmul.

    x [C, T, H, W], w [O, C, kt, kh, kw], b [O] -> [O, T', H', W']."""
    c = x.shape[0]
    o, cw, kt, kh, kw = w.shape
    assert c == cw, (x.shape, w.shape)
    win = np.lib.stride_tricks.sliding_window_view(x, (kt, kh, kw), axis=(1, 2, 3))
    win = win[:, ::stride[0], ::stride[1], ::stride[2]]
    to, ho, wo = win.shape[1:4]
    cols = win.transpose(0, 4, 5, 6, 1, 2, 3).reshape(c * kt * kh * kw, to * ho * wo)
    return (w.reshape(o, -1) @ cols + b[:, None]).reshape(o, to, ho, wo)


def conv_direct(x, w, b, stride=(1, 1, 1)):
    """The same by explicit loops over the output (for the self-check of conv_valid)."""
    o, c, kt, kh, kw = w.shape
    to = (x.shape[1] - kt) // stride[0] + 1
    ho = (x.shape[2] - kh) // stride[1] + 1
    wo = (x.shape[3] - kw) // stride[2] + 1
    out = np.zeros((o, to, ho, wo))
    for t in range(to):
        for i in range(ho):
            for j in range(wo):
                t0, i0, j0 = t * stride[0], i * stride[1], j * stride[2]
                patch = x[:, t0:t0 + kt, i0:i0 + kh, j0:j0 + kw]
                out[:, t, i, j] = np.tensordot(w, patch, axes=4) + b
    return out


def pad_thw(x, front=0, hw=(0, 0, 0, 0)):
    """Zero padding: `front` frames before the first, (top, bottom, left, right) in space."""
    return np.pad(x, ((0, 0), (front, 0), (hw[0], hw[1]), (hw[2], hw[3])))


def silu(x):
    return 0.5 * x * (1.0 + np.tanh(0.5 * x))  # = x * sigmoid(x), without overflow


def rms(x):
    return float(np.sqrt(np.mean(np.square(x))))


def patchify(x, p=2):
    """[C, F, H*p, W*p] -> [C*p*p, F, H, W], channel = (c*p + r)*p + q (h = h'*p + q, w = w'*p + r)."""
    c, f, hp, wp = x.shape
    h, w = hp // p, wp // p
    return x.reshape(c, f, h, p, w, p).transpose(0, 5, 3, 1, 2, 4).reshape(c * p * p, f, h, w)


def unpatchify(x, p=2):
    cpp, f, h, w = x.shape
    c = cpp // (p * p)
    return x.reshape(c, p, p, f, h, w).transpose(0, 3, 4, 2, 5, 1).reshape(c, f, h * p, w * p)


# ---------------------------------------------------------------- modules
# Each module knows its state-dict entries (specs) and runs on [C, T, H, W] float64 arrays.
# ctx.cache is the official feat_cache list (chunked mode) or None (whole-sequence mode).

class Ctx:
    def __init__(self, params, cache_len=None):
        self.p = params
        self.used = set()
        self.cache = None if cache_len is None else [None] * cache_len
        self.idx = 0
        self.first_chunk = False
        self.trace = None  # {label: [rms, ...]} when tracing

    def __getitem__(self, name):
        self.used.add(name)
        return self.p[name]

    def log(self, label, x):
        if self.trace is not None:
            self.trace.setdefault(label, []).append((rms(x), x.shape[1]))


class CausalConv3d:
    def __init__(self, name, cin, cout, k, pad=(0, 0, 0), stride=(1, 1, 1), gain=1.0):
        self.name, self.cin, self.cout = name, cin, cout
        self.k, self.pad, self.stride, self.gain = tuple(k), pad, stride, gain

    def specs(self):
        fan_in = self.cin * math.prod(self.k)
        return [(self.name + ".weight", (self.cout, self.cin) + self.k, ("conv", fan_in, self.gain)),
                (self.name + ".bias", (self.cout,), ("bias",))]

    def __call__(self, ctx, x, cache=None):
        front = 2 * self.pad[0]
        if cache is not None and front > 0:
            x = np.concatenate([cache, x], axis=1)
            front -= cache.shape[1]
        ph, pw = self.pad[1], self.pad[2]
        x = pad_thw(x, front, (ph, ph, pw, pw))
        return conv_valid(x, ctx[self.name + ".weight"], ctx[self.name + ".bias"], self.stride)


class Conv2d:
    """nn.Conv2d applied to every frame ('b c t h w -> (b t) c h w')."""

    def __init__(self, name, cin, cout, k, pad=0, stride=1):
        self.name, self.cin, self.cout, self.k, self.pad, self.stride = name, cin, cout, k, pad, stride

    def specs(self):
        return [(self.name + ".weight", (self.cout, self.cin, self.k, self.k),
                 ("conv", self.cin * self.k * self.k, 1.0)),
                (self.name + ".bias", (self.cout,), ("bias",))]

    def __call__(self, ctx, x):
        p = self.pad
        x = pad_thw(x, 0, (p, p, p, p))
        w = ctx[self.name + ".weight"][:, :, None]
        return conv_valid(x, w, ctx[self.name + ".bias"], (1, self.stride, self.stride))


class RMSNorm:
    def __init__(self, name, c, images):
        self.name, self.c = name, c
        self.shape = (c, 1, 1) if images else (c, 1, 1, 1)

    def specs(self):
        return [(self.name + ".gamma", self.shape, ("gamma",))]

    def __call__(self, ctx, x):
        norm = np.sqrt(np.sum(x * x, axis=0, keepdims=True))
        gamma = ctx[self.name + ".gamma"].reshape(self.c, 1, 1, 1)
        return x / np.maximum(norm, NORM_EPS) * math.sqrt(self.c) * gamma


def cached_conv(ctx, conv, x):
    """A CausalConv3d call as ResidualBlock / Encoder3d / Decoder3d make it (feat_cache rule)."""
    if ctx.cache is None:
        return conv(ctx, x)
    i = ctx.idx
    prev = ctx.cache[i]
    assert prev is None or isinstance(prev, np.ndarray)
    new = x[:, -CACHE_T:].copy()
    if new.shape[1] < 2 and prev is not None:
        new = np.concatenate([prev[:, -1:], new], axis=1)
    out = conv(ctx, x, prev)
    ctx.cache[i] = new
    ctx.idx += 1
    return out


class ResidualBlock:
    def __init__(self, name, cin, cout):
        self.norm1 = RMSNorm(name + ".residual.0", cin, False)
        self.conv1 = CausalConv3d(name + ".residual.2", cin, cout, (3, 3, 3), (1, 1, 1))
        self.norm2 = RMSNorm(name + ".residual.3", cout, False)
        self.conv2 = CausalConv3d(name + ".residual.6", cout, cout, (3, 3, 3), (1, 1, 1),
                                  gain=RES_GAIN)
        self.shortcut = CausalConv3d(name + ".shortcut", cin, cout, (1, 1, 1)) if cin != cout else None

    def parts(self):
        return [self.norm1, self.conv1, self.norm2, self.conv2] + (
            [self.shortcut] if self.shortcut else [])

    def __call__(self, ctx, x):
        h = self.shortcut(ctx, x) if self.shortcut else x
        y = cached_conv(ctx, self.conv1, silu(self.norm1(ctx, x)))
        y = cached_conv(ctx, self.conv2, silu(self.norm2(ctx, y)))  # Dropout(0) = identity
        return y + h


class AttentionBlock:
    def __init__(self, name, c):
        self.c = c
        self.norm = RMSNorm(name + ".norm", c, True)
        self.to_qkv = Conv2d(name + ".to_qkv", c, 3 * c, 1)
        self.proj = Conv2d(name + ".proj", c, c, 1)

    def parts(self):
        return [self.norm, self.to_qkv, self.proj]

    def __call__(self, ctx, x):
        c, t, h, w = x.shape
        qkv = self.to_qkv(ctx, self.norm(ctx, x))                 # [3C, T, H, W]
        q, k, v = (qkv[i * c:(i + 1) * c].reshape(c, t, h * w).transpose(1, 2, 0) for i in range(3))
        s = q @ k.transpose(0, 2, 1) / math.sqrt(c)               # [T, HW, HW]
        s = np.exp(s - s.max(axis=-1, keepdims=True))
        a = (s / s.sum(axis=-1, keepdims=True)) @ v               # [T, HW, C]
        return self.proj(ctx, a.transpose(2, 0, 1).reshape(c, t, h, w)) + x


def interleave_halves(y):
    """[2C, T, H, W] -> [C, 2T, H, W]: frame 2t from channels [0, C), 2t+1 from [C, 2C)."""
    c2, t, h, w = y.shape
    return y.reshape(2, c2 // 2, t, h, w).transpose(1, 2, 0, 3, 4).reshape(c2 // 2, 2 * t, h, w)


class Resample:
    def __init__(self, name, c, mode, v22):
        self.mode = mode
        if mode.startswith("upsample"):
            self.conv = Conv2d(name + ".resample.1", c, c if v22 else c // 2, 3, pad=1)
        else:
            self.conv = Conv2d(name + ".resample.1", c, c, 3, pad=0, stride=2)
        self.time_conv = None
        if mode == "upsample3d":
            self.time_conv = CausalConv3d(name + ".time_conv", c, 2 * c, (3, 1, 1), (1, 0, 0))
        elif mode == "downsample3d":
            self.time_conv = CausalConv3d(name + ".time_conv", c, c, (3, 1, 1), stride=(2, 1, 1))

    def parts(self):
        return [self.conv] + ([self.time_conv] if self.time_conv else [])

    def __call__(self, ctx, x):
        if self.mode == "upsample3d":
            if ctx.cache is not None:
                i = ctx.idx
                prev = ctx.cache[i]
                if prev is None:
                    ctx.cache[i] = REP          # first chunk: no time_conv, 1 frame stays 1
                    ctx.idx += 1
                else:
                    is_rep = isinstance(prev, str)
                    new = x[:, -CACHE_T:].copy()
                    if new.shape[1] < 2 and not is_rep:
                        new = np.concatenate([prev[:, -1:], new], axis=1)
                    if new.shape[1] < 2 and is_rep:
                        new = np.concatenate([np.zeros_like(new), new], axis=1)
                    y = self.time_conv(ctx, x, None if is_rep else prev)
                    ctx.cache[i] = new
                    ctx.idx += 1
                    x = interleave_halves(y)
            elif x.shape[1] > 1:
                x = np.concatenate([x[:, :1], interleave_halves(self.time_conv(ctx, x[:, 1:]))], 1)
        if self.mode.startswith("upsample"):
            x = self.conv(ctx, x.repeat(2, axis=2).repeat(2, axis=3))  # nearest-exact x2
        else:
            x = self.conv(ctx, pad_thw(x, 0, (0, 1, 0, 1)))           # ZeroPad2d (0,1,0,1)
        if self.mode == "downsample3d":
            if ctx.cache is not None:
                i = ctx.idx
                prev = ctx.cache[i]
                if prev is None:
                    ctx.cache[i] = x.copy()      # first chunk: no time_conv
                    ctx.idx += 1
                else:
                    new = x[:, -1:].copy()
                    x = self.time_conv(ctx, np.concatenate([prev[:, -1:], x], axis=1))
                    ctx.cache[i] = new
                    ctx.idx += 1
            elif x.shape[1] > 1:
                assert (x.shape[1] - 1) % 2 == 0
                x = np.concatenate([x[:, :1], self.time_conv(ctx, x)], axis=1)
        return x


class AvgDown3D:
    def __init__(self, cin, cout, ft, fs):
        self.cin, self.cout, self.ft, self.fs = cin, cout, ft, fs
        self.factor = ft * fs * fs
        assert cin * self.factor % cout == 0
        self.group = cin * self.factor // cout

    def parts(self):
        return []

    def __call__(self, x):
        ft, fs = self.ft, self.fs
        x = pad_thw(x, (ft - x.shape[1] % ft) % ft)  # zero frames in front
        c, t, h, w = x.shape
        x = x.reshape(c, t // ft, ft, h // fs, fs, w // fs, fs).transpose(0, 2, 4, 6, 1, 3, 5)
        x = x.reshape(self.cout, self.group, t // ft, h // fs, w // fs)
        return x.mean(axis=1)


class DupUp3D:
    def __init__(self, cin, cout, ft, fs):
        self.cin, self.cout, self.ft, self.fs = cin, cout, ft, fs
        self.factor = ft * fs * fs
        assert cout * self.factor % cin == 0
        self.repeats = cout * self.factor // cin

    def parts(self):
        return []

    def __call__(self, x, first_chunk):
        ft, fs = self.ft, self.fs
        _, t, h, w = x.shape
        x = np.repeat(x, self.repeats, axis=0)  # repeat_interleave: each channel `repeats` times
        x = x.reshape(self.cout, ft, fs, fs, t, h, w).transpose(0, 4, 1, 5, 2, 6, 3)
        x = x.reshape(self.cout, t * ft, h * fs, w * fs)
        return x[:, ft - 1:] if first_chunk else x


class DownResidualBlock:
    """Wan2.2 Down_ResidualBlock: `<name>.downsamples.<j>`, AvgDown3D shortcut."""

    def __init__(self, name, cin, cout, mult, t_down, down_flag):
        self.shortcut = AvgDown3D(cin, cout, 2 if t_down else 1, 2 if down_flag else 1)
        self.blocks = []
        for _ in range(mult):
            self.blocks.append(ResidualBlock(f"{name}.downsamples.{len(self.blocks)}", cin, cout))
            cin = cout
        if down_flag:
            self.blocks.append(Resample(f"{name}.downsamples.{len(self.blocks)}", cout,
                                        "downsample3d" if t_down else "downsample2d", True))

    def parts(self):
        return self.blocks

    def __call__(self, ctx, x):
        y = x
        for b in self.blocks:
            y = b(ctx, y)
        return y + self.shortcut(x)


class UpResidualBlock:
    """Wan2.2 Up_ResidualBlock: `<name>.upsamples.<j>`, DupUp3D shortcut when up_flag."""

    def __init__(self, name, cin, cout, mult, t_up, up_flag):
        self.shortcut = DupUp3D(cin, cout, 2 if t_up else 1, 2) if up_flag else None
        self.blocks = []
        for _ in range(mult):
            self.blocks.append(ResidualBlock(f"{name}.upsamples.{len(self.blocks)}", cin, cout))
            cin = cout
        if up_flag:
            self.blocks.append(Resample(f"{name}.upsamples.{len(self.blocks)}", cout,
                                        "upsample3d" if t_up else "upsample2d", True))

    def parts(self):
        return self.blocks

    def __call__(self, ctx, x):
        y = x
        for b in self.blocks:
            y = b(ctx, y)
        if self.shortcut is None:
            return y
        return y + self.shortcut(x, ctx.first_chunk)


class Encoder3d:
    def __init__(self, v22, dim, z_out, dim_mult, nrb, t_down):
        dims = [dim * u for u in [1] + dim_mult]
        self.conv1 = CausalConv3d("encoder.conv1", 12 if v22 else 3, dims[0], (3, 3, 3), (1, 1, 1))
        self.downsamples = []
        last = len(dim_mult) - 1
        for i, (cin, cout) in enumerate(zip(dims[:-1], dims[1:])):
            if v22:
                self.downsamples.append(DownResidualBlock(
                    f"encoder.downsamples.{i}", cin, cout, nrb,
                    t_down[i] if i < len(t_down) else False, i != last))
                continue
            for _ in range(nrb):
                self.downsamples.append(
                    ResidualBlock(f"encoder.downsamples.{len(self.downsamples)}", cin, cout))
                cin = cout
            if i != last:
                self.downsamples.append(Resample(
                    f"encoder.downsamples.{len(self.downsamples)}", cout,
                    "downsample3d" if t_down[i] else "downsample2d", False))
        c = dims[-1]
        self.middle = [ResidualBlock("encoder.middle.0", c, c), AttentionBlock("encoder.middle.1", c),
                       ResidualBlock("encoder.middle.2", c, c)]
        self.head_norm = RMSNorm("encoder.head.0", c, False)
        self.head_conv = CausalConv3d("encoder.head.2", c, z_out, (3, 3, 3), (1, 1, 1))

    def parts(self):
        return [self.conv1] + self.downsamples + self.middle + [self.head_norm, self.head_conv]

    def __call__(self, ctx, x):
        x = cached_conv(ctx, self.conv1, x)
        ctx.log("enc.conv1", x)
        for i, layer in enumerate(self.downsamples):
            x = layer(ctx, x)
            ctx.log(f"enc.downsamples.{i}", x)
        for i, layer in enumerate(self.middle):
            x = layer(ctx, x)
        ctx.log("enc.middle", x)
        x = cached_conv(ctx, self.head_conv, silu(self.head_norm(ctx, x)))
        ctx.log("enc.head", x)
        return x


class Decoder3d:
    def __init__(self, v22, dim, z_dim, dim_mult, nrb, t_up):
        dims = [dim * u for u in [dim_mult[-1]] + dim_mult[::-1]]
        self.conv1 = CausalConv3d("decoder.conv1", z_dim, dims[0], (3, 3, 3), (1, 1, 1))
        c = dims[0]
        self.middle = [ResidualBlock("decoder.middle.0", c, c), AttentionBlock("decoder.middle.1", c),
                       ResidualBlock("decoder.middle.2", c, c)]
        self.upsamples = []
        last = len(dim_mult) - 1
        for i, (cin, cout) in enumerate(zip(dims[:-1], dims[1:])):
            if v22:
                self.upsamples.append(UpResidualBlock(
                    f"decoder.upsamples.{i}", cin, cout, nrb + 1,
                    t_up[i] if i < len(t_up) else False, i != last))
                continue
            if i in (1, 2, 3):
                cin //= 2  # the previous level's upsample conv halved the channels
            for _ in range(nrb + 1):
                self.upsamples.append(
                    ResidualBlock(f"decoder.upsamples.{len(self.upsamples)}", cin, cout))
                cin = cout
            if i != last:
                self.upsamples.append(Resample(
                    f"decoder.upsamples.{len(self.upsamples)}", cout,
                    "upsample3d" if t_up[i] else "upsample2d", False))
        self.head_norm = RMSNorm("decoder.head.0", dims[-1], False)
        self.head_conv = CausalConv3d("decoder.head.2", dims[-1], 12 if v22 else 3, (3, 3, 3),
                                      (1, 1, 1))

    def parts(self):
        return [self.conv1] + self.middle + self.upsamples + [self.head_norm, self.head_conv]

    def __call__(self, ctx, x):
        x = cached_conv(ctx, self.conv1, x)
        ctx.log("dec.conv1", x)
        for layer in self.middle:
            x = layer(ctx, x)
        ctx.log("dec.middle", x)
        for i, layer in enumerate(self.upsamples):
            x = layer(ctx, x)
            ctx.log(f"dec.upsamples.{i}", x)
        x = cached_conv(ctx, self.head_conv, silu(self.head_norm(ctx, x)))
        ctx.log("dec.head", x)
        return x


def all_specs(module):
    if hasattr(module, "specs"):
        return module.specs()
    out = []
    for part in module.parts():
        out += all_specs(part)
    return out


class WanVAE:
    """WanVAE_ of vae2_1.py (v22=False) or vae2_2.py (v22=True), with Wan2_x_VAE's scale."""

    def __init__(self, v22, dim, dec_dim, z_dim, mean, std):
        self.v22, self.z_dim = v22, z_dim
        self.encoder = Encoder3d(v22, dim, 2 * z_dim, DIM_MULT, NUM_RES_BLOCKS, TEMPERAL_DOWNSAMPLE)
        self.conv1 = CausalConv3d("conv1", 2 * z_dim, 2 * z_dim, (1, 1, 1))
        self.conv2 = CausalConv3d("conv2", z_dim, z_dim, (1, 1, 1))
        self.decoder = Decoder3d(v22, dec_dim, z_dim, DIM_MULT, NUM_RES_BLOCKS,
                                 TEMPERAL_DOWNSAMPLE[::-1])
        # Wan2_x_VAE: scale = [mean, 1.0 / std]
        self.mean = np.asarray(mean, np.float64).reshape(-1, 1, 1, 1)
        self.std = np.asarray(std, np.float64).reshape(-1, 1, 1, 1)
        self.inv_std = 1.0 / self.std

    def specs(self):
        """(name, shape, init) in state_dict order: encoder, conv1, conv2, decoder."""
        return (all_specs(self.encoder) + self.conv1.specs() + self.conv2.specs()
                + all_specs(self.decoder))

    def count_conv3d(self, prefix):
        return sum(1 for n, s, _ in self.specs() if n.startswith(prefix) and len(s) == 5
                   and n.endswith(".weight"))

    def encode(self, params, video, chunked=True, trace=None):
        """video [3, F, H, W] -> (normalised mu, raw mu) [z, 1 + (F-1)//4, h, w]."""
        x = patchify(video) if self.v22 else video
        n = 1 + (x.shape[1] - 1) // 4
        if chunked:
            ctx = Ctx(params, self.count_conv3d("encoder."))
            ctx.trace = trace
            outs = []
            for i in range(n):
                ctx.idx = 0
                chunk = x[:, :1] if i == 0 else x[:, 1 + 4 * (i - 1):1 + 4 * i]
                outs.append(self.encoder(ctx, chunk))
                assert ctx.idx <= len(ctx.cache)
            out = np.concatenate(outs, axis=1)
        else:
            ctx = Ctx(params)
            ctx.trace = trace
            out = self.encoder(ctx, x[:, :1 + 4 * (n - 1)])
        mu = self.conv1(ctx, out)[:self.z_dim]  # chunk(2, dim=1): mu first, log_var second
        return (mu - self.mean) * self.inv_std, mu, ctx.used

    def decode(self, params, z, chunked=True, trace=None):
        """normalised z [z, T, h, w] -> unclamped video [3, 1 + 4(T-1), H, W]."""
        z = z / self.inv_std + self.mean
        if chunked:
            ctx = Ctx(params, self.count_conv3d("decoder."))
        else:
            ctx = Ctx(params)
        ctx.trace = trace
        x = self.conv2(ctx, z)
        if chunked:
            outs = []
            for i in range(z.shape[1]):
                ctx.idx = 0
                ctx.first_chunk = i == 0
                outs.append(self.decoder(ctx, x[:, i:i + 1]))
                assert ctx.idx <= len(ctx.cache)
            out = np.concatenate(outs, axis=1)
        else:
            ctx.first_chunk = True  # whole sequence: DupUp3D drops its first factor_t - 1 frames
            out = self.decoder(ctx, x)
        if self.v22:
            out = unpatchify(out)
        return out, ctx.used


# ---------------------------------------------------------------- weights and inputs

def random_weights(rng, specs):
    out = {}
    for name, shape, init in specs:
        if init[0] == "conv":
            a = init[2] * math.sqrt(3.0 / init[1])
            v = rng.uniform(-a, a, size=shape)
        elif init[0] == "bias":
            v = rng.uniform(-0.05, 0.05, size=shape)
        else:  # gamma
            v = rng.uniform(0.9, 1.1, size=shape)
        out[name] = np.asarray(v, dtype=np.float32)
    return out


def smooth_video(c, f, h, w, phase):
    """A smooth moving pattern in [-0.9, 0.9]: two travelling waves per channel."""
    t = np.arange(f)[:, None, None]
    y = np.arange(h)[None, :, None] / h
    x = np.arange(w)[None, None, :] / w
    out = np.empty((c, f, h, w))
    for ch in range(c):
        a = 2 * math.pi * (x * (1.0 + 0.5 * ch) + y * (0.7 - 0.3 * ch) + 0.06 * t) + phase + ch
        b = 2 * math.pi * (x * 0.4 - y * (1.2 + 0.2 * ch) - 0.04 * t) + 0.5 * ch
        out[ch] = 0.6 * np.sin(a) + 0.3 * np.cos(b)
    return out


# ---------------------------------------------------------------- self-checks

def chunked_causal(conv, ctx, x, sizes):
    """Runs conv chunk by chunk with the official cache rule (cached_conv)."""
    ctx.cache, ctx.idx = [None], 0
    outs, start = [], 0
    for s in sizes:
        ctx.idx = 0
        outs.append(cached_conv(ctx, conv, x[:, start:start + s]))
        start += s
    return np.concatenate(outs, axis=1)


def self_check_ops(rng):
    # conv_valid against explicit loops, with strides.
    x = rng.normal(size=(3, 5, 6, 7))
    for k, st in [((3, 3, 3), (1, 1, 1)), ((3, 1, 1), (2, 1, 1)), ((1, 3, 3), (1, 2, 2))]:
        w = rng.normal(size=(4, 3) + k)
        b = rng.normal(size=4)
        assert np.allclose(conv_valid(x, w, b, st), conv_direct(x, w, b, st), atol=1e-12)

    # A 3x3x3 causal conv run in chunks 1,4,4 (encoder) or 1,1,1,... (decoder) with the cache
    # equals the conv over the whole sequence with 2 zero frames in front.
    p = {"c.weight": rng.normal(size=(4, 3, 3, 3, 3)), "c.bias": rng.normal(size=4)}
    conv = CausalConv3d("c", 3, 4, (3, 3, 3), (1, 1, 1))
    x = rng.normal(size=(3, 9, 4, 5))
    whole = conv_valid(pad_thw(x, 2, (1, 1, 1, 1)), p["c.weight"], p["c.bias"])
    for sizes in ([1, 4, 4], [1] * 9, [1, 2, 2, 4], [3, 3, 3]):
        ctx = Ctx(p)
        assert np.allclose(chunked_causal(conv, ctx, x, sizes), whole, atol=1e-12), sizes

    # Resample time convs: chunked with the cache == the whole-sequence semantics
    # (frame 0 passes through; causal conv over frames 1.. / valid stride-2 conv over all).
    c = 3
    for mode, sizes in [("upsample3d", [1, 1, 1, 1]), ("upsample3d", [1, 2, 2, 2]),
                        ("downsample3d", [1, 4, 4]), ("downsample3d", [1, 2, 2])]:
        r = Resample("r", c, mode, True)
        p = {n: rng.normal(size=s) * 0.3 for n, s, _ in all_specs(r)}
        x = rng.normal(size=(c, sum(sizes), 4, 4))
        ctx = Ctx(p, 1)
        outs, start = [], 0
        for s in sizes:
            ctx.idx = 0
            outs.append(r(ctx, x[:, start:start + s]))
            start += s
        chunked = np.concatenate(outs, axis=1)
        whole = r(Ctx(p), x)
        t = x.shape[1]
        assert chunked.shape[1] == (1 + 2 * (t - 1) if mode == "upsample3d" else 1 + (t - 1) // 2)
        assert np.allclose(chunked, whole, atol=1e-12), (mode, sizes)
    # upsample3d first chunk: time_conv skipped; second 1-frame chunk: cache becomes [0, x].
    r = Resample("r", c, "upsample3d", False)
    p = {n: rng.normal(size=s) for n, s, _ in all_specs(r)}
    ctx = Ctx(p, 1)
    x = rng.normal(size=(c, 2, 2, 2))
    assert r(ctx, x[:, :1]).shape == (c // 2, 1, 4, 4) and ctx.cache[0] == REP
    ctx.idx = 0
    assert r(ctx, x[:, 1:]).shape == (c // 2, 2, 4, 4)
    assert np.array_equal(ctx.cache[0][:, 0], np.zeros((c, 2, 2)))
    assert np.array_equal(ctx.cache[0][:, 1], x[:, 1])

    # patchify / unpatchify round trip and the channel order (c, r, q).
    v = rng.normal(size=(3, 5, 8, 6))
    pv = patchify(v)
    assert pv.shape == (12, 5, 4, 3)
    assert np.array_equal(unpatchify(pv), v)
    # channel c*4 + r*2 + q holds pixel (h*2 + q, w*2 + r)
    assert pv[1 * 4 + 1 * 2 + 0, 2, 3, 1] == v[1, 2, 3 * 2 + 0, 1 * 2 + 1]
    assert pv[2 * 4 + 0 * 2 + 1, 4, 0, 2] == v[2, 4, 0 * 2 + 1, 2 * 2 + 0]

    # AvgDown3D / DupUp3D shapes and values.
    d = AvgDown3D(4, 8, 2, 2)
    y = rng.normal(size=(4, 5, 6, 8))
    out = d(y)
    assert out.shape == (8, 3, 3, 4)
    # out channel o averages expanded channels [o*g, (o+1)*g), expanded = ((c*2 + kt)*2 + kh)*2 + kw;
    # frame 0 of the output is (zero pad, frame 0).
    g = d.group  # 4
    o, tt, hh, ww = 3, 1, 2, 1
    vals = []
    for e in range(o * g, (o + 1) * g):
        ci, rest = divmod(e, 8)
        kt, rest = divmod(rest, 4)
        kh, kw = divmod(rest, 2)
        src_t = tt * 2 + kt - 1  # one zero frame in front
        vals.append(y[ci, src_t, hh * 2 + kh, ww * 2 + kw] if src_t >= 0 else 0.0)
    assert abs(out[o, tt, hh, ww] - np.mean(vals)) < 1e-12
    assert AvgDown3D(4, 4, 1, 1)(y).shape == y.shape and np.array_equal(AvgDown3D(4, 4, 1, 1)(y), y)
    u = DupUp3D(8, 4, 2, 2)
    z = rng.normal(size=(8, 3, 2, 2))
    assert u(z, False).shape == (4, 6, 4, 4) and u(z, True).shape == (4, 5, 4, 4)
    assert np.array_equal(u(z, True), u(z, False)[:, 1:])
    # element (o, t*2 + kt, h*2 + kh, w*2 + kw) comes from input channel
    # (((o*2 + kt)*2 + kh)*2 + kw) // repeats
    oo, tt, kt, hh, kh, ww, kw = 2, 1, 1, 0, 1, 1, 0
    src = (((oo * 2 + kt) * 2 + kh) * 2 + kw) // u.repeats
    assert u(z, False)[oo, tt * 2 + kt, hh * 2 + kh, ww * 2 + kw] == z[src, tt, hh, ww]
    assert DupUp3D(4, 2, 1, 2)(z[:4], True).shape == (2, 3, 4, 4)

    # Attention: against a direct per-frame, per-position computation.
    att = AttentionBlock("a", 4)
    p = {n: rng.normal(size=s) for n, s, _ in all_specs(att)}
    x = rng.normal(size=(4, 2, 2, 3))
    got = att(Ctx(p), x)
    wq = p["a.to_qkv.weight"][:, :, 0, 0]
    for t in range(2):
        xt = x[:, t].reshape(4, -1)
        xn = xt / np.linalg.norm(xt, axis=0) * 2.0 * p["a.norm.gamma"].reshape(4, 1)
        qkv = wq @ xn + p["a.to_qkv.bias"][:, None]
        q, k, v = qkv[:4], qkv[4:8], qkv[8:]
        for n in range(6):
            s = np.array([q[:, n] @ k[:, m] for m in range(6)]) / 2.0
            pr = np.exp(s) / np.exp(s).sum()
            a = v @ pr
            ref = p["a.proj.weight"][:, :, 0, 0] @ a + p["a.proj.bias"] + xt[:, n]
            assert np.allclose(got[:, t].reshape(4, -1)[:, n], ref, atol=1e-12)


# ---------------------------------------------------------------- cases

def config_meta(case, vae_dim, dec_dim, z_dim, real):
    return {"case": case, "dim": str(vae_dim), "dec_dim": str(dec_dim), "z_dim": str(z_dim),
            "dim_mult": ",".join(map(str, DIM_MULT)), "num_res_blocks": str(NUM_RES_BLOCKS),
            "attn_scales": "", "temperal_downsample": ",".join(
                "true" if t else "false" for t in TEMPERAL_DOWNSAMPLE),
            "patch_size": "2" if case == "vae22" else "1", "real_dim": real,
            "cache_t": str(CACHE_T), "clamp": "-1,1"}


def print_trace(label, trace):
    parts = [f"{k} {np.mean([r for r, _ in v]):.2f}" for k, v in trace.items()]
    print(f"vae_reference: {label} activation rms: " + ", ".join(parts))


def run_case(outdir, case, seed):
    v22 = case == "vae22"
    if v22:
        vae = WanVAE(True, DIM22, DEC_DIM22, 48, MEAN22, STD22)
        lat_shape, vid_shape, real = (48, 2, 2, 2), (3, 5, 32, 32), "160,256"
        vae_dim, dec_dim = DIM22, DEC_DIM22
    else:
        vae = WanVAE(False, DIM21, DIM21, 16, MEAN21, STD21)
        lat_shape, vid_shape, real = (16, 3, 2, 3), (3, 9, 16, 24), "96,96"
        vae_dim, dec_dim = DIM21, DIM21
    specs = vae.specs()
    names = [n for n, _, _ in specs]
    assert len(set(names)) == len(names)
    rng = np.random.default_rng([SEED, seed])
    weights = random_weights(rng, specs)
    params = {k: f32(v) for k, v in weights.items()}

    latents = f32(rng.normal(size=lat_shape))
    video_in = f32(smooth_video(3, *vid_shape[1:], phase=0.3 * seed))
    assert np.abs(video_in).max() <= 1.0

    trace_d, trace_e = {}, {}
    video_raw, used_d = vae.decode(params, latents, trace=trace_d)
    latents_out, mu_raw, used_e = vae.encode(params, video_in, trace=trace_e)
    assert used_d | used_e == set(names), set(names) - (used_d | used_e)
    video = np.clip(video_raw, -1.0, 1.0)

    # Shapes: T latent frames -> 1 + 4(T-1) frames, stride 8 (2.1) / 16 (2.2) in space.
    t = lat_shape[1]
    assert video.shape == (3, 1 + 4 * (t - 1), lat_shape[2] * (16 if v22 else 8),
                           lat_shape[3] * (16 if v22 else 8)) == vid_shape, video.shape
    assert latents_out.shape == lat_shape, latents_out.shape
    # The clamp: everything in [-1, 1], and it really cuts something.
    clamped = float(np.mean(np.abs(video_raw) > 1.0))
    assert video.min() >= -1.0 and video.max() <= 1.0 and 0.0 < clamped < 0.5, clamped
    # Chunked (official) == whole-sequence (derived semantics).
    whole_v, _ = vae.decode(params, latents, chunked=False)
    whole_l, _, _ = vae.encode(params, video_in, chunked=False)
    dv = np.abs(whole_v - video_raw).max() / np.abs(video_raw).max()
    dl = np.abs(whole_l - latents_out).max() / np.abs(latents_out).max()
    assert dv < 1e-12 and dl < 1e-12, (dv, dl)
    # Causality: the first k latent frames decode to the first 1 + 4(k-1) frames of the whole
    # decode, and the first 1 + 4(k-1) frames encode to the first k latent frames.
    for k in range(1, t + 1):
        part, _ = vae.decode(params, latents[:, :k])
        assert part.shape[1] == 1 + 4 * (k - 1)
        assert np.allclose(part, video_raw[:, :1 + 4 * (k - 1)], rtol=0, atol=1e-12)
        part, _, _ = vae.encode(params, video_in[:, :1 + 4 * (k - 1)])
        assert part.shape[1] == k
        assert np.allclose(part, latents_out[:, :k], rtol=0, atol=1e-12)
    # Frames beyond 1 + 4k are ignored by encode.
    if not v22:
        extra = np.concatenate([video_in, video_in[:, -2:]], axis=1)  # 11 frames -> still 3
        again, _, _ = vae.encode(params, extra)
        assert np.array_equal(again, latents_out)

    print_trace(f"{case} decode", trace_d)
    print_trace(f"{case} encode", trace_e)
    print(f"vae_reference: {case}: video {list(video.shape)} rms {rms(video_raw):.3f} "
          f"clamped {100 * clamped:.1f}%, latents_out {list(latents_out.shape)} "
          f"rms {rms(latents_out):.3f}, {len(weights)} tensors, "
          f"{sum(v.size for v in weights.values())} parameters")

    meta = config_meta(case, vae_dim, dec_dim, vae.z_dim, real)
    wmeta = dict(meta, format="pt", wanbatch="vae_reference.py random test weights")
    wpath = os.path.join(outdir, f"{case}.weights.safetensors")
    write_safetensors(wpath, weights, wmeta)
    z = vae.z_dim
    tensors = {"latents": latents, "video": video, "video_in": video_in,
               "latents_out": latents_out, "video_unclamped": video_raw, "mu_raw": mu_raw,
               "latents_mean": np.asarray(MEAN22 if v22 else MEAN21).reshape(z),
               "latents_std": np.asarray(STD22 if v22 else STD21).reshape(z)}
    iopath = os.path.join(outdir, f"{case}.io.safetensors")
    write_safetensors(iopath, tensors, meta)
    got, _, _ = read_safetensors(wpath)
    assert list(got) == names
    for k, v in weights.items():
        assert np.array_equal(got[k], v), k
    got, got_meta, _ = read_safetensors(iopath)
    for k, v in tensors.items():
        assert np.array_equal(got[k], np.asarray(v, np.float32)), k
    assert got_meta["case"] == case


def vaes(real):
    """The two VAEs at the fixture widths, or (real=True) at the released checkpoints' widths."""
    if real:
        return [("vae21", WanVAE(False, 96, 96, 16, MEAN21, STD21)),
                ("vae22", WanVAE(True, 160, 256, 48, MEAN22, STD22))]
    return [("vae21", WanVAE(False, DIM21, DIM21, 16, MEAN21, STD21)),
            ("vae22", WanVAE(True, DIM22, DEC_DIM22, 48, MEAN22, STD22))]


def self_check_real_layout():
    """At the real widths the layout must give the released checkpoints' shapes."""
    shapes = {case: {n: s for n, s, _ in vae.specs()} for case, vae in vaes(True)}
    s21, s22 = shapes["vae21"], shapes["vae22"]
    assert len(s21) == 194 and len(s22) == 196
    assert s21["encoder.conv1.weight"] == (96, 3, 3, 3, 3)
    assert s21["encoder.downsamples.5.time_conv.weight"] == (192, 192, 3, 1, 1)
    assert s21["encoder.head.2.weight"] == (32, 384, 3, 3, 3)
    assert s21["conv1.weight"] == (32, 32, 1, 1, 1) and s21["conv2.weight"] == (16, 16, 1, 1, 1)
    assert s21["decoder.conv1.weight"] == (384, 16, 3, 3, 3)
    assert s21["decoder.upsamples.3.resample.1.weight"] == (192, 384, 3, 3)
    assert s21["decoder.upsamples.3.time_conv.weight"] == (768, 384, 3, 1, 1)
    assert s21["decoder.upsamples.4.residual.0.gamma"] == (192, 1, 1, 1)
    assert s21["decoder.upsamples.4.shortcut.weight"] == (384, 192, 1, 1, 1)
    assert s21["decoder.upsamples.11.resample.1.weight"] == (96, 192, 3, 3)
    assert s21["decoder.upsamples.14.residual.6.weight"] == (96, 96, 3, 3, 3)
    assert s21["decoder.middle.1.norm.gamma"] == (384, 1, 1)
    assert s21["decoder.head.2.weight"] == (3, 96, 3, 3, 3)
    assert "encoder.downsamples.2.time_conv.weight" not in s21  # downsample2d
    assert "decoder.upsamples.11.time_conv.weight" not in s21   # upsample2d
    assert s22["encoder.conv1.weight"] == (160, 12, 3, 3, 3)
    assert s22["encoder.head.2.weight"] == (96, 640, 3, 3, 3)
    assert s22["conv1.weight"] == (96, 96, 1, 1, 1) and s22["conv2.weight"] == (48, 48, 1, 1, 1)
    assert s22["encoder.downsamples.1.downsamples.2.time_conv.weight"] == (320, 320, 3, 1, 1)
    assert "encoder.downsamples.0.downsamples.2.time_conv.weight" not in s22
    assert "encoder.downsamples.3.downsamples.2.resample.1.weight" not in s22
    assert s22["decoder.conv1.weight"] == (1024, 48, 3, 3, 3)
    assert s22["decoder.upsamples.0.upsamples.3.time_conv.weight"] == (2048, 1024, 3, 1, 1)
    assert s22["decoder.upsamples.0.upsamples.3.resample.1.weight"] == (1024, 1024, 3, 3)
    assert s22["decoder.upsamples.2.upsamples.0.shortcut.weight"] == (512, 1024, 1, 1, 1)
    assert "decoder.upsamples.2.upsamples.3.time_conv.weight" not in s22
    assert "decoder.upsamples.3.upsamples.3.resample.1.weight" not in s22
    assert s22["decoder.head.2.weight"] == (12, 256, 3, 3, 3)
    return {case: sum(math.prod(s) for s in sh.values()) for case, sh in shapes.items()}


def list_keys(real):
    for case, vae in vaes(real):
        specs = vae.specs()
        print(f"# {case}: {len(specs)} tensors, {sum(math.prod(s) for _, s, _ in specs)} parameters"
              + (" (real widths)" if real else " (fixture widths)"))
        for name, shape, _ in specs:
            print(f"{case} {name} {list(shape)}")


def main():
    if len(sys.argv) in (2, 3) and sys.argv[1] == "--list-keys":
        list_keys(sys.argv[2:] == ["real"])
        return
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} OUTPUT_DIR | --list-keys [real]")
    outdir = sys.argv[1]
    os.makedirs(outdir, exist_ok=True)
    start = time.time()
    self_check_ops(np.random.default_rng([SEED, 999]))
    real = self_check_real_layout()
    print(f"vae_reference: real layouts check out ({real['vae21']} / {real['vae22']} parameters)")
    run_case(outdir, "vae21", 1)
    run_case(outdir, "vae22", 2)
    print(f"vae_reference: done in {time.time() - start:.1f} s")


if __name__ == "__main__":
    main()
