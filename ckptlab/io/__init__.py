"""Reading and writing files: the first stage of the pipeline, and the only one that touches bytes.

- ``formats/``: one reader per on-disk format (torch zip, legacy pickle, safetensors, shards,
  DCP, TorchScript), ckptlab's own restricted pickle machine, and the named limits.
- ``checkpoint``: the lazy, read-only ``Checkpoint`` view every later stage sees;
  ``containers`` finds the state_dict inside a nested file, ``counts`` says what it counts.
- ``sources``: anything a user passes (path, mapping, module, model spec) as a ``Checkpoint``;
  ``model_target``: a model definition read as keys and shapes (meta device).
- ``windows`` / ``buffers``: a tensor's bytes in bounded windows, for the value scans.
- ``allowed_roots``: which server paths the web app may read.
- ``writers/``: streaming, atomic writers (.safetensors, .pt), text files, extras kept beside tensors.

Nothing here imports a later stage (recipe, align, merge, values, models).
"""
