"""PyTorch .pth fixtures for io/pytorch_file (tests/unit/io/pytorch_file_test.cpp), without torch.

torch.save's format, as torch/serialization.py `_save` and caffe2/serialize/inline_container.cc
write it, is reproduced by hand:
- a ZIP archive of stored entries under one folder: `data.pkl`, `byteorder`, `data/<key>` (each
  storage's raw little-endian bytes, keys "0", "1", ... in order of first use, written in sorted
  order), `version`; PyTorch's writer pads each local header with an "FB" extra field so data
  starts 64-byte aligned and writes the ZIP64 end records;
- `data.pkl` is Python's own pickler (protocol 2 by default) run over stand-ins: a fake `torch`
  and `torch._utils` module in sys.modules give the globals torch's pickles name
  (torch.FloatStorage, torch._utils._rebuild_tensor_v2, ...), tensors and parameters reduce to
  those exactly as torch.Tensor._reduce_ex_internal and nn.Parameter.__reduce_ex__ do
  (_rebuild_tensor_v2 over a typed storage, or for the dtypes in torch.storage._new_dtypes
  _rebuild_tensor_v3 over an UntypedStorage with the dtype as a global), and storages become
  persistent ids ('storage', storage class, key, location, numel).

Each valid NAME.pth comes with NAME.expected.safetensors: every tensor it should read as, made
contiguous with NumPy's as_strided (dtypes core lacks converted: f64 to f32, small integers and
bool to i32). The bad_*.pth files are each malformed in one way. Every valid archive is checked
with Python's zipfile (CRCs included) before it is kept.

    python3 pytorch_fixtures.py OUTPUT_DIR
"""

import io
import json
import os
import pickle
import struct
import sys
import types
import zipfile
import zlib
from collections import OrderedDict

import numpy as np

# ---- stand-ins for the torch globals a state dict's pickle names -------------------------------

torch_module = types.ModuleType("torch")
utils_module = types.ModuleType("torch._utils")
tensor_module = types.ModuleType("torch._tensor")
torch_module._utils, torch_module._tensor = utils_module, tensor_module
sys.modules["torch"] = torch_module
sys.modules["torch._utils"] = utils_module
sys.modules["torch._tensor"] = tensor_module


def _stand_in(module, name):
    def function(*args):
        raise RuntimeError("a stand-in: only its name is pickled")

    function.__module__ = module
    function.__name__ = function.__qualname__ = name
    setattr(sys.modules[module], name, function)
    return function


rebuild_tensor_v2 = _stand_in("torch._utils", "_rebuild_tensor_v2")
rebuild_parameter = _stand_in("torch._utils", "_rebuild_parameter")
rebuild_tensor_v3 = _stand_in("torch._utils", "_rebuild_tensor_v3")
rebuild_parameter_with_state = _stand_in("torch._utils", "_rebuild_parameter_with_state")
rebuild_from_type_v2 = _stand_in("torch._tensor", "_rebuild_from_type_v2")
torch_module.Tensor = type("Tensor", (), {"__module__": "torch"})

# dtype: (storage class, None for the dtypes written with _rebuild_tensor_v3; torch dtype name;
# NumPy dtype of the stored elements; safetensors dtype it reads as and the NumPy dtype of that,
# None where it is not read). bf16 and fp8 are kept as their bit patterns.
DTYPES = {
    "f32": ("FloatStorage", "float32", "<f4", "F32", "<f4"),
    "bf16": ("BFloat16Storage", "bfloat16", "<u2", "BF16", "<u2"),
    "f16": ("HalfStorage", "float16", "<f2", "F16", "<f2"),
    "i64": ("LongStorage", "int64", "<i8", "I64", "<i8"),
    "i32": ("IntStorage", "int32", "<i4", "I32", "<i4"),
    "f64": ("DoubleStorage", "float64", "<f8", "F32", "<f4"),
    "i16": ("ShortStorage", "int16", "<i2", "I32", "<i4"),
    "i8": ("CharStorage", "int8", "i1", "I32", "<i4"),
    "u8": ("ByteStorage", "uint8", "u1", "I32", "<i4"),
    "bool": ("BoolStorage", "bool", "?", "I32", "<i4"),
    "untyped": ("UntypedStorage", "uint8", "u1", "I32", "<i4"),
    "c64": ("ComplexFloatStorage", "complex64", "<c8", None, None),
    "f8e4m3": (None, "float8_e4m3fn", "u1", "F8_E4M3", "u1"),
    "f8e5m2": (None, "float8_e5m2", "u1", None, None),
    "u16": (None, "uint16", "<u2", "I32", "<i4"),
    "u32": (None, "uint32", "<u4", "I64", "<i8"),
}


