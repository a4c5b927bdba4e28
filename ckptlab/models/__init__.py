"""What needs a model: would a checkpoint load (``load_check``), does it behave like its source
(``function_check``), what it costs (``speed``; ``inputs`` feeds both), warm start
(``warmstart.load_into``), fine-tune plans (``finetune.param_groups``), and code export
(``codegen``, its script's code in ``templates/``)."""
