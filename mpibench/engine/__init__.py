"""Inference engines; llama.py is the only module that imports llama_cpp."""