class TorchDtype:
    """torch.<name>: pickled by name as a global of torch, as torch.dtype reduces to its name."""
    __module__ = "torch"

    def __init__(self, name):
        self.name = name

    def __reduce__(self):
        return self.name


for _storage_class, _dtype_name, *_ in DTYPES.values():
    if _storage_class is not None:
        setattr(torch_module, _storage_class, type(_storage_class, (), {"__module__": "torch"}))
    setattr(torch_module, _dtype_name, TorchDtype(_dtype_name))


def bf16_bits(values):
    """float32 -> bfloat16 bit patterns, round to nearest even (finite inputs)."""
    bits = np.asarray(values, dtype=np.float32).view(np.uint32).astype(np.uint64)
    return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)


class Storage:
    """A torch storage: a flat array of one dtype; an UntypedStorage of its bytes for the v3
    dtypes, whose numel then counts bytes. `numel` may be overridden to lie."""

    def __init__(self, dtype, values, location="cpu", numel=None):
        self.dtype = dtype
        self.array = np.ascontiguousarray(np.asarray(values).reshape(-1).astype(DTYPES[dtype][2]))
        self.location = location
        self.storage_class = DTYPES[dtype][0] or "UntypedStorage"
        natural = self.array.nbytes if DTYPES[dtype][0] is None else self.array.size
        self.numel = natural if numel is None else numel


class Tensor:
    """Pickles as torch.Tensor does: _rebuild_tensor_v2(storage, offset, size, stride,
    requires_grad, backward_hooks[, metadata]), _rebuild_tensor_v3(..., dtype[, metadata]) for the
    new dtypes, and wrapped in _rebuild_from_type_v2 when it has Python attributes (`state`)."""

    def __init__(self, storage, offset, size, stride=None, metadata=None, state=None):
        if stride is None:  # contiguous
            stride, step = [], 1
            for d in reversed(size):
                stride.insert(0, step)
                step *= d
        self.storage, self.offset = storage, offset
        self.size, self.stride, self.metadata = tuple(size), tuple(stride), metadata
        self.state = state

    def __reduce_ex__(self, protocol):
        storage_class, dtype_name = DTYPES[self.storage.dtype][:2]
        function = rebuild_tensor_v2 if storage_class else rebuild_tensor_v3
        args = (self.storage, self.offset, self.size, self.stride, False, OrderedDict())
        if storage_class is None:
            args += (getattr(torch_module, dtype_name),)
        if self.metadata is not None:
            args += (self.metadata,)
        if self.state is not None:
            return (rebuild_from_type_v2, (function, torch_module.Tensor, args, self.state))
        return (function, args)

    def expected(self):
        """(NumPy array of the contiguous result, safetensors dtype)."""
        st_dtype, out_dtype = DTYPES[self.storage.dtype][3:]
        array = self.storage.array
        if int(np.prod(self.size)) == 0:
            result = np.zeros(self.size, array.dtype)
        else:
            result = np.lib.stride_tricks.as_strided(
                array[self.offset:], shape=self.size,
                strides=[s * array.itemsize for s in self.stride]).copy()
        return result.astype(out_dtype), st_dtype


class Parameter:
    """Pickles as nn.Parameter does: _rebuild_parameter(data, requires_grad, backward_hooks)."""

    def __init__(self, tensor, with_state=False):
        self.tensor, self.with_state = tensor, with_state

    def __reduce_ex__(self, protocol):
        if self.with_state:
            return (rebuild_parameter_with_state, (self.tensor, True, OrderedDict(), {"tag": 1}))
        return (rebuild_parameter, (self.tensor, True, OrderedDict()))


class TorchPickler(pickle.Pickler):
    """torch.save's pickler: storages become persistent ids keyed in order of first use."""

    def __init__(self, file, protocol):
        super().__init__(file, protocol=protocol)
        self.keys = {}  # id(storage) -> key
        self.storages = {}  # key -> storage

    def persistent_id(self, obj):
        if not isinstance(obj, Storage):
            return None
        key = self.keys.setdefault(id(obj), str(len(self.keys)))
        self.storages[key] = obj
        storage_class = getattr(torch_module, obj.storage_class)
        return ("storage", storage_class, key, obj.location, obj.numel)


def pickle_state(obj, protocol=2):
    buffer = io.BytesIO()
    pickler = TorchPickler(buffer, protocol)
    pickler.dump(obj)
    return buffer.getvalue(), pickler.storages


