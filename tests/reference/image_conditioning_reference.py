#!/usr/bin/python3
"""Independent NumPy reference for the image conditions of the image-to-video models
(model/wan/image_conditioning.h).

Reads vae21.weights.safetensors and vae22.weights.safetensors (vae_reference.py's random tiny
VAEs) from the directory given as argv[1] and writes there image_conditioning.safetensors:
  mask_<frames>_<h>_<w>   [4, (frames-1)/4+1, h, w] Wan2.2 wan/image2video.py's msk
  i2v.image               [3, 16, 24] an image in [-1, 1]
  i2v_<frames>.y          [4 + 16, (frames-1)/4+1, 2, 3] image2video.py's y = cat(msk,
                          vae.encode(cat(image, zeros(3, frames-1, 16, 24)))) with the Wan2.1
                          VAE, for frames 1, 5 and 9
  ti2v.image              [3, 32, 32] an image in [-1, 1]
  ti2v.z                  [48, 1, 2, 2] textimage2video.py's z = vae.encode([image]) with the
                          Wan2.2 VAE
Metadata "masks": JSON list of [frames, h, w]; "i2v_frames": JSON list of frame counts.

The mask is built step by step as the official code builds it (sampling_reference.i2v_mask); the
VAE encode is vae_reference.py's float64 WanVAE.encode (the official chunked encode). The image
is resized to the output size before all this (another helper's job), so it is given here at
that size. Nothing here is derived from the C++ implementation.
"""

import json
import os
import sys

import numpy as np

sys.dont_write_bytecode = True  # importing the sibling scripts leaves no __pycache__ behind
from safetensors_np import read_safetensors, write_safetensors
from sampling_reference import i2v_mask
import vae_reference as vr

MASK_CASES = [(1, 2, 3), (5, 2, 3), (9, 3, 4), (13, 1, 2), (81, 2, 2)]
I2V_FRAMES = [1, 5, 9]
I2V_SIZE = (16, 24)   # Wan2.1 VAE: stride 8 -> a 2 x 3 latent grid
TI2V_SIZE = (32, 32)  # Wan2.2 VAE: stride 16 -> 2 x 2


def f32(a):
    return np.asarray(a, dtype=np.float32).astype(np.float64)


def load_vae(outdir, case):
    weights, _, _ = read_safetensors(os.path.join(outdir, f"{case}.weights.safetensors"))
    if case == "vae22":
        vae = vr.WanVAE(True, vr.DIM22, vr.DEC_DIM22, 48, vr.MEAN22, vr.STD22)
    else:
        vae = vr.WanVAE(False, vr.DIM21, vr.DIM21, 16, vr.MEAN21, vr.STD21)
    assert sorted(weights) == sorted(n for n, _, _ in vae.specs()), case
    return vae, {k: f32(v) for k, v in weights.items()}


def image(h, w, phase):
    """A smooth pattern in [-0.9, 0.9] (vae_reference's video generator, one frame)."""
    return f32(vr.smooth_video(3, 1, h, w, phase)[:, 0])


def main():
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} OUTPUT_DIR")
    outdir = sys.argv[1]
    tensors = {}

    for frames, h, w in MASK_CASES:
        mask = i2v_mask(frames, h, w)
        # What the construction amounts to: channel c of latent frame j is 1 exactly for j = 0.
        expected = np.zeros((4, (frames - 1) // 4 + 1, h, w))
        expected[:, 0] = 1
        assert np.array_equal(mask, expected), (frames, h, w)
        tensors[f"mask_{frames}_{h}_{w}"] = mask

    vae21, p21 = load_vae(outdir, "vae21")
    img = image(*I2V_SIZE, phase=0.7)
    tensors["i2v.image"] = img
    ys = {}
    for frames in I2V_FRAMES:
        video = np.concatenate([img[:, None], np.zeros((3, frames - 1) + I2V_SIZE)], axis=1)
        latents, _, _ = vae21.encode(p21, video)
        lat_h, lat_w = I2V_SIZE[0] // 8, I2V_SIZE[1] // 8
        assert latents.shape == (16, (frames - 1) // 4 + 1, lat_h, lat_w)
        y = np.concatenate([i2v_mask(frames, lat_h, lat_w), latents])
        tensors[f"i2v_{frames}.y"] = y
        ys[frames] = y
    # The encode is causal: fewer zero frames give the first latent frames of more; and the
    # zero frames' latents do differ from the image's.
    assert np.allclose(ys[5][4:], ys[9][4:, :2], rtol=0, atol=1e-12)
    assert np.allclose(ys[1][4:], ys[9][4:, :1], rtol=0, atol=1e-12)
    assert np.max(np.abs(ys[9][4:, 1] - ys[9][4:, 0])) > 1e-2

    vae22, p22 = load_vae(outdir, "vae22")
    img = image(*TI2V_SIZE, phase=1.9)
    z, _, _ = vae22.encode(p22, img[:, None])
    assert z.shape == (48, 1, 2, 2)
    tensors["ti2v.image"] = img
    tensors["ti2v.z"] = z

    meta = {"wanbatch": "image_conditioning_reference.py", "masks": json.dumps(MASK_CASES),
            "i2v_frames": json.dumps(I2V_FRAMES)}
    path = os.path.join(outdir, "image_conditioning.safetensors")
    write_safetensors(path, tensors, meta)
    got, _, _ = read_safetensors(path)
    for k, v in tensors.items():
        assert np.array_equal(got[k], np.asarray(v, np.float32)), k
    print(f"image_conditioning_reference: y rms {np.sqrt(np.mean(ys[9][4:] ** 2)):.3f}, "
          f"z rms {np.sqrt(np.mean(z ** 2)):.3f}")


if __name__ == "__main__":
    main()
