import numpy as np
import pytest


@pytest.fixture
def tiny_gguf(tmp_path):
    """Write a small llama-shaped GGUF header-and-tensors file with the gguf package; returns a factory."""
    import gguf

    def make(name="tiny.gguf", template=None, file_type=2):
        path = tmp_path / name
        writer = gguf.GGUFWriter(str(path), "llama")
        writer.add_context_length(256)
        writer.add_file_type(file_type)
        if template:
            writer.add_chat_template(template)
        writer.add_token_list(["<s>", "</s>", "a", "b"])
        writer.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
        writer.add_tensor("output.weight", np.zeros((4, 8), dtype=np.float32))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        return path

    return make
