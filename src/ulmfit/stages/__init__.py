"""The stages: each a function of paths and a settings object (`ulmfit.settings`) in, artifacts out.

data.py (prepare, tokenize), lm.py (pretrain, finetune_lm, evaluate_lm, lr_find_lm, generate),
classifier.py (train_classifier), self_train.py, evaluate.py (evaluate, predict, export_classifier),
baseline.py (TF-IDF + logistic regression). `ulmfit.api` re-exports them; the commands and `ulmfit run`
call exactly these. Below this layer nothing knows of stages: training/ runs a task, models/ holds modules.
"""
