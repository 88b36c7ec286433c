"""The `mpibench` command: run or resume a sweep, show, plot, score and rebuild a results file, list models."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mpibench import __version__
from mpibench.config import BUILTIN_MODEL_NAMES, ConfigError, build_config


BENCH_REPETITIONS = 5
OVERRIDES = ("kind", "models", "threads", "prompts", "repetitions", "warmup", "max_tokens", "n_prompt", "n_gen",
             "out", "seed", "n_ctx", "timeout")


def _load_config(args):
    """A loader for rank 0: the config file (if any) with the CLI flags on top; (None, "") when resuming
    with neither, so that the run's own configuration is used."""
    def load():
        text = ""
        if args.config:
            try:
                text = Path(args.config).read_text()
            except OSError as error:
                raise ConfigError(f"cannot read config file {args.config}: {error.strerror}") from None
        overrides = {key: getattr(args, key, None) for key in OVERRIDES}
        if args.resume and not args.config and all(v is None for k, v in overrides.items() if k != "kind"):
            return None, ""
        if overrides["kind"] == "bench" and overrides["repetitions"] is None:
            overrides["repetitions"] = BENCH_REPETITIONS  # llama-bench's default
        return build_config(text, overrides), text
    return load


def cmd_run(args) -> int:
    from mpibench import run

    options = run.Options(force=args.force, draw_plots=not args.no_plots, report=not args.no_report,
                          resume=args.resume, retry_failed=args.retry_failed, allow_oversize=args.allow_oversize)
    return run.sweep(_load_config(args), options)


def cmd_doctor(args) -> int:
    from mpibench.doctor import doctor
    from mpibench.run import guarded

    return guarded(doctor)


def cmd_show(args) -> int:
    import json

    from mpibench.metadata import host_lines, software_line
    from mpibench.store.hdf5 import read_results
    from mpibench.summary import cells, engine_lines, report

    results = read_results(args.results)
    attrs = results.attrs
    print(f"run {attrs['run_id']} ({attrs['status']}), mpibench {attrs['mpibench_version']}, "
          f"{attrs['world_size']} ranks, {len(results.results)}/{attrs['total_tasks']} tasks, "
          f"started {attrs['started']}")
    print(f"MPI: {attrs['mpi_library_version']}")
    print(f"software: {software_line(json.loads(attrs.get('software_json', '{}')))}")
    for host in results.hosts:
        print("\n".join(host_lines(host)))
        if host.get("llama_system_info"):  # schema 2 on
            print(f"  llama.cpp build: {host['llama_system_info']}")
        if host.get("simd_mismatch"):
            print(f"  SIMD mismatch: {host['simd_mismatch']} (see launch/build-portable.sh)")
    for line in engine_lines(results.results):
        print(line)
    for model in results.models:
        print(f"model {model['name']}: {model['architecture']} {model['parameters'] / 1e6:.0f}M params "
              f"{model['quantization']}, {model['size_bytes'] / 2**20:.0f} MiB, {model['path']}"
              + (" (synthetic: timing only)" if model.get("synthetic") else ""))
    print()
    print(report(cells(results.results)))
    failures = [r for r in results.results if r["status"] != "ok"]
    for record in failures[:10]:
        print(f"failed: {record['model']} {record['prompt_id']} t={record['threads']}: {record['error'][:200]}")
    return 0


def cmd_export(args) -> int:
    from mpibench.export import ExportError, export

    try:
        return export(args.results, args.format, args.out)
    except ExportError as error:
        print(f"mpibench: error: {error}", file=sys.stderr)
        return 2


def cmd_plot(args) -> int:
    from analysis.plots import main as plots_main

    return plots_main([args.results] + (["--out", args.out] if args.out else []))


def cmd_report(args) -> int:
    from analysis.report import write_report

    path = Path(args.results)
    for written in write_report(path / "results.h5" if path.is_dir() else path, args.out):
        print(written)
    return 0


def cmd_score(args) -> int:
    from mpibench.scoring.command import score_command

    return score_command(args)


def cmd_determinism(args) -> int:
    from mpibench.scoring.command import determinism_command

    return determinism_command(args)


def cmd_rebuild(args) -> int:
    from mpibench.store.rundir import rebuild

    path, recorded, total = rebuild(args.run_dir)
    print(f"{path}: {recorded} of {total} tasks, rebuilt from the journal")
    return 0


