"""The known-answer world: generated scenes and edits whose true boxes and text are known, so a
pipeline's output can be scored (see `got_data.eval.fidelity`) and tiny models can be trained on it."""