def torch_records(obj, protocol=2, byteorder=b"little"):
    """The (name, bytes) records torch.save writes for obj, in its order, without the folder."""
    data, storages = pickle_state(obj, protocol)
    records = [("data.pkl", data)]
    if byteorder is not None:
        records.append(("byteorder", byteorder))
    records += [(f"data/{key}", storages[key].array.tobytes()) for key in sorted(storages)]
    records += [("version", b"3\n"), (".data/serialization_id", b"1234567890123456789012345678")]
    return records


# ---- ZIP writers --------------------------------------------------------------------------------

def write_zip_torch(path, folder, records, force_zip64=False):
    """As PyTorch's writer (miniz): stored entries, data 64-byte aligned by an "FB" extra field,
    ZIP64 end records always. force_zip64 puts every size and offset in ZIP64 extra fields, as
    entries past 4 GiB have them (the T5 encoder's file is 11 GB)."""
    out = bytearray()
    central = []
    version = 45 if force_zip64 else 20
    for name, data in records:
        name_bytes = f"{folder}/{name}".encode()
        crc = zlib.crc32(data) & 0xFFFFFFFF
        offset = len(out)
        zip64 = struct.pack("<HHQQ", 1, 16, len(data), len(data)) if force_zip64 else b""
        start = offset + 30 + len(name_bytes) + len(zip64) + 4
        padding = (-start) % 64
        extra = zip64 + struct.pack("<HH", 0x4246, padding) + b"Z" * padding
        size32 = 0xFFFFFFFF if force_zip64 else len(data)
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, version, 0, 0, 0, 0x21, crc, size32, size32,
                           len(name_bytes), len(extra))
        out += name_bytes + extra
        assert len(out) % 64 == 0
        out += data
        central.append((name_bytes, crc, len(data), offset))
    directory_offset = len(out)
    for name_bytes, crc, size, offset in central:
        if force_zip64:
            extra = struct.pack("<HHQQQ", 1, 24, size, size, offset)
            size32, offset32 = 0xFFFFFFFF, 0xFFFFFFFF
        else:
            extra, size32, offset32 = b"", size, offset
        out += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, version, version, 0, 0, 0, 0x21, crc,
                           size32, size32, len(name_bytes), len(extra), 0, 0, 0, 0, offset32)
        out += name_bytes + extra
    directory_size = len(out) - directory_offset
    zip64_end = len(out)
    count = len(central)
    out += struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, count, count, directory_size,
                       directory_offset)
    out += struct.pack("<IIQI", 0x07064B50, 0, zip64_end, 1)
    if force_zip64:
        out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    else:
        out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, count, count, directory_size,
                           directory_offset, 0)
    with open(path, "wb") as f:
        f.write(out)


