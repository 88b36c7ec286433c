import pytest

from mpibench.config import ConfigError, ModelSpec, build_config, default_thread_counts, parse_int_list


def test_defaults_are_the_study_queries_on_the_builtin_model():
    config = build_config()
    assert [m.name for m in config.models] == ["smollm2-135m"]
    assert [p.id for p in config.prompts] == ["pi", "weather", "mongodb", "integral", "story"]
    assert config.prompts[0].text == "What is the value of pi?"
    assert config.threads is None and config.repetitions == 1


def test_toml_and_cli_overrides_with_cli_winning():
    toml = 'threads = [1, 2]\nrepetitions = 2\nmodels = ["gemma3-270m", "/m/llama-7b.Q4_0.gguf"]\n'
    config = build_config(toml, {"threads": "1-8*2", "max_tokens": 16, "prompts": "pi,story"})
    assert config.threads == (1, 2, 4, 8)
    assert config.repetitions == 2 and config.max_tokens == 16
    assert config.models == (ModelSpec("gemma3-270m", builtin="gemma3-270m"),
                             ModelSpec("llama-7b.Q4_0", path="/m/llama-7b.Q4_0.gguf"))
    assert [p.id for p in config.prompts] == ["pi", "story"]


def test_model_tables_and_custom_prompts():
    toml = '''
[[models]]
name = "llama-13b"
path = "/m/13b.gguf"
prompt_format = "Q: {prompt}\\nA:"

[[prompts]]
id = "capital"
text = "What is the capital of France?"
'''
    config = build_config(toml)
    assert config.models[0] == ModelSpec("llama-13b", path="/m/13b.gguf", prompt_format="Q: {prompt}\nA:")
    assert config.prompts[0].id == "capital" and config.prompts[0].category == "custom"


@pytest.mark.parametrize("toml, overrides, message", [
    ("thread = [1]", {}, "Did you mean 'threads'"),
    ("", {"threads": "0,1"}, "positive integer"),
    ("threads = [-2]", {}, "positive integer"),
    ("threads = []", {}, "non-empty"),
    ("", {"threads": "4-2"}, "ends before it starts"),
    ("", {"threads": "two"}, "not a number"),
    ("", {"threads": "1-2*0"}, "the factor of '1-2*0' must be 2 or more"),
    ("", {"threads": "1-8*1"}, "the factor of '1-8*1' must be 2 or more"),
    ("prompts = []", {}, "prompt list is empty"),
    ("", {"prompts": "pie"}, "Did you mean 'pi'"),
    ("models = []", {}, "model list is empty"),
    ('models = ["a.gguf", "b/a.gguf"]', {}, "unique"),
    ("repetitions = 0", {}, "repetitions must be a positive integer"),
    ("max_tokens = 'many'", {}, "max_tokens must be a positive integer"),
    ("[[models]]\nname='x'\npth='/a'", {}, "Did you mean 'path'"),
    ("[[models]]\nname='x'\npath='/a'\nprompt_format='no placeholder'", {}, "{prompt}"),
    ("threads = [1", {}, "not valid TOML"),
])
def test_bad_configurations_are_explained(toml, overrides, message):
    with pytest.raises(ConfigError, match=None) as error:
        build_config(toml, overrides)
    assert message in str(error.value)


def test_config_hash_ignores_output_location_only():
    a = build_config("", {"out": "x"})
    assert a.hash() == build_config("", {"out": "y"}).hash()
    assert a.hash() != build_config("", {"max_tokens": 7}).hash()


def test_int_lists_and_default_thread_counts():
    assert parse_int_list("1,2,4-6", "t") == (1, 2, 4, 5, 6)
    assert parse_int_list("1-64*2", "t") == (1, 2, 4, 8, 16, 32, 64)
    assert default_thread_counts(2) == (1, 2)
    assert default_thread_counts(6) == (1, 2, 3, 4, 5, 6)
    assert default_thread_counts(16) == (1, 2, 4, 8, 16)
    assert default_thread_counts(12) == (1, 2, 4, 8, 12)


def test_a_base_configuration_keeps_what_the_flags_do_not_give():
    stored = build_config("", {"prompts": "pi", "threads": "1,2", "max_tokens": 9, "repetitions": 3})
    resumed = build_config("", {"timeout": 100.0}, base=stored)
    assert resumed.hash() == stored.hash() and resumed.timeout == 100.0 and resumed.max_tokens == 9
    assert build_config("", {"max_tokens": 4}, base=stored).hash() != stored.hash()
