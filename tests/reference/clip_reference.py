#!/usr/bin/python3
"""Independent NumPy reference for Wan2.1 I2V's CLIP vision tower (open-clip XLM-RoBERTa
ViT-H/14's visual part, penultimate-layer features) and its image preprocessing.

Writes, into the directory given as argv[1]:
  clip.weights.safetensors     a tiny random tower under the open-clip state_dict names of the
                               official models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth
                               ("visual.*": all blocks, post_norm and head included), plus two
                               text-side tensors the loader must ignore (F32); metadata heads
  clip.pth                     the same tensors as torch.save writes a state dict (no torch needed:
                               pytorch_fixtures.py's writer)
  clip_hf.weights.safetensors  the same tower under HF CLIPVisionModelWithProjection names, as
                               ComfyUI's clip_vision_h.safetensors holds it ("vision_model.*" with
                               separate q/k/v projections, "pre_layrnorm", class_embedding [dim],
                               position_embedding.weight [tokens, dim], position_ids,
                               visual_projection.weight = head transposed); metadata heads
  clip.io.safetensors          pixels [3, 224, 224] (already normalised) and features_pixels;
                               image_224 [3, 224, 224] in [-1, 1] and features_224;
                               image_up [3, 96, 128] and image_down [3, 300, 260] in [-1, 1] with
                               resized_up / resized_down (the bicubic resize to 224 alone) and
                               features_up / features_down; metadata dim, heads, layers,
                               out_layers, mlp, image_size, patch; features_hd80_224
  clip_hd80.weights.safetensors  a second tiny tower (open-clip names) with ViT-H/14's head
                               width: dim 160, 2 heads of 80, mlp 320, 3 layers; metadata heads

Sources (read, not copied; nothing here is derived from the C++ implementation): Wan2.1
wan/modules/clip.py (VisionTransformer with pool_type 'token', pre_norm True, post_norm False,
activation 'gelu'; AttentionBlock; SelfAttention; LayerNorm; _clip's transforms;
CLIPModel.visual) and wan/image2video.py (clip.visual([img[:, None, :, :]]) on the original image,
img = to_tensor(pil).sub(0.5).div(0.5)); torch's upsample_bicubic2d (align_corners=False) for the
resize; HF transformers' CLIPVisionTransformer for the HF names.

CLIPModel.visual(image):
  x = F.interpolate(image, (224, 224), bicubic, align_corners=False)   no antialias, no clamp
  x = (x * 0.5 + 0.5 - mean) / std      mean (0.48145466, 0.4578275, 0.40821073),
                                        std (0.26862954, 0.26130258, 0.27577711)
  x = conv2d(x, patch_embedding.weight, stride=patch, no bias) -> [dim, g, g] -> [g*g, dim]
  x = [cls_embedding; x] + pos_embedding                               [g*g + 1, dim]
  x = pre_norm(x)                                                      LayerNorm, eps 1e-5
  for the first layers - 1 blocks (use_31_block: transformer[:-1]):
      x = x + proj(mha(norm1(x)))     to_qkv rows: q, k, v; heads of head_dim = dim / heads;
                                      softmax(q k^T / sqrt(head_dim)), no mask
      x = x + mlp.2(gelu(mlp.0(norm2(x))))    nn.GELU(): exact, x * Phi(x)
  no post_norm, no head.
Bicubic (torch, align_corners=False): src = (dst + 0.5) * in / out - 0.5 (not clamped),
i = floor(src), t = src - i, taps i-1..i+2 clamped to the border, cubic convolution A = -0.75.
Everything is computed in float64 from the stored float32 weights and images.

Tiny configuration: 224 px, patch 14 (257 tokens, what the DiT's image branch takes), dim 48
(the tiny-i2v-clip DiT's image_dim), 4 heads (head_dim 12), mlp 192, 3 layers (2 used), out_dim 32;
and the head-width-80 tower above.
"""

import math
import os
import sys
from collections import OrderedDict

import numpy as np

from pytorch_fixtures import Storage, Tensor, torch_records, write_zip_torch
from safetensors_np import write_safetensors

SEED = 20251130
IMAGE, PATCH, DIM, HEADS, MLP, LAYERS, OUT_DIM = 224, 14, 48, 4, 192, 3, 32
# A second tower with ViT-H/14's head width: 2 heads of 80.
HD80_DIM, HD80_HEADS, HD80_MLP, HD80_LAYERS = 160, 2, 320, 3
EPS = 1e-5
MEAN = np.array([0.48145466, 0.4578275, 0.40821073])
STD = np.array([0.26862954, 0.26130258, 0.27577711])


