"""Tests for torch2paddle.torch_reader: torch writes the files, the reader must not need torch."""
from __future__ import annotations

import argparse
import builtins
import io
import os
import pickle
import pickletools
import struct
import subprocess
import sys
import tarfile
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
READER = ROOT / "torch2paddle" / "torch_reader.py"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pimm.utils.safe_pickle import UnsafePickleError  # noqa: E402
from torch2paddle.torch_reader import (  # noqa: E402
    LEGACY_MAGIC,
    CheckpointError,
    UnknownObject,
    load_torch_checkpoint,
)

FORMATS = ["zip", "legacy"]


# ---------------------------------------------------------------- helpers


class TrainArgs:
    """A config class that only exists here, so it is pickled by reference."""

    def __init__(self) -> None:
        self.lr = 0.1
        self.model = "cream_14"
        self.milestones = [30, 60]


class FakeCfgNode(dict):
    """Mimics yacs CfgNode: a dict subclass with an extra instance attribute."""

    def __init__(self, items: dict) -> None:
        super().__init__(items)
        self.__dict__["__immutable__"] = False


class EvilReduce:
    """Pickles as a call of ``func(*args)``."""

    def __init__(self, func: Any, *args: Any) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple:
        return self.func, self.args


def save(obj: Any, path: Path, fmt: str, protocol: int = 2) -> Path:
    torch.save(obj, path, _use_new_zipfile_serialization=(fmt == "zip"), pickle_protocol=protocol)
    return path


def expected(t: torch.Tensor) -> np.ndarray:
    t = t.detach()
    return (t.float() if t.dtype == torch.bfloat16 else t).contiguous().numpy()


def assert_array(got: Any, t: torch.Tensor) -> None:
    want = expected(t)
    assert isinstance(got, np.ndarray)
    assert got.dtype == want.dtype and got.shape == want.shape
    assert got.flags["C_CONTIGUOUS"] and got.flags["OWNDATA"]
    np.testing.assert_array_equal(got, want)


def write_zip(path: Path, records: dict[str, bytes], folder: str = "archive") -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in records.items():
            archive.writestr(f"{folder}/{name}", data)
    return path


def write_legacy(path: Path, main_pickle: bytes) -> Path:
    """A legacy-format file around ``main_pickle``, with no storages."""
    header = b"".join(pickle.dumps(x, protocol=2) for x in
                      (LEGACY_MAGIC, 1001, {"protocol_version": 1001, "little_endian": True}))
    path.write_bytes(header + main_pickle + pickle.dumps([], protocol=2))
    return path


def rewrite_zip(src: Path, dst: Path, edit: Any) -> Path:
    """Copy a zip, letting ``edit(name, data)`` change each record's bytes."""
    with zipfile.ZipFile(src) as old, zipfile.ZipFile(dst, "w") as new:
        for name in old.namelist():
            new.writestr(name, edit(name, old.read(name)))
    return dst


class FakeStorage:
    def __init__(self, pid: tuple) -> None:
        self.pid = pid


class FakeTensor:
    """Pickles like a torch tensor, with any storage id/offset/size/stride we like."""

    def __init__(self, storage: FakeStorage, offset: Any, size: Any, stride: Any) -> None:
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    def __reduce__(self) -> tuple:
        return (torch._utils._rebuild_tensor_v2,
                (self.storage, self.offset, self.size, self.stride, False, OrderedDict()))


class PidPickler(pickle.Pickler):
    def persistent_id(self, obj: Any) -> Any:
        return obj.pid if isinstance(obj, FakeStorage) else None


def crafted_zip(path: Path, obj: Any, storages: dict[str, bytes], byteorder: str = "little") -> Path:
    buf = io.BytesIO()
    PidPickler(buf, protocol=2).dump(obj)
    records = {"data.pkl": buf.getvalue(), "byteorder": byteorder.encode()}
    records.update({f"data/{k}": v for k, v in storages.items()})
    return write_zip(path, records)


