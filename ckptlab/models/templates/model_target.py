"""Template (ckptlab.models.codegen): the remap script's ``load_target()`` when the target is a
model definition (``pkg.module:Model`` or ``path/model.py:Model``), built as ckptlab builds it.

codegen copies ``load_target`` and fills its stand-ins: ``IMPORT_MODEL`` becomes the line(s)
that import the model (``from pkg.module import Model``, or a loader for a ``.py`` file),
``Model`` the class or function called (``Model`` or ``Outer.build``), ``SEED`` and ``KWARGS``
their values. The stand-ins below exist only so this module imports and lints.
"""
import torch

IMPORT_MODEL = None
Model = torch.nn.Identity
SEED = 0
KWARGS = {}


def load_target():
    """The target's initial values: the model definition, built with ckptlab's seed."""
    IMPORT_MODEL
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        model = Model(**KWARGS)
    return model.state_dict()