def make_weights(rng, dim=DIM, mlp=MLP, layers=LAYERS, out_dim=OUT_DIM):
    """open-clip names -> float32 arrays."""
    tokens = (IMAGE // PATCH) ** 2 + 1

    def uniform(shape, bound):
        return rng.uniform(-bound, bound, size=shape).astype(np.float32)

    def norm(name, w):
        w[name + ".weight"] = rng.uniform(0.8, 1.2, size=dim).astype(np.float32)
        w[name + ".bias"] = uniform(dim, 0.1)

    w = OrderedDict()
    w["visual.patch_embedding.weight"] = uniform((dim, 3, PATCH, PATCH),
                                                 1 / math.sqrt(3 * PATCH ** 2))
    w["visual.cls_embedding"] = uniform((1, 1, dim), 1.0)
    w["visual.pos_embedding"] = uniform((1, tokens, dim), 0.5)
    norm("visual.pre_norm", w)
    for i in range(layers):
        p = f"visual.transformer.{i}."
        norm(p + "norm1", w)
        w[p + "attn.to_qkv.weight"] = uniform((3 * dim, dim), 1.5 / math.sqrt(dim))
        w[p + "attn.to_qkv.bias"] = uniform(3 * dim, 0.2)
        w[p + "attn.proj.weight"] = uniform((dim, dim), 1 / math.sqrt(dim))
        w[p + "attn.proj.bias"] = uniform(dim, 0.1)
        norm(p + "norm2", w)
        w[p + "mlp.0.weight"] = uniform((mlp, dim), 1.5 / math.sqrt(dim))
        w[p + "mlp.0.bias"] = uniform(mlp, 0.2)
        w[p + "mlp.2.weight"] = uniform((dim, mlp), 1 / math.sqrt(mlp))
        w[p + "mlp.2.bias"] = uniform(dim, 0.1)
    norm("visual.post_norm", w)
    w["visual.head"] = uniform((dim, out_dim), 1 / math.sqrt(dim))
    return w


def hf_names(w):
    """The open-clip tensors under HF CLIPVisionModelWithProjection names."""
    tokens = w["visual.pos_embedding"].shape[1]
    hf = OrderedDict()
    v = "vision_model."
    hf[v + "embeddings.class_embedding"] = w["visual.cls_embedding"].reshape(DIM)
    hf[v + "embeddings.patch_embedding.weight"] = w["visual.patch_embedding.weight"]
    hf[v + "embeddings.position_embedding.weight"] = w["visual.pos_embedding"].reshape(tokens, DIM)
    hf[v + "embeddings.position_ids"] = np.arange(tokens, dtype=np.int64).reshape(1, tokens)
    hf[v + "pre_layrnorm.weight"] = w["visual.pre_norm.weight"]
    hf[v + "pre_layrnorm.bias"] = w["visual.pre_norm.bias"]
    for i in range(LAYERS):
        o, h = f"visual.transformer.{i}.", f"{v}encoder.layers.{i}."
        for k, part in enumerate("qkv"):
            rows = slice(k * DIM, (k + 1) * DIM)
            hf[h + f"self_attn.{part}_proj.weight"] = w[o + "attn.to_qkv.weight"][rows]
            hf[h + f"self_attn.{part}_proj.bias"] = w[o + "attn.to_qkv.bias"][rows]
        for src, dst in (("attn.proj", "self_attn.out_proj"), ("norm1", "layer_norm1"),
                         ("norm2", "layer_norm2"), ("mlp.0", "mlp.fc1"), ("mlp.2", "mlp.fc2")):
            hf[h + dst + ".weight"] = w[o + src + ".weight"]
            hf[h + dst + ".bias"] = w[o + src + ".bias"]
    hf[v + "post_layernorm.weight"] = w["visual.post_norm.weight"]
    hf[v + "post_layernorm.bias"] = w["visual.post_norm.bias"]
    hf["visual_projection.weight"] = np.ascontiguousarray(w["visual.head"].T)
    return hf


def cubic_weights(t, a=-0.75):
    """Cubic convolution weights of the taps at offsets -1, 0, 1, 2 for fraction t."""
    def near(x):  # |x| <= 1
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def far(x):  # 1 < |x| < 2
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a

    return [far(t + 1), near(t), near(1 - t), far(2 - t)]


def resize_matrix(n_in, n_out):
    m = np.zeros((n_out, n_in))
    scale = n_in / n_out
    for o in range(n_out):
        src = (o + 0.5) * scale - 0.5
        i = math.floor(src)
        for tap, wt in zip(range(i - 1, i + 3), cubic_weights(src - i)):
            m[o, min(max(tap, 0), n_in - 1)] += wt
    return m


def resize_bicubic(image, size):
    """[C, H, W] -> [C, size, size], torch bicubic align_corners=False."""
    rows, cols = resize_matrix(image.shape[1], size), resize_matrix(image.shape[2], size)
    return np.stack([rows @ c @ cols.T for c in image.astype(np.float64)])


def layer_norm(x, w, b):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + EPS) * w + b


def gelu(x):
    return 0.5 * x * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0)))