def expect_error(path: Path, *fragments: str) -> str:
    with pytest.raises(CheckpointError) as info:
        load_torch_checkpoint(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    for fragment in fragments:
        assert fragment in message
    return message


# ---------------------------------------------------------------- round trips


def tensor_zoo() -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    base = torch.randn(4, 6, generator=gen)
    ints = torch.randint(-100, 100, (3, 5), generator=gen)
    return {
        "base": base, "transposed": base.t(), "sliced": base[1:3, 2:5], "strided": base[:, ::2],
        "row": base[2], "column": base[:, 4], "element": base[3, 5], "empty_slice": base[2:2],
        "f16": torch.randn(3, 2, generator=gen).half(), "f64": torch.randn(5, generator=gen).double(),
        "bf16": torch.randn(2, 3, generator=gen).bfloat16(), "bf16_t": torch.randn(2, 3).bfloat16().t(),
        "i64": ints, "i64_t": ints.t(), "i32": ints.int(), "i16": ints.short(), "i8": ints.to(torch.int8),
        "u8": torch.arange(250, 256, dtype=torch.uint8), "bool": torch.tensor([[True, False], [False, True]]),
        "c64": torch.tensor([1 + 2j, 3 - 4j], dtype=torch.complex64),
        "u16": torch.arange(60000, 60004, dtype=torch.int32).to(torch.uint16),
        "zero_d": torch.tensor(2.5), "zero_d_int": torch.tensor(7), "empty": torch.empty(0, 3),
        "param": torch.nn.Parameter(torch.randn(2, 2, generator=gen)),
    }


@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip_tensors(tmp_path: Path, fmt: str) -> None:
    zoo = tensor_zoo()
    loaded = load_torch_checkpoint(save(zoo, tmp_path / "zoo.pt", fmt))
    assert list(loaded) == list(zoo)
    for key, tensor in zoo.items():
        assert_array(loaded[key], tensor)
    loaded["base"][...] = 0  # views of one storage come back as independent copies
    assert_array(loaded["transposed"], zoo["transposed"])
    assert not np.shares_memory(loaded["sliced"], loaded["strided"])


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("protocol", [1, 2, 4])
def test_round_trip_containers_and_scalars(tmp_path: Path, fmt: str, protocol: int) -> None:
    t = torch.arange(6.0).reshape(2, 3)
    obj = {
        "module.conv.weight": t, "nested": [t.t(), (t[0], {"deep": [t[1]]})],
        "od": OrderedDict([("z", t), ("a", 1)]), "tuple": (1, 2.5, "x"), "int": 3, "big": 2 ** 70,
        "float": 1.5, "str": "héllo", "none": None, "flag": True, "bytes": b"\x00\xff", "set": {1, 2},
        "frozen": frozenset({"a"}), "complex": 1 + 2j, "size": t.shape,
    }
    loaded = load_torch_checkpoint(save(obj, tmp_path / "c.pt", fmt, protocol))
    assert_array(loaded["module.conv.weight"], t)
    assert_array(loaded["nested"][0], t.t())
    assert isinstance(loaded["nested"][1], tuple)
    assert_array(loaded["nested"][1][1]["deep"][0], t[1])
    assert type(loaded["od"]) is OrderedDict and list(loaded["od"]) == ["z", "a"]
    for key in ("tuple", "int", "big", "float", "str", "none", "flag", "bytes", "set", "frozen", "complex"):
        assert loaded[key] == obj[key] and type(loaded[key]) is type(obj[key])
    assert loaded["size"] == (2, 3)


def official_checkpoint() -> tuple[dict, torch.nn.Module]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Flatten(),
                                torch.nn.Linear(4 * 6 * 6, 5))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(2, 3, 8, 8)).sum().backward()
    optimizer.step()
    state = OrderedDict(("module." + k, v) for k, v in model.state_dict().items())
    namespace = argparse.Namespace(batch_size=128, opt="sgd")
    ckpt = {
        "epoch": 42, "arch": "cream_14", "state_dict": state,
        "state_dict_ema": OrderedDict((k, v.clone()) for k, v in state.items()),
        "optimizer": optimizer.state_dict(), "args": TrainArgs(), "version": 2, "metric": 1.5,
        "cfg": FakeCfgNode({"NET": {"SELECTION": 14}, "LR": 0.01}), "namespace": namespace,
        "np_metric": np.float64(0.25), "np_count": np.int32(7),
    }
    return ckpt, model


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("protocol", [1, 2])
def test_official_style_checkpoint(tmp_path: Path, fmt: str, protocol: int) -> None:
    ckpt, _ = official_checkpoint()
    loaded = load_torch_checkpoint(save(ckpt, tmp_path / "official.pth.tar", fmt, protocol))
    assert (loaded["epoch"], loaded["arch"], loaded["version"], loaded["metric"]) == (42, "cream_14", 2, 1.5)
    for name in ("state_dict", "state_dict_ema"):
        assert type(loaded[name]) is OrderedDict and list(loaded[name]) == list(ckpt[name])
        for key, value in ckpt[name].items():
            assert_array(loaded[name][key], value)
    assert list(loaded["state_dict"])[0].startswith("module.")
    opt = loaded["optimizer"]
    assert opt["param_groups"][0]["lr"] == 0.1 and opt["param_groups"][0]["params"] == [0, 1, 2, 3, 4, 5]
    assert_array(opt["state"][0]["momentum_buffer"], ckpt["optimizer"]["state"][0]["momentum_buffer"])

    args = loaded["args"]
    assert isinstance(args, UnknownObject) and type(args).name == "TrainArgs"
    assert type(args).module.endswith("test_torch_reader")
    assert args.state == {"lr": 0.1, "model": "cream_14", "milestones": [30, 60]}
    assert "TrainArgs" in repr(args) and "cream_14" in repr(args)
    cfg = loaded["cfg"]
    assert isinstance(cfg, UnknownObject) and type(cfg).name == "FakeCfgNode"
    assert cfg.dict_items == {"NET": {"SELECTION": 14}, "LR": 0.01}
    assert cfg.state == {"__immutable__": False}
    namespace = loaded["namespace"]
    assert (type(namespace).module, type(namespace).name) == ("argparse", "Namespace")
    assert namespace.state == {"batch_size": 128, "opt": "sgd"}
    assert type(loaded["np_metric"]) is np.float64 and loaded["np_metric"] == 0.25
    assert type(loaded["np_count"]) is np.int32 and loaded["np_count"] == 7
    with pytest.raises(UnsafePickleError, match="refusing"):
        type(args)()  # a placeholder class stays uncallable after loading
    with pytest.raises(UnsafePickleError, match="refusing"):
        type(args).module = "os"  # ... and immutable
    with pytest.raises(TypeError, match="cannot be pickled again"):
        pickle.dumps(args)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("protocol", [2, 4])