def write_zip_python(path, folder, records, force_zip64=False, deflate=()):
    """Python's zipfile: no alignment; force_zip64 gives every local header a ZIP64 extra field;
    records named in `deflate` are compressed."""
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in records:
            info = zipfile.ZipInfo(f"{folder}/{name}", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED if name in deflate else zipfile.ZIP_STORED
            with archive.open(info, "w", force_zip64=force_zip64) as f:
                f.write(data)


def check_zip(path):
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None, path


# ---- the state dicts ----------------------------------------------------------------------------

def basic_state(rng, location="cpu"):
    """Every dtype core reads, ranks 0 to 5, empty tensors, views sharing a storage, non-contiguous
    views, parameters, the 7-argument rebuild, Python attributes, an odd stride on a dimension of
    one, fp8 through _rebuild_tensor_v3."""
    def floats(n):
        return rng.standard_normal(n).astype(np.float32)

    shared = Storage("f32", floats(20), location)
    transposed = Storage("f32", floats(15))
    columns = Storage("bf16", bf16_bits(floats(15)), location)
    state = OrderedDict()
    state["encoder.conv1.weight"] = Tensor(Storage("f32", floats(108), location), 0, (4, 3, 3, 3))
    state["encoder.conv1.bias"] = Tensor(Storage("f32", floats(4)), 0, (4,))
    state["decoder.head.weight"] = Tensor(Storage("bf16", bf16_bits(floats(12))), 0, (2, 3, 1, 1, 2))
    state["norm.gamma"] = Tensor(Storage("f16", floats(3).astype(np.float16)), 0, (3, 1, 1))
    state["scalar"] = Tensor(Storage("f32", np.array([2.5], np.float32)), 0, ())
    state["empty"] = Tensor(Storage("f32", np.zeros(0, np.float32)), 0, (0, 4))
    state["empty_view"] = Tensor(shared, 2, (0, 3), (3, 1))
    state["count"] = Tensor(Storage("i64", np.array([2**40, -3], np.int64)), 0, (2,))
    state["index"] = Tensor(Storage("i32", np.array([7, -1, 2**31 - 1], np.int32)), 0, (3,))
    fp8 = rng.integers(0, 0x7F, 8).astype(np.uint8) | (rng.integers(0, 2, 8).astype(np.uint8) << 7)
    state["fp8.weight"] = Tensor(Storage("f8e4m3", fp8), 0, (2, 4))
    state["shared.a"] = Tensor(shared, 0, (4, 2))
    state["shared.b"] = Tensor(shared, 8, (3, 4))
    state["transposed"] = Tensor(transposed, 0, (5, 3), (1, 5))
    state["columns"] = Tensor(columns, 1, (3, 2), (5, 2))
    state["expanded"] = Tensor(Storage("f16", floats(3).astype(np.float16)), 0, (2, 3), (0, 1))
    state["unit_dims"] = Tensor(Storage("f32", floats(3)), 0, (3, 1), (1, 7))
    state["param.weight"] = Parameter(Tensor(Storage("f32", floats(4)), 0, (2, 2)))
    state["param.bias"] = Parameter(Tensor(Storage("f32", floats(2)), 0, (2,)), with_state=True)
    state["with_metadata"] = Tensor(Storage("f32", floats(6)), 0, (2, 3), metadata={"m": True})
    state["with_attributes"] = Tensor(Storage("bf16", bf16_bits(floats(4))), 0, (4,),
                                      state={"note": "x"})
    fp8_t = rng.integers(0, 0x7F, 12).astype(np.uint8)
    state["fp8.transposed"] = Tensor(Storage("f8e4m3", fp8_t), 0, (4, 3), (1, 4))
    return state


def converted_state(rng):
    """Dtypes core lacks: converted into copies."""
    doubles = Storage("f64", rng.standard_normal(6))
    state = OrderedDict()
    state["double"] = Tensor(doubles, 0, (2, 3))
    state["double_t"] = Tensor(doubles, 0, (3, 2), (1, 3))
    state["short"] = Tensor(Storage("i16", np.array([-32768, -1, 0, 32767], np.int16)), 0, (4,))
    state["char"] = Tensor(Storage("i8", np.array([-128, -1, 5, 127], np.int8)), 0, (2, 2))
    state["byte"] = Tensor(Storage("u8", np.array([0, 1, 200, 255], np.uint8)), 0, (4,))
    state["bool"] = Tensor(Storage("bool", np.array([True, False, True])), 0, (3,))
    state["untyped"] = Tensor(Storage("untyped", np.array([9, 8, 7, 6, 5], np.uint8)), 1, (4,))
    # v3 offsets count elements of the dtype, not bytes of the UntypedStorage.
    state["u16"] = Tensor(Storage("u16", np.array([1, 65535, 3, 40000, 5], np.uint16)), 1, (3,))
    state["u32"] = Tensor(Storage("u32", np.array([0, 2**32 - 1, 7, 2**31], np.uint32)), 0, (2, 2),
                          (1, 2))
    return state


def with_metadata(state):
    """A module's state_dict(): an OrderedDict carrying `_metadata`, pickled with BUILD."""
    result = OrderedDict(state)
    result._metadata = OrderedDict([("", {"version": 1}), ("encoder", {"version": 2})])
    return result


def tensors_of(state):
    return {key: (value.tensor if isinstance(value, Parameter) else value)
            for key, value in state.items()}


def write_expected(path, state):
    """The tensors a state dict should read as, in a safetensors file."""
    header, blobs, offset = {}, [], 0
    for key, tensor in sorted(tensors_of(state).items()):
        array, st_dtype = tensor.expected()
        blob = np.ascontiguousarray(array).tobytes()
        header[key] = {"dtype": st_dtype, "shape": list(array.shape),
                       "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "."
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(20250601)

    def path(name):
        return os.path.join(out, name)

    def valid(name, state, writer):
        writer(path(name + ".pth"))
        check_zip(path(name + ".pth"))
        write_expected(path(name + ".expected.safetensors"), state)

    # torch.save(model.state_dict()) as PyTorch writes it: protocol 2, aligned, ZIP64 end records.
    basic = basic_state(rng, location="cuda:0")
    valid("pt_basic", basic, lambda p: write_zip_torch(
        p, "pt_basic", torch_records(with_metadata(basic))))
    # A plain dict at protocol 4 (FRAME, SHORT_BINUNICODE, MEMOIZE, STACK_GLOBAL) in Python's
    # zipfile with ZIP64 local headers and unaligned data.
    valid("pt_dict_proto4", basic, lambda p: write_zip_python(
        p, "archive", torch_records(dict(basic), protocol=4), force_zip64=True))
    # A training checkpoint: the state dict under "state_dict" beside other Python values.
    small = OrderedDict(list(basic_state(rng).items())[:6])
    checkpoint = {"epoch": 7, "lr": 0.5, "name": "run", "flags": [True, False, None],
                  "big": 2**40, "neg": -5, "big_neg": -2**40, "huge": 2**63 - 1,
                  "optimizer": {"state": {}, "param_groups": [{"lr": 0.1, "betas": (0.9, 0.99)}]},
                  "state_dict": with_metadata(small)}
    valid("pt_nested_state_dict", small, lambda p: write_zip_torch(
        p, "archive", torch_records(checkpoint)))
    # ... and under "model", at protocol 3 (bytes as BINBYTES).
    model = {"model": dict(small), "step": 3, "blob": b"xy" * 200, "tag": "x" * 300}
    valid("pt_nested_model", small, lambda p: write_zip_torch(
        p, "archive", torch_records(model, protocol=3)))
    # Every size and offset in ZIP64 fields, as in files past 4 GiB.
    valid("pt_zip64", small, lambda p: write_zip_torch(
        p, "pt_zip64", torch_records(small), force_zip64=True))
    converted = converted_state(rng)
    valid("pt_converted", converted, lambda p: write_zip_torch(
        p, "archive", torch_records(converted)))

    # ---- malformed files, one fault each ----
    one = OrderedDict([("w", Tensor(Storage("f32", np.arange(6, dtype=np.float32)), 0, (2, 3))),
                       ("b", Tensor(Storage("f32", np.ones(3, np.float32)), 0, (3,)))])
    records = torch_records(one)

    def replaced(name, data, base=records):
        return [(n, data if n == name else d) for n, d in base]

    with open(path("pt_basic.pth"), "rb") as f:
        whole = f.read()
    with open(path("bad_truncated.pth"), "wb") as f:
        f.write(whole[: len(whole) * 3 // 5])
    write_zip_python(path("bad_compressed.pth"), "archive", records, deflate={"data/0"})
    pkl = records[0][1]
    write_zip_torch(path("bad_opcode.pth"), "archive",
                    replaced("data.pkl", pkl[:2] + b"\xff" + pkl[2:]))
    write_zip_torch(path("bad_protocol0.pth"), "archive",
                    replaced("data.pkl", pickle.dumps({"w": 1}, protocol=0)))
    write_zip_torch(path("bad_no_stop.pth"), "archive", replaced("data.pkl", pkl[:-1]))
    write_zip_torch(path("bad_missing_data.pth"), "archive",
                    [(n, d) for n, d in records if n != "data/1"])
    write_zip_torch(path("bad_offset.pth"), "archive", torch_records(
        {"w": Tensor(Storage("f32", np.zeros(6, np.float32)), 1, (2, 3))}))
    write_zip_torch(path("bad_storage_size.pth"), "archive", torch_records(
        {"w": Tensor(Storage("f32", np.zeros(6, np.float32), numel=7), 0, (7,))}))
    write_zip_torch(path("bad_global.pth"), "archive", torch_records(
        {"w": one["w"], "mean": np.zeros(3, np.float32)}))
    write_zip_torch(path("bad_not_tensor.pth"), "archive", torch_records({"w": one["w"], "step": 3}))
    write_zip_torch(path("bad_dtype.pth"), "archive", torch_records(
        {"w": Tensor(Storage("f8e5m2", np.zeros(4, np.uint8)), 0, (2, 2))}))
    write_zip_torch(path("bad_complex.pth"), "archive", torch_records(
        {"w": Tensor(Storage("c64", np.zeros(2, np.complex64)), 0, (2,))}))
    write_zip_torch(path("bad_big_endian.pth"), "archive", torch_records(one, byteorder=b"big"))
    write_zip_torch(path("bad_no_pickle.pth"), "archive", records[1:])
    write_zip_torch(path("bad_torchscript.pth"), "archive",
                    records + [("constants.pkl", pickle.dumps((), protocol=2))])
    with open(path("bad_legacy.pth"), "wb") as f:  # pre-1.6: pickled magic number, then more
        f.write(pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2) + pickle.dumps(1001, protocol=2))
    with open(path("bad_not_zip.pth"), "wb") as f:
        f.write(b"this is not a checkpoint\n" * 4)


if __name__ == "__main__":
    main()
