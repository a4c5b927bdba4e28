"""The bundled demo pairs (one per story of DESIGN.md), with the models that made them.

Knowing the models lets the app offer verification and the fine-tune plan for a demo pair
without the visitor typing a model definition.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ckptlab.io.allowed_roots import SAMPLES_DIR

MODELS = "sample_ckpts.models"


@dataclass(frozen=True)
class SampleSide:
    file: str
    model: str
    kwargs: dict = field(default_factory=dict)

    @property
    def path(self) -> str:
        return str(SAMPLES_DIR / self.file)


@dataclass(frozen=True)
class SamplePair:
    title: str
    explain: str
    source: SampleSide
    target: SampleSide


PAIRS: tuple[SamplePair, ...] = (
    SamplePair(
        "Silent empty load (weights under 'net', every key needs 'attention_map.')",
        "A pretrained AttentionNet saved under checkpoint['net'], loaded into a wrapper that holds it as "
        "self.attention_map: no key matches, so load_state_dict(strict=False) would load nothing and say "
        "nothing. Accept the suggested prefix to feed every key.",
        SampleSide("attention_net_ckpt.pt", f"{MODELS}:AttentionNet"),
        SampleSide("attention_wrapper.pt", f"{MODELS}:AttentionWrapper"),
    ),
    SamplePair(
        "Attention swap (SelfAttention -> LinearAttention UNet)",
        "Everything but the attention layers loads by name; the new attention starts fresh.",
        SampleSide("font_unet_self_attention.pt", f"{MODELS}:FontUNet", {"attention": "self"}),
        SampleSide("font_unet_linear_attention.pt", f"{MODELS}:FontUNet", {"attention": "linear"}),
    ),
    SamplePair(
        "RGB -> RGBA (conv1 takes a 4th input channel)",
        "conv1.weight is (8, 3, 3, 3) in the source and (8, 4, 3, 3) in the target: pad dim 1 with zeros.",
        SampleSide("convnet_rgb.pt", f"{MODELS}:ConvNet", {"in_chans": 3}),
        SampleSide("convnet_rgba.pt", f"{MODELS}:ConvNet", {"in_chans": 4}),
    ),
    SamplePair(
        "Fine-tune: 10 -> 100 classes",
        "The backbone loads; the head fc grows from 10 to 100 rows.",
        SampleSide("classifier_10.pt", f"{MODELS}:Classifier", {"num_classes": 10}),
        SampleSide("classifier_100.pt", f"{MODELS}:Classifier", {"num_classes": 100}),
    ),
    SamplePair(
        "Fine-tune: projector checkpoint -> classifier (strip 'classifier.')",
        "The projector holds the classifier under 'classifier.'; strip it, and its own projector keys go unused.",
        SampleSide("projector.pt", f"{MODELS}:Projector"),
        SampleSide("classifier_100.pt", f"{MODELS}:Classifier", {"num_classes": 100}),
    ),
    SamplePair(
        "Warm start (conv1 -> backbone_conv, new 20-class head)",
        "conv1 was renamed backbone_conv; new_fc is new and starts fresh.",
        SampleSide("smallnet.pt", f"{MODELS}:SmallNet"),
        SampleSide("warmstart_net.pt", f"{MODELS}:WarmStartNet"),
    ),
    SamplePair(
        "DDP checkpoint ('module.' prefix)",
        "Saved from DistributedDataParallel: every key starts with 'module.'.",
        SampleSide("convnet_rgb_ddp.pt", f"{MODELS}:ConvNet", {"in_chans": 3}),
        SampleSide("convnet_rgb.pt", f"{MODELS}:ConvNet", {"in_chans": 3}),
    ),
    SamplePair(
        "Lightning checkpoint ('state_dict' with 'model.' keys)",
        "A Lightning .ckpt: the weights sit under 'state_dict' with a 'model.' prefix, beside epoch and "
        "hyper-parameters.",
        SampleSide("convnet_rgb_lightning.ckpt", f"{MODELS}:ConvNet", {"in_chans": 3}),
        SampleSide("convnet_rgb.pt", f"{MODELS}:ConvNet", {"in_chans": 3}),
    ),
)