def test_numpy_arrays_in_checkpoint(tmp_path: Path, fmt: str, protocol: int) -> None:
    arrays = {"f4": np.arange(6, dtype=np.float32).reshape(2, 3), "be": np.arange(3, dtype=">i8"),
              "fortran": np.asfortranarray(np.arange(6.0).reshape(2, 3)), "empty": np.zeros((0, 2), np.int16),
              "bool": np.array([True, False])}
    loaded = load_torch_checkpoint(save(arrays, tmp_path / "np.pt", fmt, protocol))
    for key, value in arrays.items():
        assert isinstance(loaded[key], np.ndarray), key
        assert loaded[key].dtype == value.dtype.newbyteorder("="), key  # numpy loads in native order
        np.testing.assert_array_equal(loaded[key], value)
    assert type(pickle.loads(pickle.dumps(loaded["f4"]))) is np.ndarray  # saves again as a plain array


@pytest.mark.parametrize("fmt", FORMATS)
def test_whole_module_pickle_loads_as_placeholders(tmp_path: Path, fmt: str) -> None:
    model = torch.nn.Linear(2, 3)
    loaded = load_torch_checkpoint(save(model, tmp_path / "model.pt", fmt))
    assert type(loaded).name == "Linear"
    assert_array(loaded.state["_parameters"]["weight"], model.weight)


def test_legacy_layout_matches_torch(tmp_path: Path) -> None:
    """Pin the legacy layout: 3 header pickles, main pickle, key list, then per key int64 numel + bytes."""
    tensors = {"a": torch.arange(3.0), "b": torch.arange(2.0) + 10}
    stream = io.BytesIO(save(tensors, tmp_path / "l.pt", "legacy").read_bytes())
    assert pickle.load(stream) == LEGACY_MAGIC and pickle.load(stream) == 1001
    assert pickle.load(stream)["little_endian"] is True
    for _ in pickletools.genops(stream):  # skip the main pickle without running it
        pass
    chunks = []
    for _ in pickle.load(stream):
        (numel,) = struct.unpack("<q", stream.read(8))
        chunks.append(stream.read(numel * 4))
    assert stream.read() == b""
    assert sorted(chunks) == sorted(t.numpy().tobytes() for t in tensors.values())


