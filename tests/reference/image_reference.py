"""Image-to-video preprocessing references (tests/unit/io/image_resize_test.cpp and
tests/unit/model/image_sizes_test.cpp), written without torch.

- Lanczos: Pillow itself is the reference (the official TI2V pipeline calls
  PIL.Image.resize(..., LANCZOS)); its byte output for up- and downscales, odd sizes, one axis
  only, different x/y scales and a one-pixel-wide image.
- Bicubic: torch.nn.functional.interpolate(mode="bicubic", align_corners=False) as the formula
  behind it, in float64: output pixel i of an axis samples source position (i + 0.5) * in / out
  - 0.5, with Keys' cubic convolution kernel (A = -0.75) over the four nearest source pixels,
  indices clamped to the edge, no antialiasing, no clamping of the result. The 2-D result is
  the separable product rows @ x @ cols^T.
- Size rules: Wan's image2video.py (A14B/14B I2V: the area and the aspect ratio give the latent
  grid) and utils.best_output_size as textimage2video.py calls it (TI2V-5B), re-written here in
  plain Python float arithmetic from reading those sources. -1 marks where the Python would fail
  (a zero division: the area is too small).
- Whole preparations: textimage2video.py's cover-scale, Lanczos, centre crop and to_tensor, and
  image2video.py's to_tensor then bicubic, on two small images.
- Decoding: a JPEG (4:2:0 and 4:4:4) and a WebP (lossless and lossy) written by Pillow beside the
  fixture, with the pixels Pillow decodes from them.

Images are stored as I32 [H, W, 3] bytes. Needs NumPy and Pillow.

    python3 image_reference.py OUTPUT_DIR
"""

import math
import os
import sys

import numpy as np
from PIL import Image

from safetensors_np import write_safetensors

LANCZOS = getattr(Image, "Resampling", Image).LANCZOS


