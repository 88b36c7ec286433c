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