def test_legacy_cuda_storage_and_storage_views(tmp_path: Path) -> None:
    """Old GPU checkpoints name ``torch.cuda.FloatStorage``; pre-0.4 storage views are rejected."""
    data = save({"a": torch.arange(12.0)[2:6]}, tmp_path / "l.pt", "legacy").read_bytes()
    data = data.replace(b"ctorch\nFloatStorage\n", b"ctorch.cuda\nFloatStorage\n")
    (tmp_path / "cuda.pt").write_bytes(data)
    np.testing.assert_array_equal(load_torch_checkpoint(tmp_path / "cuda.pt")["a"], [2.0, 3.0, 4.0, 5.0])
    assert data.count(b"K\x0cNt") == 1  # numel 12, then view_metadata None
    (tmp_path / "view.pt").write_bytes(data.replace(b"K\x0cNt", b"K\x0c(X\x01\x00\x00\x00vK\x02K\x06tt"))
    expect_error(tmp_path / "view.pt", "storage views", "not supported")


def test_big_endian_zip_and_crafted_views(tmp_path: Path) -> None:
    values = np.arange(6, dtype=">f4")
    storage = FakeStorage(("storage", torch.FloatStorage, "0", "cpu", 6))
    obj = {"t": FakeTensor(storage, 1, (2, 2), (1, 2)), "bcast": FakeTensor(storage, 5, (3, 2), (0, 0))}
    loaded = load_torch_checkpoint(crafted_zip(tmp_path / "be.pt", obj, {"0": values.tobytes()}, "big"))
    np.testing.assert_array_equal(loaded["t"], [[1, 3], [2, 4]])
    np.testing.assert_array_equal(loaded["bcast"], np.full((3, 2), 5.0))
    assert loaded["t"].dtype == np.float32 and loaded["t"].dtype.isnative


# ---------------------------------------------------------------- hostile files


def hostile_objects(marker: Path) -> dict[str, Any]:
    cmd = f"touch {marker}"
    code = f"__import__('os').system({cmd!r})"
    return {
        "os.system": EvilReduce(os.system, cmd), "subprocess.call": EvilReduce(subprocess.call, ["touch", str(marker)]),
        "subprocess.Popen": EvilReduce(subprocess.Popen, ["touch", str(marker)]),
        "eval": EvilReduce(builtins.eval, code), "exec": EvilReduce(builtins.exec, code),
    }


def hostile_pickles(marker: Path) -> dict[str, bytes]:
    cmd = f"touch {marker}".encode()
    raw = {name: pickle.dumps(obj, protocol=2) for name, obj in hostile_objects(marker).items()}
    raw["protocol4"] = pickle.dumps(EvilReduce(os.system, cmd.decode()), protocol=4)
    raw["inst"] = b"(S'" + cmd + b"'\nios\nsystem\n."
    raw["obj"] = b"(cos\nsystem\nS'" + cmd + b"'\no."
    raw["getattr_import"] = (b"cbuiltins\ngetattr\n(cbuiltins\n__import__\n(S'os'\ntRS'system'\ntR(S'"
                             + cmd + b"'\ntR.")
    raw["getattr_module"] = b"cbuiltins\ngetattr\n(cos\npath\nS'system'\ntR(S'" + cmd + b"'\ntR."
    raw["reconstructor"] = b"ccopy_reg\n_reconstructor\n(cos\nsystem\ncbuiltins\neval\nS'" + cmd + b"'\ntR."
    raw["newobj_real"] = b"ccopyreg\n__newobj__\n(cbuiltins\nset\ntR."
    raw["from_type"] = b"ctorch._tensor\n_rebuild_from_type_v2\n(cposix\nsystem\nNS'" + cmd + b"'\n\x85NtR."
    raw["nested_in_dict"] = b"(dp0\nS'state_dict'\np1\n(S'" + cmd + b"'\nios\nsystem\ns."
    return raw


@pytest.fixture
def marker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path / "MARKER"