def test_image(width, height, seed):
    """A deterministic RGB image with smooth gradients, noise and hard black/white edges (so that
    Lanczos' overshoot is clipped somewhere)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    base = np.stack([
        128 + 100 * np.sin(x / max(width, 1) * 5.0 + y / max(height, 1) * 2.0),
        255 * x / max(width - 1, 1),
        255 * y / max(height - 1, 1),
    ], axis=-1)
    base += rng.normal(0.0, 25.0, size=base.shape)
    checker = ((x.astype(int) // 3 + y.astype(int) // 2) % 2 == 0)
    stripe = x.astype(int) % 7 < 2
    base[stripe] = np.where(checker[stripe, None], 255.0, 0.0)
    return np.clip(np.rint(base), 0, 255).astype(np.uint8)


def pil_resize(pixels, width, height):
    return np.asarray(Image.fromarray(pixels, "RGB").resize((width, height), LANCZOS))


def to_tensor(pixels):
    """torchvision to_tensor(img).sub_(0.5).div_(0.5) in its float32 steps: [3, H, W]."""
    x = pixels.astype(np.float32).transpose(2, 0, 1) / np.float32(255)
    return (x - np.float32(0.5)) / np.float32(0.5)


def keys_cubic(d, a=-0.75):
    d = abs(d)
    if d <= 1:
        return (a + 2) * d ** 3 - (a + 3) * d ** 2 + 1
    if d < 2:
        return a * d ** 3 - 5 * a * d ** 2 + 8 * a * d - 4 * a
    return 0.0


def bicubic_matrix(n_in, n_out):
    """Row i: the weights of output pixel i over the n_in source pixels (edge taps folded in)."""
    m = np.zeros((n_out, n_in))
    for i in range(n_out):
        src = (i + 0.5) * n_in / n_out - 0.5
        base = math.floor(src)
        for tap in range(base - 1, base + 3):
            m[i, min(max(tap, 0), n_in - 1)] += keys_cubic(src - tap)
    return m


def bicubic(x, height, width):
    x = np.asarray(x, dtype=np.float64)
    rows = bicubic_matrix(x.shape[1], height)
    cols = bicubic_matrix(x.shape[2], width)
    return np.einsum("oh,chw,pw->cop", rows, x, cols)


def i2v_size(iw, ih, max_area, stride=8, patch=2):
    """image2video.py: float64 sqrt of the area times (or over) h / w, floored to whole latent
    cells and to whole patches."""
    aspect = ih / iw
    lat_h = round(math.sqrt(max_area * aspect) // stride // patch * patch)
    lat_w = round(math.sqrt(max_area / aspect) // stride // patch * patch)
    if lat_h < 1 or lat_w < 1:
        return -1, -1
    return lat_w * stride, lat_h * stride


def ti2v_size(iw, ih, area, multiple=32):
    """best_output_size(iw, ih, multiple, multiple, area): fit the width first or the height
    first, keep whichever keeps the aspect ratio better (the height-first one on a tie)."""
    try:
        ratio = iw / ih
        ow = (area * ratio) ** 0.5
        oh = area / ow
        w1 = int(ow // multiple * multiple)
        h1 = int(area / w1 // multiple * multiple)
        h2 = int(oh // multiple * multiple)
        w2 = int(area / h2 // multiple * multiple)
        r1, r2 = w1 / h1, w2 / h2
        if w2 == 0:
            return -1, -1
    except ZeroDivisionError:
        return -1, -1
    return (w1, h1) if max(ratio / r1, r1 / ratio) < max(ratio / r2, r2 / ratio) else (w2, h2)


def ti2v_image(pixels, ow, oh):
    ih, iw = pixels.shape[:2]
    scale = max(ow / iw, oh / ih)
    w, h = round(iw * scale), round(ih * scale)
    resized = pil_resize(pixels, w, h)
    left, top = (w - ow) // 2, (h - oh) // 2
    return to_tensor(resized[top:top + oh, left:left + ow])


def main():
    out_dir = sys.argv[1]
    os.makedirs(out_dir, exist_ok=True)
    tensors, dtypes = {}, {}

    def put(name, value, dtype="F32"):
        tensors[name] = value
        dtypes[name] = dtype

    # (input w, h) -> (output w, h)
    lanczos_cases = [
        ((37, 23), (16, 11)),    # down, odd sizes
        ((16, 11), (37, 29)),    # up
        ((40, 30), (40, 17)),    # vertical only
        ((40, 30), (13, 30)),    # horizontal only
        ((64, 48), (21, 50)),    # down in x, up in y
        ((1, 9), (1, 20)),       # one pixel wide, vertical only
        ((1, 9), (5, 4)),        # one pixel wide, both
        ((120, 90), (7, 5)),     # a large reduction: wide support
        ((50, 50), (50, 50)),    # unchanged
        ((99, 61), (100, 62)),   # a slight enlargement
    ]
    for i, ((iw, ih), (ow, oh)) in enumerate(lanczos_cases):
        pixels = test_image(iw, ih, seed=i)
        put(f"lanczos.{i}.input", pixels.astype(np.int32), "I32")
        put(f"lanczos.{i}.output", pil_resize(pixels, ow, oh).astype(np.int32), "I32")

    # [C, H, W] -> (h, w)
    bicubic_cases = [((3, 5, 7), (13, 11)), ((3, 20, 17), (7, 9)), ((2, 6, 6), (6, 6)),
                     ((1, 1, 1), (3, 4)), ((3, 9, 30), (16, 8)), ((3, 33, 45), (32, 64))]
    rng = np.random.default_rng(7)
    for i, (shape, (oh, ow)) in enumerate(bicubic_cases):
        x = rng.uniform(-1.0, 1.0, size=shape).astype(np.float32)
        put(f"bicubic.{i}.input", x)
        put(f"bicubic.{i}.output", bicubic(x, oh, ow))

    images = [(640, 480), (1024, 768), (1920, 1080), (1280, 720), (1080, 1920), (720, 1280),
              (512, 512), (1000, 1001), (1001, 1000), (333, 777), (4000, 100), (100, 4000),
              (1, 1), (37, 23), (3000, 2000), (832, 480), (480, 832)]
    i2v_areas = [1280 * 720, 832 * 480, 1024 * 1024, 960 * 960 + 1, 32 * 32, 48 * 40, 256, 1]
    ti2v_areas = [1280 * 704, 1024 * 1024, 640 * 352, 64 * 64, 32 * 32, 1000]
    i2v_rows, ti2v_rows = [], []
    for iw, ih in images:
        for area in i2v_areas:
            i2v_rows.append([iw, ih, area, *i2v_size(iw, ih, area)])
        for area in ti2v_areas:
            ti2v_rows.append([iw, ih, area, *ti2v_size(iw, ih, area)])
    put("sizes.i2v", np.array(i2v_rows, dtype=np.int64), "I64")
    put("sizes.ti2v", np.array(ti2v_rows, dtype=np.int64), "I64")

    # Whole preparations: an upscale (45x29) and a downscale (150x97) for both pipelines.
    for i, (iw, ih) in enumerate([(45, 29), (150, 97)]):
        pixels = test_image(iw, ih, seed=100 + i)
        put(f"pipeline.{i}.image", pixels.astype(np.int32), "I32")
        ow, oh = ti2v_size(iw, ih, 64 * 32)
        put(f"pipeline.{i}.ti2v_size", np.array([ow, oh], dtype=np.int64), "I64")
        put(f"pipeline.{i}.ti2v", ti2v_image(pixels, ow, oh))
        ow, oh = i2v_size(iw, ih, 64 * 48)
        put(f"pipeline.{i}.i2v_size", np.array([ow, oh], dtype=np.int64), "I64")
        put(f"pipeline.{i}.i2v", bicubic(to_tensor(pixels), oh, ow))

    # Encoded files as users have them, beside the fixture, and the pixels Pillow decodes from
    # them (Image.open(...).convert("RGB"): what the official pipelines start from).
    # Odd and even sizes, and a 1×1 image, for the edge rules of the chroma upsampling.
    decode_cases = [("jpeg_420", "jpg", {"quality": 90, "subsampling": 2}),
                    ("jpeg_422", "jpg", {"quality": 90, "subsampling": 1}),
                    ("jpeg_444", "jpg", {"quality": 95, "subsampling": 0}),
                    ("webp_lossless", "webp", {"lossless": True}),
                    ("webp_lossy", "webp", {"quality": 90})]
    for w, h in [(61, 45), (64, 48), (1, 1), (2, 3)]:
        pixels = test_image(w, h, seed=300 + w)
        for kind, ext, options in decode_cases:
            name = f"{kind}_{w}x{h}"
            path = os.path.join(out_dir, f"image_reference.{name}.{ext}")
            Image.fromarray(pixels, "RGB").save(path, **options)
            decoded = np.asarray(Image.open(path).convert("RGB")).astype(np.int32)
            put(f"decode.{name}", decoded, "I32")

    write_safetensors(os.path.join(out_dir, "image_reference.safetensors"), tensors, dtypes=dtypes)


if __name__ == "__main__":
    main()
