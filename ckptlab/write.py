"""The streaming writers' public names, kept importable from here (the code lives in ``ckptlab.writers``)."""
from ckptlab.writers import (  # noqa: F401
    SAFETENSORS_DTYPES,
    SUFFIXES,
    FileSpan,
    OutTensor,
    Progress,
    write,
    write_tensors,
)
