"""What needs a model: load checks and function/speed comparison (``verify``), warm start
(``warmstart.load_into``), fine-tune plans (``finetune.param_groups``), and code export (``codegen``)."""
