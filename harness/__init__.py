"""Evaluation harness for object-aware self-supervised pretraining."""