def cmd_models(args) -> int:
    from mpibench.config import model_from_entry
    from mpibench.models import ModelError, inspect_model

    for name in BUILTIN_MODEL_NAMES:
        try:
            info = inspect_model(model_from_entry(name))
            print(f"{name}: {info.architecture} {info.parameters / 1e6:.0f}M params {info.quantization}, "
                  f"prompt format {info.prompt_format!r}, {info.path}")
        except ModelError as error:
            print(f"{name}: unavailable: {error}")
    return 0


def cmd_synth(args) -> int:
    from mpibench.config import SweepConfig
    from mpibench.synth.command import synth_command

    return synth_command(args, SweepConfig.n_ctx)


def _add_run_options(command: argparse.ArgumentParser, unit: str, *out: str) -> None:
    """The options `run` and `bench` share: where the run goes, its time limit, resuming, what is written at the
    end; `unit` is what the command runs ("task" or "test"), `out` the run directory option's flags."""
    command.add_argument(*out, dest="out", help="run directory (default results/<run-id>)")
    command.add_argument("--timeout", type=float, help=f"seconds a {unit} may take before its runner is killed "
                         f"(default: 30 min for a runner's first {unit}, then 10x what its last {unit} predicts)")
    command.add_argument("--force", action="store_true", help="replace a run already in --out")
    command.add_argument("--resume", metavar="DIR", help=f"continue the run in DIR: skip the {unit}s it has done")
    command.add_argument("--retry-failed", action="store_true", help=f"with --resume: run failed {unit}s again")
    command.add_argument("--no-plots", action="store_true", help="do not draw plots (nor the report) at the end")
    command.add_argument("--no-report", action="store_true", help="do not write report.html and report.md at the end")
    command.add_argument("--allow-oversize", action="store_true", help="run models whose file and KV cache exceed a "
                         "node's available memory (refused otherwise)")


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="mpibench", description=__doc__)
    top.add_argument("--version", action="version", version=f"mpibench {__version__}")
    sub = top.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a sweep (launch with mpirun -n N)")
    run.add_argument("config", nargs="?", help="TOML configuration file (see launch/study.toml)")
    run.add_argument("--models", help="comma list of builtin names (" + ", ".join(BUILTIN_MODEL_NAMES) + ") or GGUF paths")
    run.add_argument("--threads", help="thread counts: 1,2,4,8 or 1-8 or 1-16*2 (default: every count up to the cores)")
    run.add_argument("--prompts", help="comma list of prompt ids (default: the five study queries)")
    run.add_argument("--repetitions", type=int, help="repetitions per cell (default 1)")
    run.add_argument("--max-tokens", type=int, help="tokens to generate at most per answer (default 128)")
    run.add_argument("--seed", type=int, help="sampling seed (default 42)")
    run.add_argument("--ctx", dest="n_ctx", type=int, help="context size in tokens (default 2048)")
    _add_run_options(run, "task", "--out")
    run.set_defaults(func=cmd_run)

    bench = sub.add_parser("bench", help="llama-bench's pp/tg tests under MPI (launch with mpirun -n N)",
                           description="Each ppN test processes N synthetic prompt tokens in one batch; each tgN "
                           "test generates N tokens one at a time; warmups are recorded and flagged.")
    bench.add_argument("config", nargs="?", help="TOML configuration file")
    bench.add_argument("-m", "--model", dest="models", help="comma list of builtin names or GGUF paths")
    bench.add_argument("-p", "--n-prompt", dest="n_prompt", help="prompt sizes: 512 or 128,512 (0: no pp test; default 512)")
    bench.add_argument("-n", "--n-gen", dest="n_gen", help="generation lengths: 128 or 16,128 (0: no tg test; default 128)")
    bench.add_argument("-r", "--repetitions", type=int, help=f"repetitions per test (default {BENCH_REPETITIONS})")
    bench.add_argument("-t", "--threads", help="thread counts: 1,2,4 or 1-16 or 1-16*2 (default: every count up to the cores)")
    bench.add_argument("--warmup", type=int, help="warmup runs per test and thread count (default 1)")
    _add_run_options(bench, "test", "-o", "--out")
    bench.set_defaults(func=cmd_run, kind="bench")

    show = sub.add_parser("show", help="print a results file as a table")
    show.add_argument("results", help="results.h5")
    show.set_defaults(func=cmd_show)

    export = sub.add_parser("export", help="per-cell statistics as CSV, JSON or llama-bench's CSV")
    export.add_argument("results", help="results.h5")
    export.add_argument("--format", default="csv", help="csv (default), json, or llama-bench-csv (bench tests "
                        "with llama-bench's columns, for llama.cpp's scripts)")
    export.add_argument("--out", help="file to write (default: standard output)")
    export.set_defaults(func=cmd_export)

    report = sub.add_parser("report", help="write report.html and report.md: the study's answers, tables, "
                            "figures, data quality and the run", description="Example: mpibench report "
                            "results/<run-id> (the files land beside results.h5 unless --out is given)")
    report.add_argument("results", help="a run directory or its results.h5")
    report.add_argument("--out", help="folder for the report and its figures (default: beside results.h5)")
    report.set_defaults(func=cmd_report)

    plot = sub.add_parser("plot", help="draw the plots of a results file")
    plot.add_argument("results", help="results.h5")
    plot.add_argument("--out", help="folder for the PNG files (default: plots/ beside the results)")
    plot.set_defaults(func=cmd_plot)

    score = sub.add_parser("score", help="score the answers 1-10 (rubric, LLM judge under mpirun, human CSV); "
                                         "without --scorer, print the scores")
    score.add_argument("results", help="results.h5")
    score.add_argument("--scorer", choices=("rubric", "judge", "human"), help="which scorer to run")
    score.add_argument("--rubrics", help="rubric: TOML file of rubrics per prompt id (default: the study's and the run's)")
    score.add_argument("--judge-model", help="judge: builtin name or GGUF path of the judge model")
    score.add_argument("--judge-threads", type=int, help="judge: threads per judge task (default 1)")
    score.add_argument("--judge-max-tokens", type=int, help="judge: tokens per judgement at most (default 256)")
    score.add_argument("--judge-ctx", type=int, help="judge: context size in tokens (default 4096)")
    score.add_argument("--export", metavar="CSV", help="human: write the distinct answers to CSV for grading")
    score.add_argument("--blind", action="store_true", help="human: leave model and threads out of the export")
    score.add_argument("--force", action="store_true", help="human: replace an existing export CSV")
    score.add_argument("--import", dest="import_csv", metavar="CSV", help="human: read the graded CSV back")
    score.add_argument("--grader", help="human: the grader's name (scores are kept per grader)")
    score.add_argument("--no-plots", action="store_true", help="do not redraw the quality plots")
    score.set_defaults(func=cmd_score)

    determinism = sub.add_parser("determinism", help="are greedy answers identical across thread counts?")
    determinism.add_argument("results", help="results.h5")
    determinism.set_defaults(func=cmd_determinism)

    rebuild = sub.add_parser("rebuild", help="write results.h5 again from a run directory's journal")
    rebuild.add_argument("run_dir", help="the run directory (holding run.json and journal.jsonl)")
    rebuild.set_defaults(func=cmd_rebuild)

    doctor = sub.add_parser("doctor", help="check the launch, each node's llama.cpp build against its CPU, and an "
                            "engine preflight (launch with mpirun -n N to check every node)",
                            description="Prints a verdict and the fix for each problem; exits 1 when a check "
                            "failed. Example: mpirun -n 2 mpibench doctor")
    doctor.set_defaults(func=cmd_doctor)

    synth = sub.add_parser("synth", help="write a synthetic model: a real model's shape with random weights, for timing",
                           description="Example: mpibench synth --shape llama2-7b --quant q4_0 --out 7b.gguf. The "
                           "file is flagged synthetic (timing only, never scored); a config may name it "
                           "synth:SHAPE:QUANT instead, generated once into the cache.")
    synth.add_argument("--shape", help="the model shape (see --list), e.g. llama2-7b")
    synth.add_argument("--quant", default="q4_0", help="q4_0 (default), q4_1, q8_0 or q4_k (Q4_K_M)")
    synth.add_argument("--out", help="the GGUF file to write")
    synth.add_argument("--force", action="store_true", help="replace --out if it exists")
    synth.add_argument("--list", action="store_true", help="list the shapes with file size and memory needed")
    synth.set_defaults(func=cmd_synth)

    models = sub.add_parser("models", help="list the builtin models")
    models.set_defaults(func=cmd_models)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from mpibench.models import ModelError
    from mpibench.store.hdf5 import ResultsFileError
    from mpibench.store.rundir import RunDirError
    from mpibench.synth.shapes import SynthError

    try:
        return args.func(args)
    except (ConfigError, ModelError, ResultsFileError, RunDirError, SynthError) as error:
        print(f"mpibench: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mpibench: interrupted", file=sys.stderr)
        return 130
