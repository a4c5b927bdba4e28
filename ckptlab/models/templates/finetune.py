"""Template (ckptlab.models.codegen): the remap script's fine-tune plan, ``param_groups`` as
``ckptlab.param_groups`` makes them. codegen fills the constants (PRETRAINED: the target keys
that hold source weights, less those with new rows) and copies every block below the import.
"""
import re


# -- Fine-tune plan (optional): paste into your training script, after building `model` --
#   optimizer = torch.optim.AdamW(param_groups(model))
#   scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=10)  # keeps the ratio
PRETRAINED = set()  # target keys that carry source weights
LR = 0.001
NEW_LR_MULT = 10.0
FREEZE_LOADED = False
FREEZE = None  # regex: parameters whose name matches are frozen too


def param_groups(model, lr=LR, new_lr_mult=NEW_LR_MULT, freeze_loaded=FREEZE_LOADED, freeze=FREEZE):
    """Pretrained params at lr, new ones at lr * new_lr_mult; frozen ones in no group."""
    names = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        names.setdefault(param, []).append(name)  # a tied parameter once, with all its names
    groups = {"pretrained": [], "new": []}
    for param, param_names in names.items():
        pretrained = any(n in PRETRAINED for n in param_names)
        if (freeze_loaded and pretrained) or (freeze and any(re.search(freeze, n) for n in param_names)):
            param.requires_grad_(False)
        if param.requires_grad:
            groups["pretrained" if pretrained else "new"].append(param)
    rates = {"pretrained": lr, "new": lr * new_lr_mult}
    return [{"name": k, "params": v, "lr": rates[k]} for k, v in groups.items() if v]
