"""Small results files for the scoring tests, written with the real writer (no inference needed)."""

from __future__ import annotations

from pathlib import Path

from helpers import MODEL, header as base_header
from mpibench.prompts import study_prompts
from mpibench.store.hdf5 import write_results
from mpibench.store.schema import empty_result
from mpibench.tasks import task_id

MODELS = {"small": 135_000_000, "big": 270_000_000}


def header(total: int, config_toml: str = "", prompts=None) -> dict:
    """helpers.header for the study's prompts (or `prompts`) answered by MODELS."""
    prompts = prompts or [{"id": p.id, "category": p.category, "text": p.text} for p in study_prompts()]
    models = [dict(MODEL, name=name, path=f"/{name}.gguf", size_bytes=params // 2, parameters=params)
              for name, params in MODELS.items()]
    return base_header(total, run_id="test-run", config_toml=config_toml, world_size=2, models=models, prompts=prompts)


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