def tower(w, pixels, heads=HEADS):
    """pixels [3, IMAGE, IMAGE] normalised -> [tokens, dim] penultimate features."""
    W = {k: v.astype(np.float64) for k, v in w.items()}
    dim = W["visual.patch_embedding.weight"].shape[0]
    layers = len([k for k in W if k.endswith(".attn.to_qkv.weight")])
    g = IMAGE // PATCH
    # Conv2d, stride = kernel = P: out[o, gy, gx] = sum W[o, c, ky, kx] img[c, gy*P+ky, gx*P+kx].
    blocks = pixels.reshape(3, g, PATCH, g, PATCH)
    conv = np.einsum("ocyx,cgyhx->ogh", W["visual.patch_embedding.weight"], blocks,
                     optimize=True)
    x = conv.reshape(dim, g * g).T
    x = np.concatenate([W["visual.cls_embedding"].reshape(1, dim), x], axis=0)
    x = x + W["visual.pos_embedding"][0]
    x = layer_norm(x, W["visual.pre_norm.weight"], W["visual.pre_norm.bias"])
    d = dim // heads
    for i in range(layers - 1):
        p = f"visual.transformer.{i}."
        h = layer_norm(x, W[p + "norm1.weight"], W[p + "norm1.bias"])
        qkv = h @ W[p + "attn.to_qkv.weight"].T + W[p + "attn.to_qkv.bias"]
        q, k, v = (qkv[:, j * dim:(j + 1) * dim].reshape(-1, heads, d).transpose(1, 0, 2)
                   for j in range(3))
        s = q @ k.transpose(0, 2, 1) / math.sqrt(d)
        s = np.exp(s - s.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        a = (s @ v).transpose(1, 0, 2).reshape(-1, dim)
        x = x + a @ W[p + "attn.proj.weight"].T + W[p + "attn.proj.bias"]
        h = layer_norm(x, W[p + "norm2.weight"], W[p + "norm2.bias"])
        h = gelu(h @ W[p + "mlp.0.weight"].T + W[p + "mlp.0.bias"])
        x = x + h @ W[p + "mlp.2.weight"].T + W[p + "mlp.2.bias"]
    return x


def normalise(image224):
    return ((image224 * 0.5 + 0.5) - MEAN[:, None, None]) / STD[:, None, None]


def smooth_image(rng, h, w):
    """A photo-like image in [-1, 1]: smooth gradients and blobs plus a little noise."""
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    out = []
    for c in range(3):
        fy, fx, ph = rng.uniform(1, 6), rng.uniform(1, 6), rng.uniform(0, 6.3)
        v = 0.6 * np.sin(fy * 3 * y + ph) * np.cos(fx * 3 * x) + 0.3 * (x - y)
        v += rng.uniform(-0.1, 0.1, size=(h, w))
        out.append(np.clip(v, -1, 1))
    return np.stack(out).astype(np.float32)


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(SEED)
    w = make_weights(rng)
    meta = {"heads": HEADS}
    # The official file also holds the text tower and log_scale: the loader ignores them.
    full = OrderedDict(w)
    full["textual.token_embedding.weight"] = rng.uniform(-1, 1, size=(10, 8)).astype(np.float32)
    full["log_scale"] = np.array([math.log(1 / 0.07)], dtype=np.float32)
    write_safetensors(os.path.join(out, "clip.weights.safetensors"), full, meta)
    state = OrderedDict(
        (name, Tensor(Storage("f32", array), 0, array.shape)) for name, array in full.items())
    write_zip_torch(os.path.join(out, "clip.pth"), "clip", torch_records(state))
    hf = hf_names(w)
    write_safetensors(os.path.join(out, "clip_hf.weights.safetensors"), hf, meta,
                      {"vision_model.embeddings.position_ids": "I64"})

    io = OrderedDict()
    pixels = rng.uniform(-2, 2, size=(3, IMAGE, IMAGE)).astype(np.float32)
    io["pixels"] = pixels
    io["features_pixels"] = tower(w, pixels.astype(np.float64))
    image = smooth_image(rng, IMAGE, IMAGE)
    io["image_224"] = image
    io["features_224"] = tower(w, normalise(image.astype(np.float64)))
    for name, (h, wd) in (("up", (96, 128)), ("down", (300, 260))):
        image = smooth_image(rng, h, wd)
        resized = resize_bicubic(image, IMAGE)
        io["image_" + name] = image
        io["resized_" + name] = resized
        io["features_" + name] = tower(w, normalise(resized))
    # ViT-H/14's head width (80, 2 heads of a 160-wide tower) through the same path.
    w80 = make_weights(rng, dim=HD80_DIM, mlp=HD80_MLP, layers=HD80_LAYERS, out_dim=OUT_DIM)
    write_safetensors(os.path.join(out, "clip_hd80.weights.safetensors"), w80,
                      {"heads": HD80_HEADS})
    io["features_hd80_224"] = tower(w80, normalise(io["image_224"].astype(np.float64)),
                                    heads=HD80_HEADS)
    write_safetensors(os.path.join(out, "clip.io.safetensors"), io,
                      {"dim": DIM, "heads": HEADS, "layers": LAYERS, "out_layers": LAYERS - 1,
                       "mlp": MLP, "image_size": IMAGE, "patch": PATCH})


if __name__ == "__main__":
    main()
