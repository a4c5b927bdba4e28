"""The standalone remap script that ``ckptlab.models.codegen`` writes, as real Python modules.

Each module is importable and linted like any other (tests/test_codegen_templates.py). codegen
copies whole blocks from them, a block being what PEP 8 separates by two blank lines (a
function, a group of constants, the ``__main__`` guard), and fills them in:

- a module-level constant it fills gets a new value (``SOURCE = None`` -> ``SOURCE = 'a.pt'``);
- a stand-in name used in code gets code (``torch.manual_seed(SEED)`` -> ``torch.manual_seed(0)``);
- ``$name`` fields in the script's docstring get text (``string.Template``).

What a module needs only to import and lint (its own docstring, imports of the sibling
templates, stand-ins) sits in blocks codegen never copies. Blocks that hold only comments are
never copied either.
"""
