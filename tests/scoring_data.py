"""Small results files for the scoring tests, written with the real writer (no inference needed)."""

from __future__ import annotations

from pathlib import Path

from mpibench.prompts import study_prompts
from mpibench.store.hdf5 import write_results
from mpibench.store.schema import empty_result
from mpibench.tasks import task_id

MODELS = {"small": 135_000_000, "big": 270_000_000}


def header(total: int, config_toml: str = "", prompts=None) -> dict:
    prompts = prompts or [{"id": p.id, "category": p.category, "text": p.text} for p in study_prompts()]
    return {
        "run_id": "test-run", "mpibench_version": "0", "config_hash": "h", "config_json": "{}",
        "config_toml": config_toml, "mpi_library_version": "MPI", "world_size": 2, "total_tasks": total,
        "started": "t", "status": "complete",
        "hosts": [{"hostname": "h", "cpu_model": "cpu", "logical_cpus": 2, "physical_cores": 2,
                   "memory_bytes": 1, "kernel": "k", "governor": "g", "smt": "off", "cpus": "0-1"}],
        "workers": [{"rank": 0, "hostname": "h", "pid": 1, "cpus": "0"}],
        "models": [{"name": name, "path": f"/{name}.gguf", "size_bytes": params // 2, "mtime": 0.0,
                    "architecture": "llama", "quantization": "Q4_1", "parameters": params, "context_length": 8,
                    "has_chat_template": 1, "prompt_format": "chat"} for name, params in MODELS.items()],
        "prompts": prompts,
    }


def make_run(run_dir: Path, answers: list[tuple[str, str, int, str]], config_toml: str = "", prompts=None,
             failed: tuple[str, str, int] | None = None) -> Path:
    """results.h5 in run_dir with one ok task per (model, prompt id, threads, answer), plus one failed task."""
    run_dir.mkdir(parents=True, exist_ok=True)
    records = []
    for index, (model, prompt, threads, answer) in enumerate(answers):
        records.append(empty_result(
            index=index, task_id=task_id(model, prompt, threads, 0), model=model, prompt_id=prompt,
            threads=threads, status="ok", answer=answer, token_ns=[1, 2], hostname="h",
            e2e_s=1.0 + index / 10 + (2.0 if model == "big" else 0.0), generated_tokens=2))
    if failed:
        model, prompt, threads = failed
        records.append(empty_result(index=len(records), task_id=task_id(model, prompt, threads, 0), model=model,
                                    prompt_id=prompt, threads=threads, status="failed", error="boom", answer="",
                                    token_ns=[], hostname="h"))
    path = run_dir / "results.h5"
    write_results(path, header(len(records), config_toml, prompts), records)
    return path
