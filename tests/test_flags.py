"""One flag vocabulary for run and bench (llama-bench's short flags), fixed values as choices, an example in
every subcommand's help, and `run --dry-run` under a real mpiexec."""

import argparse
import re

import pytest

from helpers import mpibench
from mpibench.cli import main, parser
from mpibench.progress import format_eta
from mpibench.store.hdf5 import read_results


def parse(*argv: str) -> argparse.Namespace:
    return parser().parse_args(list(argv))


def test_run_and_bench_share_llama_benchs_short_flags():
    common = ["-m", "a,b", "-t", "1-2", "-r", "3", "--warmup", "1", "--ctx", "512", "--seed", "7", "-o", "jsonl",
              "--out", "d"]
    for command in ("run", "bench"):
        args = parse(command, *common)
        assert (args.models, args.threads, args.repetitions, args.warmup, args.n_ctx, args.seed, args.output_format,
                args.out) == ("a,b", "1-2", 3, 1, 512, 7, "jsonl", "d")
        assert parse(command, "--model", "x").models == parse(command, "--models", "x").models == "x"
        assert parse(command).output_format == "md"  # llama-bench's default
    assert parse("run", "-n", "64").max_tokens == 64  # llama-cli's -n: at most 64 tokens per answer
    assert parse("bench", "-n", "64").n_gen == "64" and parse("bench", "-p", "512").n_prompt == "512"  # tg64, pp512


def test_bench_o_is_the_output_format_not_a_directory(capsys):
    with pytest.raises(SystemExit) as stop:
        parse("bench", "-o", "results/x")
    assert stop.value.code == 2
    assert "invalid choice: 'results/x' (choose from 'md', 'csv', 'json', 'jsonl')" in capsys.readouterr().err


def test_every_subcommand_help_ends_with_an_example():
    (sub,) = [a for a in parser()._actions if isinstance(a, argparse._SubParsersAction)]
    for name, command in sub.choices.items():
        example = command.format_help().split("\nexample:\n  ")
        assert len(example) == 2 and f"mpibench {name}" in example[1], name


def test_score_takes_ctx_for_the_judge_only(capsys):
    assert parse("score", "r.h5", "--ctx", "512").judge_ctx == parse("score", "r.h5", "--judge-ctx", "512").judge_ctx
    assert main(["score", "missing.h5", "--scorer", "rubric", "--ctx", "512"]) == 2
    assert capsys.readouterr().err == "mpibench: error: --ctx applies to --scorer judge\n"


@pytest.mark.integration
def test_dry_run_prints_the_matrix_the_nodes_and_an_estimate_from_an_earlier_run(tmp_path):
    folder = tmp_path / "results"
    first = mpibench(1, "run", "-m", "smollm2-135m", "--prompts", "pi", "-t", "1", "-n", "8", "--no-plots",
                     "--out", str(folder / "first"))
    assert first.returncode == 0, first.stderr
    # counts read as English: "1 task", "1 model", "1 rep", "1 rank"
    assert f"1 task (1 model x 1 prompt x threads 1 x 1 rep) on 1 rank -> {folder / 'first'}" in first.stderr
    assert "mpibench: 1 task ok, 0 failed" in first.stderr
    journal = (folder / "first" / "journal.jsonl").read_bytes()
    proc = mpibench(2, "run", "-m", "smollm2-135m", "--prompts", "pi,weather", "-t", "1", "-n", "8", "-r", "2",
                    "--warmup", "1", "--dry-run", "--out", str(folder / "second"), timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert not (folder / "second").exists() and (folder / "first" / "journal.jsonl").read_bytes() == journal
    assert re.search(r"node \S+ offers \d+ cores? \(CPUs .*\) to ranks 0-1, rank 0 coordinates", proc.stderr)
    assert "would run" in proc.stderr
    assert "6 tasks (1 model x 2 prompts x threads 1 x 2 reps + 1 warmup) on 2 ranks" in proc.stderr
    (row,) = read_results(folder / "first").results
    lines = proc.stdout.splitlines()
    assert lines[0] == "dry run: nothing is measured or written; 6 tasks in 2 cells, one task at a time on each of 1 node"
    assert lines[1].split() == ["model", "prompt", "threads", "reps", "warmups", "earlier", "e2e", "s"]
    assert lines[3].split() == ["smollm2-135m", "pi", "1", "2", "1", f"{row['e2e_s']:.3f}"]
    assert lines[4].split() == ["smollm2-135m", "weather", "1", "2", "1", "-"]
    seconds = format_eta(3 * row["e2e_s"] + row["runner_start_s"])  # 3 pi tasks, one runner start
    assert lines[5] == (f"estimate: about {seconds} for 3 of 6 tasks (3 never measured before), from the medians of "
                        f"1 earlier run in {folder}/ (first)")


@pytest.mark.integration
def test_dry_run_without_an_earlier_run_says_so_and_writes_nothing(tmp_path):
    proc = mpibench(1, "bench", "-m", "smollm2-135m", "-p", "16", "-n", "4", "-t", "1", "--dry-run",
                    "--out", str(tmp_path / "runs" / "b"), timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[1].split()[:2] == ["model", "test"]
    assert "estimate: none; no run in" in proc.stdout and not (tmp_path / "runs").exists()