@pytest.mark.parametrize("container", ["raw", "zip", "legacy"])
def test_hostile_pickles_are_refused(tmp_path: Path, marker: Path, container: str) -> None:
    for name, payload in hostile_pickles(marker).items():
        path = tmp_path / f"{name}.{container}"
        if container == "raw":
            path.write_bytes(payload)
        elif container == "zip":
            write_zip(path, {"data.pkl": payload, "byteorder": b"little"})
        else:
            write_legacy(path, payload)
        expect_error(path, "refusing")
        assert not marker.exists(), name


@pytest.mark.parametrize("fmt", FORMATS)
def test_hostile_objects_saved_by_torch_are_refused(tmp_path: Path, marker: Path, fmt: str) -> None:
    for name, evil in hostile_objects(marker).items():
        path = save({"state_dict": {"w": torch.ones(2)}, "payload": evil}, tmp_path / f"{name}.pt", fmt)
        message = expect_error(path, "refusing", name.split(".")[-1])
        assert message.startswith("refusing to call ")
        assert not marker.exists(), name


# ---------------------------------------------------------------- bad files


def test_missing_directory_empty(tmp_path: Path) -> None:
    expect_error(tmp_path / "nope.pt", "no such file")
    expect_error(tmp_path, "not a regular file")
    (tmp_path / "empty.pt").write_bytes(b"")
    expect_error(tmp_path / "empty.pt", "empty file")


