"""The VAE reference weights (vae_reference.py's vae21/vae22.weights.safetensors) rewritten as
torch.save would write the official Wan2.1_VAE.pth / Wan2.2_VAE.pth: an OrderedDict state dict of
float32 tensors in a PyTorch ZIP archive (pytorch_fixtures.py's writer, no torch needed). The
tests load both forms and expect the same model.

    python3 vae_pth_fixture.py FIXTURE_DIR
"""

import os
import sys
from collections import OrderedDict

from pytorch_fixtures import Storage, Tensor, torch_records, write_zip_torch
from safetensors_np import read_safetensors


def main():
    out = sys.argv[1]
    for case in ("vae21", "vae22"):
        weights, _, _ = read_safetensors(os.path.join(out, f"{case}.weights.safetensors"))
        state = OrderedDict(
            (name, Tensor(Storage("f32", array), 0, array.shape)) for name, array in weights.items())
        write_zip_torch(os.path.join(out, f"{case}.pth"), case, torch_records(state))


if __name__ == "__main__":
    main()
