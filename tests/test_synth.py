"""Synthetic models (issue 16): shapes and files, `mpibench synth`, synth: models and their cache, the synthetic flag
from the file to the results, the score refusal and the memory guard."""

import hashlib
from pathlib import Path

import gguf
import pytest

from helpers import HOST, MODEL, header, mpibench
from mpibench.cli import main
from mpibench.config import ConfigError, build_config
from mpibench.memory import kv_cache_bytes, refusal, refusals
from mpibench.models import builtin_path, inspect_model, read_gguf_header
from mpibench.run import check_memory
from mpibench.store.hdf5 import read_results, write_results
from mpibench.store.schema import empty_result
from mpibench.summary import cells
from mpibench.synth import cache
from mpibench.synth.command import parameters
from mpibench.synth.model import file_size, write
from mpibench.synth.shapes import QUANTS, SHAPES, lookup, tensors
from mpibench.synth.vocab import vocabulary

GIB = 2**30


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_smollm2_q4_1_has_the_real_files_tensors():
    real = {t.name: (t.tensor_type.name, tuple(int(d) for d in t.shape), int(t.n_bytes))
            for t in gguf.GGUFReader(str(builtin_path("smollm2-135m"))).tensors}
    ours = {t.name: (t.type_name, t.dims, t.nbytes) for t in tensors(*lookup("smollm2-135m", "q4_1"))}
    assert ours == real  # Q4_1 layers, F32 norms, the tied embedding in Q8_0 (Q6_K's fallback for 576-wide rows)


@pytest.mark.parametrize("quant", list(QUANTS))
def test_a_written_file_is_its_predicted_size_and_says_it_is_synthetic(tmp_path, quant):
    path = tmp_path / "tiny.gguf"
    digest = write("tiny", quant, path)
    assert path.stat().st_size == file_size("tiny", quant) and digest == sha256(path)
    assert write("tiny", quant, tmp_path / "again.gguf") == digest  # seeded: the same bytes every time
    metadata, params = read_gguf_header(path)
    assert metadata["mpibench.synthetic"] is True and metadata["mpibench.shape"] == "tiny"
    assert params == parameters("tiny") and metadata["general.file_type"] == QUANTS[quant].file_type
    info = inspect_model(build_config("", {"models": str(path)}).models[0])
    assert info.synthetic == 1 and info.kv_bytes_per_token == kv_cache_bytes(2, 2, 32, 32, 1)
    assert not list(tmp_path.glob(".*tmp"))  # written through a temporary name, renamed at the end


def test_q4_k_follows_llama_quantize_more_bits_layers_and_k_fallbacks():
    specs = {s.name: s.type_name for s in tensors(*lookup("llama2-7b", "q4_k"))}
    assert specs["output.weight"] == "Q6_K" and specs["token_embd.weight"] == "Q4_K"
    more = [i for i in range(32) if specs[f"blk.{i}.ffn_down.weight"] == "Q6_K"]
    assert more == [i for i in range(32) if specs[f"blk.{i}.attn_v.weight"] == "Q6_K"]
    assert more[:6] == [0, 1, 2, 3, 6, 9] and more[-4:] == [28, 29, 30, 31]
    small = {s.name: s.type_name for s in tensors(*lookup("smollm2-135m", "q4_k"))}
    assert small["blk.0.attn_q.weight"] == "Q5_0" and small["token_embd.weight"] == "Q8_0"  # 576 % 256 != 0


def test_published_shapes_give_the_known_sizes():
    assert kv_cache_bytes(32, 32, 128, 128, 2048) == GIB  # llama2-7b's F16 KV cache at 2048 positions
    assert abs(parameters("llama2-7b") - 6.738e9) < 1e6 and abs(parameters("llama3-8b") - 8.030e9) < 1e6
    assert abs(parameters("llama2-70b") - 68.98e9) < 1e7
    assert file_size("llama2-7b", "q4_0") == 3_825_738_976


@pytest.mark.parametrize("size", [512, 32000, 49152, 128256])
def test_the_vocabulary_has_the_shapes_size_and_unique_tokens(size):
    tokens, scores, types = vocabulary(size)
    assert len(tokens) == len(set(tokens)) == len(scores) == len(types) == size
    assert tokens[:3] == ["<unk>", "<s>", "</s>"] and tokens[3] == "<0x00>"