@pytest.mark.parametrize("fmt", FORMATS)
def test_truncated_checkpoints(tmp_path: Path, fmt: str) -> None:
    ckpt, _ = official_checkpoint()
    data = save(ckpt, tmp_path / "full.pt", fmt).read_bytes()
    for cut in (len(data) // 2, len(data) - 3, 100, 10):
        path = tmp_path / f"cut{cut}.pt"
        path.write_bytes(data[:cut])
        expect_error(path)


def test_garbage_files(tmp_path: Path) -> None:
    (tmp_path / "random.pt").write_bytes(np.random.default_rng(0).bytes(4096))
    expect_error(tmp_path / "random.pt")
    (tmp_path / "text.pt").write_text("epoch: 3\nstate_dict: nothing here\n")
    expect_error(tmp_path / "text.pt", "not a PyTorch checkpoint")
    (tmp_path / "plain.pkl").write_bytes(pickle.dumps({"a": 1}))
    expect_error(tmp_path / "plain.pkl", "not a PyTorch checkpoint")
    write_zip(tmp_path / "nodata.zip", {"README": b"hi", "data/0": b"1234"})
    expect_error(tmp_path / "nodata.zip", "not a PyTorch checkpoint")
    with tarfile.open(tmp_path / "old.tar", "w") as tar:
        tar.add(tmp_path / "text.pt", arcname="sys_info")
    expect_error(tmp_path / "old.tar", "tar")


def test_storage_size_lies(tmp_path: Path) -> None:
    tensor = torch.arange(5.0)
    legacy = save({"w": tensor}, tmp_path / "l.pt", "legacy").read_bytes()
    header_at = len(legacy) - 5 * 4 - 8
    assert struct.unpack_from("<q", legacy, header_at) == (5,)
    for lie in (4, 6, 2 ** 62):
        path = tmp_path / f"lie{lie}.pt"
        path.write_bytes(legacy[:header_at] + struct.pack("<q", lie) + legacy[header_at + 8:])
        expect_error(path, "header says")
    zipped = save({"w": tensor}, tmp_path / "z.pt", "zip")
    short = rewrite_zip(zipped, tmp_path / "short.pt", lambda n, d: d[:-4] if "/data/" in n else d)
    expect_error(short, "bytes but 20 are declared")
    missing = tmp_path / "missing.pt"
    with zipfile.ZipFile(zipped) as src, zipfile.ZipFile(missing, "w") as dst:
        for name in src.namelist():
            if "/data/" not in name:
                dst.writestr(name, src.read(name))
    expect_error(missing, "missing")


@pytest.mark.parametrize("payload, fragment", [
    (b"\x80\x02}r\xf0\xff\xff\xff.", "memo index"),  # LONG_BINPUT 4294967280: CPython would allocate 32 GiB
    (b"\x80\x03B\xff\xff\xff\xf0abc.", "corrupt"),  # BINBYTES claiming 4 GiB
    (b"\x80\x04\x8e" + struct.pack("<Q", 2 ** 62) + b"abc.", "corrupt"),  # BINBYTES8 claiming 4 EiB
])
def test_pickle_bombs(tmp_path: Path, payload: bytes, fragment: str) -> None:
    expect_error(write_zip(tmp_path / "bomb.pt", {"data.pkl": payload}), fragment)
    expect_error(write_legacy(tmp_path / "bomb_legacy.pt", payload), fragment)


@pytest.mark.parametrize("pid, tensor_args, fragment", [
    (("storage", torch.FloatStorage, "0", "cpu", 4), (3, (2,), (1,)), "exceeds storage"),
    (("storage", torch.FloatStorage, "0", "cpu", 4), (0, (2, 2), (3, 1)), "exceeds storage"),
    (("storage", torch.FloatStorage, "0", "cpu", 4), (0, (2,), (-1,)), "malformed tensor stride"),
    (("storage", torch.FloatStorage, "0", "cpu", 4), (-1, (1,), (1,)), "malformed tensor view"),
    (("storage", torch.FloatStorage, "0", "cpu", 4), (0, (2 ** 20,) * 4, (0,) * 4), "absurd"),
    (("storage", torch.FloatStorage, "0", "cpu", 10 ** 12), (0, (1,), (1,)), "file has only"),
    (("storage", torch.QInt8Storage, "0", "cpu", 4), (0, (1,), (1,)), "unsupported storage type"),
    (("storage", torch.FloatStorage, "0", "cpu"), (0, (1,), (1,)), "unsupported persistent id"),
])
def test_corrupt_storage_views(tmp_path: Path, pid: tuple, tensor_args: tuple, fragment: str) -> None:
    obj = {"t": FakeTensor(FakeStorage(pid), *tensor_args)}
    expect_error(crafted_zip(tmp_path / "bad.pt", obj, {"0": bytes(16)}), fragment)


@pytest.mark.parametrize("fmt", FORMATS)
def test_mutated_files_only_raise_checkpoint_error(tmp_path: Path, fmt: str) -> None:
    """Random byte changes (in the zip: inside data.pkl, re-zipped so CRCs stay valid)."""
    ckpt, _ = official_checkpoint()
    original = save(ckpt, tmp_path / "ok.pt", fmt)
    records: dict[str, bytes] = {}
    if fmt == "zip":
        with zipfile.ZipFile(original) as archive:
            records = {name: archive.read(name) for name in archive.namelist()}
    target = next((n for n in records if n.endswith("/data.pkl")), None)
    data = records[target] if target else original.read_bytes()
    rng = np.random.default_rng(1)
    path = tmp_path / "mutated.pt"
    for _ in range(200):
        mutated = bytearray(data)
        for pos in rng.integers(0, len(data), size=int(rng.integers(1, 4))):
            mutated[pos] = int(rng.integers(0, 256))
        if target:
            with zipfile.ZipFile(path, "w") as archive:
                for name, record in records.items():
                    archive.writestr(name, bytes(mutated) if name == target else record)
        else:
            path.write_bytes(bytes(mutated))
        try:
            load_torch_checkpoint(path)
        except CheckpointError as exc:
            assert "\n" not in str(exc) and str(path) in str(exc)


def test_reader_does_not_import_torch(tmp_path: Path) -> None:
    obj = {"w": torch.ones(2, 3), "args": TrainArgs(), "metric": np.float32(0.5)}
    zipped, legacy = save(obj, tmp_path / "z.pt", "zip"), save(obj, tmp_path / "l.pt", "legacy")
    script = (
        "import sys, importlib.util\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        "sys.modules['torch'] = None\n"
        f"spec = importlib.util.spec_from_file_location('torch_reader_alone', {str(READER)!r})\n"
        "mod = importlib.util.module_from_spec(spec)\n"
        "sys.modules['torch_reader_alone'] = mod\n"
        "spec.loader.exec_module(mod)\n"
        "for p in sys.argv[1:]:\n"
        "    ckpt = mod.load_torch_checkpoint(p)\n"
        "    assert ckpt['w'].shape == (2, 3) and ckpt['metric'] == 0.5\n"
        "    assert ckpt['args'].state['model'] == 'cream_14'\n"
        "assert sys.modules['torch'] is None\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", script, str(zipped), str(legacy)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
