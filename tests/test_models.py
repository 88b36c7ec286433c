import pytest

from mpibench.config import ModelSpec
from mpibench.models import DEFAULT_COMPLETION_FORMAT, ModelError, inspect_model, read_gguf_header


def test_header_gives_architecture_quantization_and_parameters(tiny_gguf):
    info = inspect_model(ModelSpec("tiny", path=str(tiny_gguf())))
    assert (info.architecture, info.quantization, info.parameters, info.context_length) == ("llama", "Q4_0", 64, 256)
    assert not info.has_chat_template and info.prompt_format == DEFAULT_COMPLETION_FORMAT


def test_chat_template_is_detected_not_run(tiny_gguf):
    evil = "{{ ''.__class__.__mro__[1].__subclasses__() }}"
    info = inspect_model(ModelSpec("t", path=str(tiny_gguf(template=evil))))
    assert info.has_chat_template and info.prompt_format == "chat"
    metadata, _ = read_gguf_header(info.path)
    assert metadata["tokenizer.chat_template"] == evil


def test_configured_prompt_format_wins(tiny_gguf):
    info = inspect_model(ModelSpec("t", path=str(tiny_gguf()), prompt_format="Q: {prompt}\nA:"))
    assert info.prompt_format == "Q: {prompt}\nA:"


def test_missing_not_gguf_and_truncated_files_are_refused(tmp_path, tiny_gguf):
    with pytest.raises(ModelError, match="does not exist"):
        inspect_model(ModelSpec("m", path=str(tmp_path / "none.gguf")))
    text = tmp_path / "notes.gguf"
    text.write_text("hello, not a model")
    with pytest.raises(ModelError, match="not a GGUF model file"):
        inspect_model(ModelSpec("m", path=str(text)))
    whole = tiny_gguf().read_bytes()
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(whole[:60])
    with pytest.raises(ModelError, match="truncated"):
        inspect_model(ModelSpec("m", path=str(cut)))


def test_builtin_default_model_is_smollm2():
    info = inspect_model(ModelSpec("smollm2-135m", builtin="smollm2-135m"))
    assert info.architecture == "llama" and info.quantization == "Q4_1"
    assert 100e6 < info.parameters < 200e6 and info.prompt_format == "chat"


def test_kv_shape_comes_from_the_header_with_llama_cpp_defaults():
    from mpibench.models import kv_shape

    info = inspect_model(ModelSpec("smollm2-135m", builtin="smollm2-135m"))  # SmolLM2-135M: 30 layers, 3 KV heads of 64
    assert (info.n_layers, info.n_kv_heads, info.key_length, info.value_length) == (30, 3, 64, 64)
    bare = {"llama.block_count": 32, "llama.attention.head_count": 32, "llama.embedding_length": 4096}
    assert kv_shape(bare, "llama") == {"n_layers": 32, "n_kv_heads": 32, "key_length": 128, "value_length": 128}
    assert kv_shape({"llama.attention.head_count_kv": None}, "llama") == \
        {"n_layers": 0, "n_kv_heads": 0, "key_length": 0, "value_length": 0}  # per-layer arrays are not read
