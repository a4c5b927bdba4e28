"""Regenerate the sample checkpoints, deterministically: ``python -m sample_ckpts.make_samples``.

Each model is seeded, then run for a few training-mode steps on seeded inputs so that its
BatchNorm statistics are not the trivial zeros/ones (a copy bug must show in the values).
The same seeds give the same bytes, so ``git diff`` stays clean after a rerun.
"""
from __future__ import annotations

import argparse
from collections import OrderedDict
from pathlib import Path

import torch
from safetensors.torch import save_file

from sample_ckpts import models

HERE = Path(__file__).resolve().parent


def _trained(model: torch.nn.Module, seed: int, *inputs_shape, extra=None) -> torch.nn.Module:
    """Perturb weights and warm BatchNorm stats with seeded data; no optimiser involved."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.05)
        model.train()
        for _ in range(3):
            x = torch.randn(*inputs_shape, generator=gen)
            model(x) if extra is None else model(x, extra)
    return model.eval()


def _build(cls, seed: int, *args, **kwargs) -> torch.nn.Module:
    torch.manual_seed(seed)
    return cls(*args, **kwargs)


def make(out: Path = HERE) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def save(obj, name: str) -> None:
        path = out / name
        torch.save(obj, path)
        written.append(path)

    # Story 1: attention swap.
    styles = torch.tensor([0, 1])
    self_attn = _trained(_build(models.FontUNet, 1, attention="self"), 1, 2, 1, 32, 32, extra=styles)
    linear_attn = _build(models.FontUNet, 2, attention="linear")
    save(self_attn.state_dict(), "font_unet_self_attention.pt")
    save(linear_attn.state_dict(), "font_unet_linear_attention.pt")

    # Story 2: RGB -> RGBA (plus the same RGB weights as safetensors, and DDP/Lightning wraps).
    rgb = _trained(_build(models.ConvNet, 3, in_chans=3), 3, 4, 3, 16, 16)
    rgba = _build(models.ConvNet, 4, in_chans=4)
    save(rgb.state_dict(), "convnet_rgb.pt")
    save(rgba.state_dict(), "convnet_rgba.pt")
    save_file({k: v.contiguous() for k, v in rgb.state_dict().items()}, out / "convnet_rgb.safetensors",
              metadata={"story": "rgb-to-rgba", "model": "sample_ckpts.models:ConvNet"})
    written.append(out / "convnet_rgb.safetensors")
    save(OrderedDict(("module." + k, v) for k, v in rgb.state_dict().items()), "convnet_rgb_ddp.pt")
    save({
        "epoch": 7,
        "global_step": 700,
        "pytorch-lightning_version": "2.5.0",
        "state_dict": OrderedDict(("model." + k, v) for k, v in rgb.state_dict().items()),
        "hyper_parameters": {"in_chans": 3, "num_classes": 10, "lr": 0.01},
        "optimizer_states": [],
        "lr_schedulers": [],
    }, "convnet_rgb_lightning.ckpt")

    # Story 3: fine-tune (10 -> 100 classes; a projector holding the classifier).
    cls10 = _trained(_build(models.Classifier, 5, num_classes=10), 5, 4, 3, 16, 16)
    cls100 = _build(models.Classifier, 6, num_classes=100)
    projector = _trained(_build(models.Projector, 7), 7, 4, 3, 16, 16)
    save(cls10.state_dict(), "classifier_10.pt")
    save(cls100.state_dict(), "classifier_100.pt")
    save(projector.state_dict(), "projector.pt")

    # Story 4: warm start (conv1 -> backbone_conv, new 20-class new_fc).
    small = _trained(_build(models.SmallNet, 8), 8, 4, 3, 16, 16)
    warm = _build(models.WarmStartNet, 9)
    save(small.state_dict(), "smallnet.pt")
    save(warm.state_dict(), "warmstart_net.pt")

    # Story 5: the silent empty load (nested under 'net', keys gain 'attention_map.').
    att = _trained(_build(models.AttentionNet, 10), 10, 4, 3, 16, 16)
    opt = torch.optim.Adam(att.parameters(), lr=1e-3)
    att(torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(11))).mean().backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    save({
        "net": att.state_dict(),
        "epoch": 30,
        "optimizer": opt.state_dict(),
        "config": {"arch": "attention_net", "lr": 1e-3, "input_size": [3, 64, 64]},
    }, "attention_net_ckpt.pt")
    wrapper = _build(models.AttentionWrapper, 12)
    save(wrapper.state_dict(), "attention_wrapper.pt")
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE, help="folder to write into")
    args = parser.parse_args()
    for path in make(args.out):
        print(f"{path.stat().st_size:>8}  {path.name}")


if __name__ == "__main__":
    main()
