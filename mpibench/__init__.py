"""mpibench: benchmark local LLMs with llama.cpp across models, prompts and core counts under MPI."""

__version__ = "0.1.0"