def test_synth_list_shows_every_shape_with_file_and_memory(capsys):
    assert main(["synth", "--list"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:3] == ["shape", "params", "layers"] and "memory" in out[0]
    rows = {line.split()[0]: line for line in out[2:2 + len(SHAPES)]}
    assert set(rows) == set(SHAPES)
    assert "3.56 GiB" in rows["llama2-7b"] and "1.00 GiB" in rows["llama2-7b"] and "4.56 GiB" in rows["llama2-7b"]


def test_synth_writes_the_file(tmp_path, capsys):
    out = tmp_path / "t.gguf"
    assert main(["synth", "--shape", "tiny", "--quant", "q8_0", "--out", str(out)]) == 0
    assert f"sha256 {sha256(out)}" in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["--shape", "llama2-8b", "--out", "{tmp}/x.gguf"], "unknown shape 'llama2-8b'; known: llama2-7b"),
    (["--shape", "tiny", "--quant", "q5_0", "--out", "{tmp}/x.gguf"], "unknown quantization 'q5_0'; known: q4_0"),
    (["--shape", "tiny", "--out", "{tmp}/missing/x.gguf"], "cannot write {tmp}/missing/x.gguf: No such file"),
    (["--shape", "tiny", "--out", "{tmp}"], "is a directory"),
    (["--shape", "tiny"], "give --shape NAME and --out FILE"),
    (["--shape", "tiny", "--out", "{tmp}/kept.gguf"], "kept.gguf exists; choose another --out or pass --force"),
])
def test_synth_errors_are_one_line_and_exit_2(tmp_path, capsys, args, message):
    (tmp_path / "kept.gguf").write_text("data")
    args = [a.format(tmp=tmp_path) for a in args]
    assert main(["synth", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("mpibench: error: ") and message.format(tmp=tmp_path) in err
    assert (tmp_path / "kept.gguf").read_text() == "data" and not (tmp_path / "x.gguf").exists()


def test_synth_models_in_a_config_and_their_errors():
    models = build_config('models = ["synth:llama2-7b:q4_0", {name = "synth:tiny:q8_0", prompt_format = '
                          '"Q: {prompt}"}]').models
    assert [(m.name, m.builtin) for m in models] == [("synth:llama2-7b:q4_0", "synth:llama2-7b:q4_0"),
                                                     ("synth:tiny:q8_0", "synth:tiny:q8_0")]
    for bad, message in (("synth:llama2-8b:q4_0", "unknown shape"), ("synth:tiny", "write synth:SHAPE:QUANT"),
                         ("synth:tiny:q3", "unknown quantization")):
        with pytest.raises(ConfigError, match=message):
            build_config("", {"models": bad})


def test_the_cache_generates_once_records_the_sha256_and_replaces_a_partial_file(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path))
    path = builtin_path("synth:tiny:q4_1")
    assert path == tmp_path / "synth" / "v1" / "tiny-q4_1.gguf" and "generating synth:tiny:q4_1" in capsys.readouterr().err
    stamp = path.stat().st_mtime_ns
    assert builtin_path("synth:tiny:q4_1") == path and path.stat().st_mtime_ns == stamp  # reused
    assert capsys.readouterr().err == ""
    info = inspect_model(build_config("", {"models": "synth:tiny:q4_1"}).models[0])
    assert info.sha256 == sha256(path) and info.synthetic == 1
    path.write_bytes(path.read_bytes()[:1000])  # an interrupted copy
    assert builtin_path("synth:tiny:q4_1") == path and sha256(path) == info.sha256


def test_memory_guard_refuses_with_size_memory_and_what_to_do():
    assert refusal("m", 3 * GIB, GIB, 2048, "n1", 4 * GIB) is None
    line = refusal("synth:llama2-70b:q4_0", 36 * GIB, GIB, 2048, "n1", 20 * GIB)
    assert line.startswith("model synth:llama2-70b:q4_0 needs 37.0 GiB (file 36.0 GiB + KV cache 1.0 GiB at n_ctx "
                           "2048), more than the 20.0 GiB node n1 has available (MemAvailable)")
    assert "--allow-oversize" in line and "lower --ctx" in line
    lines = refusals({"small": (GIB, 1000), "big": (10 * GIB, 2**20)}, 1024, {"a": 12 * GIB, "b": 8 * GIB})
    assert len(lines) == 1 and lines[0].startswith("model big needs 11.0 GiB") and "node b" in lines[0]


def test_a_sweep_is_refused_before_any_file_is_generated(tmp_path, monkeypatch):
    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path))
    facts = [{"hostname": "h", "mem_available": 8 * GIB}, {"hostname": "h", "mem_available": 8 * GIB}]
    config = build_config("", {"models": "synth:llama2-7b:q4_0,synth:llama2-13b:q4_0", "kind": "bench",
                               "n_prompt": "512", "n_gen": "4096"})
    with pytest.raises(ConfigError) as refused:
        check_memory(config, facts)
    assert str(refused.value).count("; model ") == 0 and "synth:llama2-13b:q4_0 needs 10.0 GiB" in str(refused.value)
    assert "KV cache 3.1 GiB at n_ctx 4096" in str(refused.value)  # the largest bench test's context
    check_memory(build_config("", {"models": "synth:llama2-7b:q4_0"}), facts)  # 4.6 GiB fits
    assert not list(tmp_path.rglob("*.gguf"))


