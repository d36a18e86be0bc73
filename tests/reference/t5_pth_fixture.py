"""The tiny umt5 encoder (t5_reference.py's t5.weights.safetensors) rewritten as torch.save writes
the official models_t5_umt5-xxl-enc-bf16.pth: a state dict of bfloat16 tensors (rounded to nearest
even) in a PyTorch ZIP archive (pytorch_fixtures.py's writer, no torch needed). The sharded
encoder test loads it to check that each rank reads its slices from a .pth as from safetensors.

    python3 t5_pth_fixture.py FIXTURE_DIR
"""

import os
import sys
from collections import OrderedDict

from pytorch_fixtures import Storage, Tensor, bf16_bits, torch_records, write_zip_torch
from safetensors_np import read_safetensors


def main():
    out = sys.argv[1]
    weights, _, _ = read_safetensors(os.path.join(out, "t5.weights.safetensors"))
    state = OrderedDict((name, Tensor(Storage("bf16", bf16_bits(array)), 0, array.shape))
                        for name, array in weights.items())
    write_zip_torch(os.path.join(out, "t5_bf16.pth"), "t5_bf16", torch_records(state))


if __name__ == "__main__":
    main()
