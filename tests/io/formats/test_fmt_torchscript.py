"""TorchScript archives: parameters and buffers by dotted name, without running their code."""
from __future__ import annotations

import zipfile

import pytest
import torch

import ckptlab


class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(3, 4)
        self.register_buffer("running", torch.arange(4.0))
        self.register_buffer("scratch", torch.zeros(2), persistent=False)
        self.cache = torch.ones(5)  # a plain tensor attribute: not in state_dict

    def forward(self, x):
        return self.lin(x) + self.running + self.cache.sum()


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.block = Block()
        self.head = torch.nn.Linear(4, 2, bias=False)
        self.scale = torch.nn.Parameter(torch.tensor(2.0))

    def forward(self, x):
        return self.head(self.block(x)) * self.scale


@pytest.fixture(scope="module")
def scripted(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ts") / "net.pt"
    torch.jit.script(Net()).save(str(path))
    return path


def test_parameters_and_buffers_by_dotted_name(scripted, reads):
    ck = ckptlab.open(scripted)
    expected = torch.jit.load(str(scripted)).state_dict()
    assert ck.format == "torchscript"
    assert ck.keys() == list(expected)
    assert "block.cache" not in ck  # a tensor attribute, not a parameter or buffer
    assert reads == []
    for key, value in expected.items():
        assert torch.equal(ck.tensor(key), value)


def test_its_code_is_never_compiled_or_run(scripted, tmp_path):
    broken = tmp_path / "broken.pt"
    with zipfile.ZipFile(scripted) as zin, zipfile.ZipFile(broken, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if "/code/" in info.filename and info.filename.endswith(".py"):
                # keep the declarations we read as text; make everything else unrunnable
                data = b"\n".join(line for line in data.splitlines()
                                  if line.startswith(b"class ") or b"__parameters__" in line
                                  or b"__buffers__" in line) + b"\n  raise SystemExit('ran')\n"
            zout.writestr(info, data)
    with pytest.raises(Exception):
        torch.jit.load(str(broken))  # torch compiles the code and fails
    ck = ckptlab.open(broken)
    assert ck.keys() == ckptlab.open(scripted).keys()
