"""Synthetic llama-shaped GGUF files for timing: the real architectures' hyperparameters, random weights.

llama.cpp's timings depend on the tensors' shapes and types, and on their values only through how varied the
blocks' scales are (model.py says why), so a 7B/13B/70B shape can be timed without downloading it. shapes.py holds the shapes (data, with their sources) and the tensor types of
each quantization; gguf_writer.py writes a file streaming; cache.py keeps the files that `synth:` models name.
Every file carries the GGUF keys mpibench.synthetic (true) and mpibench.shape: timing only, never scored.
"""