def test_score_refuses_a_run_of_synthetic_models_and_writes_nothing(tmp_path, capsys):
    name = "synth:tiny:q4_0"
    records = [empty_result(index=0, task_id="t0", model=name, prompt_id="pi", threads=1, status="ok", answer="",
                            token_ns=[1], hostname="h", synthetic=1)]
    path = tmp_path / "results.h5"
    write_results(path, header(1, models=[dict(MODEL, name=name, synthetic=1)], hosts=[dict(HOST)]), records)
    before = path.read_bytes()
    assert main(["score", str(path), "--scorer", "rubric", "--no-plots"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "synthetic models only (synth:tiny:q4_0)" in err and "timing only" in err
    assert path.read_bytes() == before and not (tmp_path / "scores.jsonl").exists()
    results = read_results(path)
    assert results.models[0]["synthetic"] == 1 and results.results[0]["synthetic"] == 1
    assert cells(results.results)[0].series == "synth:tiny:q4_0 (synthetic: timing only)"


@pytest.mark.integration
def test_synthetic_models_run_under_mpiexec_as_llama_cpp_loads_them(tmp_path):
    """Shapes against llama.cpp's own load (llama_model_n_params, llama_model_size), and the synthetic flag from the
    file to the models table and every results row; the second run reuses the cache."""
    names = ["synth:tiny:q8_0", "synth:smollm2-135m:q4_k", "synth:tinyllama-1.1b:q4_k"]
    env = dict(__import__("helpers").mpi_env(), MPIBENCH_CACHE=str(tmp_path / "cache"))
    args = ["bench", "-m", ",".join(names), "-p", "8", "-n", "2", "-r", "1", "--warmup", "0", "-t", "1", "--no-plots"]
    first = mpibench(2, *args, "--out", str(tmp_path / "a"), env=env)
    assert first.returncode == 0, first.stderr
    assert all(f"generating {n}" in first.stderr for n in names)
    results = read_results(tmp_path / "a" / "results.h5")
    models = {m["name"]: m for m in results.models}
    for name in names:
        _, shape, quant = name.split(":")
        specs = tensors(*lookup(shape, quant))
        rows = [r for r in results.results if r["model"] == name]
        assert len(rows) == 2 and all(r["status"] == "ok" and r["synthetic"] == 1 for r in rows)
        assert rows[0]["model_params"] == parameters(shape) == models[name]["parameters"]
        assert rows[0]["model_bytes"] == sum(s.nbytes for s in specs)
        assert models[name]["synthetic"] == 1 and models[name]["sha256"] == sha256(Path(models[name]["path"]))
    second = mpibench(2, *args, "--out", str(tmp_path / "b"), env=env)
    assert second.returncode == 0 and "generating" not in second.stderr


@pytest.mark.integration
def test_a_synthetic_model_answers_to_max_tokens_without_nan(tmp_path):
    """Random weights of a trained model's magnitude: varied tokens (a NaN logit would give one token forever),
    never an end token (its output row is zero), so every answer runs to max_tokens."""
    env = dict(__import__("helpers").mpi_env(), MPIBENCH_CACHE=str(tmp_path / "cache"))
    run = mpibench(2, "run", "--models", "synth:tiny:q4_k", "--prompts", "pi,weather", "--threads", "1",
                   "--max-tokens", "24", "--no-plots", "--out", str(tmp_path / "run"), env=env)
    assert run.returncode == 0, run.stderr
    for row in read_results(tmp_path / "run" / "results.h5").results:
        assert row["finish_reason"] == "length" and row["generated_tokens"] == 24 and row["synthetic"] == 1
        assert len(set(row["answer"])) > 5  # many characters: many tokens, not token 0 (<unk>, empty) again and again
