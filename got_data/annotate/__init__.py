"""Annotation pipelines: stages that call the model pools, and the runner that streams inputs to shards."""
