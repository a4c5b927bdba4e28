"""Pure-torch reference models for the conversion tests, written the way their home
libraries write them (nanoGPT, timm, Meta's llama), plus tiny real ``transformers``
models built from configs (random init, no hub access).

Each pure-torch model computes what its transformers counterpart computes, so a
checkpoint converted between the two layouts must give the same outputs.
"""
