"""The `mpibench` command: run or resume a sweep, show, plot, score and rebuild a results file, list models."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from mpibench import __version__
from mpibench.config import BUILTIN_MODEL_NAMES, ConfigError, build_config
from mpibench.contention import EXCLUDE_HELP
from mpibench.formats import EXPORT_FORMATS, OUTPUT_FORMATS
from mpibench.progress import STATUS_INTERVAL_S


BENCH_REPETITIONS = 5
OVERRIDES = ("kind", "models", "threads", "prompts", "repetitions", "warmup", "max_tokens", "n_prompt", "n_gen",
             "out", "seed", "n_ctx", "timeout")


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def _config_text(path: str | None) -> str:
    """The TOML text of a config file argument ("" without one)."""
    if not path:
        return ""
    try:
        return Path(path).read_text()
    except OSError as error:
        raise ConfigError(f"cannot read config file {path}: {error.strerror}") from None


def _stored_header(run_dir: str) -> dict:
    from mpibench.store.rundir import read_header

    return read_header(run_dir)


def _load_config(args):
    """A loader for rank 0: the config file (if any) with the CLI flags on top, over the run's own
    configuration when resuming."""
    def load():
        from mpibench.run import stored_config

        text = _config_text(args.config)
        overrides = {key: getattr(args, key, None) for key in OVERRIDES}
        base = stored_config(args.resume) if args.resume else None  # what is not given again stays the run's
        if base is None and overrides["kind"] == "bench" and overrides["repetitions"] is None:
            overrides["repetitions"] = BENCH_REPETITIONS  # llama-bench's default
        return build_config(text, overrides, base), text
    return load


def cmd_run(args) -> int:
    from mpibench import run

    options = run.Options(force=args.force, draw_plots=not args.no_plots, report=not args.no_report,
                          resume=args.resume, retry_failed=args.retry_failed, output_format=args.output_format,
                          dry_run=args.dry_run, quiet=args.quiet, status_interval=args.status_interval,
                          allow_oversize=args.allow_oversize)
    return run.sweep(_load_config(args), options)


LOAD_OVERRIDES = ("models", "servers", "kv_unified", "users", "rates", "sweep", "sweep_rates", "arrivals", "gamma_shape",
                  "think", "think_s", "max_concurrency", "duration", "ramp_up", "warmup_time", "cooldown", "drain",
                  "prompts", "max_tokens", "prompt_tokens", "n_ctx", "seed", "slo_ttft_ms", "slo_tpot_ms",
                  "slo_e2e_ms", "out", "replicas")


def cmd_load(args) -> int:
    from mpibench import run
    from mpibench.load.config import build_load_config, load_config_from_json
    from mpibench.load.driver import LoadOptions

    def load():
        text = _config_text(args.config)
        overrides = {key: getattr(args, key) for key in LOAD_OVERRIDES}
        overrides.update(kv_unified=args.kv_unified or None, sweep=args.sweep or None)
        base = load_config_from_json(_stored_header(args.resume)["config_json"]) if args.resume else None
        return build_load_config(text, overrides, base), text

    options = LoadOptions(force=args.force, resume=args.resume, draw_plots=not args.no_plots, quiet=args.quiet,
                          allow_oversize=args.allow_oversize)
    return run.load(load, options)


def cmd_doctor(args) -> int:
    from mpibench.doctor import doctor
    from mpibench.run import guarded

    return guarded(doctor)


def cmd_probe(args) -> int:
    from mpibench.config import parse_int_list
    from mpibench.probe import probe_command
    from mpibench.run import guarded

    threads = parse_int_list(args.threads, "--threads") if args.threads else None
    return guarded(lambda: probe_command(threads))


def cmd_show(args) -> int:
    import json

    from mpibench.metadata import host_lines, software_line
    from mpibench.roofline import bandwidth_lines
    from mpibench.store.hdf5 import read_results
    from mpibench.summary import cells, engine_lines, report

    results = read_results(args.results, args.exclude_contended)
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
    for line in bandwidth_lines(results.bandwidth):
        print(line)
    for line in engine_lines(results.results):
        print(line)
    for model in results.models:
        print(f"model {model['name']}: {model['architecture']} {model['parameters'] / 1e6:.0f}M params "
              f"{model['quantization']}, {model['size_bytes'] / 2**20:.0f} MiB, {model['path']}"
              + (" (synthetic: timing only)" if model.get("synthetic") else ""))
    print()
    if results.load_points:
        from mpibench.load.table import point_table

        print(point_table(results))
        if not results.results:
            return 0
    if attrs.get("contended_excluded"):
        from mpibench.table import counted

        print(f"left out of every statistic (--exclude-contended): {counted(attrs['contended_excluded'], 'contended run')}")
    print(report(cells(results.results)))
    failures = [r for r in results.results if r["status"] != "ok"]
    for record in failures[:10]:
        print(f"failed: {record['model']} {record['prompt_id']} t={record['threads']}: {record['error'][:200]}")
    return 0


def cmd_export(args) -> int:
    from mpibench.export import ExportError, export

    try:
        return export(args.results, args.format, args.out, args.force, args.rows, args.exclude_contended)
    except ExportError as error:
        print(f"mpibench: error: {error}", file=sys.stderr)
        return 2


def cmd_plot(args) -> int:
    from analysis.plots import main as plots_main

    return plots_main([args.results] + (["--out", args.out] if args.out else [])
                      + (["--exclude-contended"] if args.exclude_contended else []))


def cmd_report(args) -> int:
    from analysis.report import write_report

    for written in write_report(Path(args.results), args.out, args.exclude_contended):
        print(written)
    return 0


def cmd_score(args) -> int:
    from mpibench.scoring.command import score_command

    return score_command(args)


def cmd_determinism(args) -> int:
    from mpibench.scoring.command import determinism_command

    return determinism_command(args)


def cmd_rebuild(args) -> int:
    from mpibench.store.rundir import LOAD_KIND, rebuild
    from mpibench.table import counted

    path, header, recorded = rebuild(args.run_dir)
    held = counted(recorded, "load point") if header.get("kind") == LOAD_KIND else \
        f"{recorded} of {header['total_tasks']} tasks"
    print(f"{path}: {held}, rebuilt from the journal; status {header['status']}")
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


class _ExampleFormatter(argparse.HelpFormatter):
    """Wraps a description as usual, and keeps the lines of the example as they are."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if text.startswith("example:"):
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


def _command(sub, name: str, help: str, example: str, **kwargs) -> argparse.ArgumentParser:
    """A subcommand whose help ends with an example."""
    return sub.add_parser(name, help=help, epilog=f"example:\n  {example}", formatter_class=_ExampleFormatter,
                          **kwargs)


def _results_file(text: str) -> str:
    """A results argument: a results.h5, or a run directory that holds one (read_results explains one that
    does not)."""
    from mpibench.store.hdf5 import results_file

    return str(results_file(text)) if results_file(text).is_file() else text


def _add_run_options(command: argparse.ArgumentParser, unit: str) -> None:
    """The options `run` and `bench` share, in llama-bench's vocabulary where it has the option: models,
    threads, repetitions, warmups, context, seed, the table printed at the end, where the run goes, its time
    limit, resuming, a dry run, what is written at the end; `unit` is what the command runs ("task", "test")."""
    command.add_argument("-m", "--model", "--models", dest="models",
                         help="comma list of builtin names (" + ", ".join(BUILTIN_MODEL_NAMES) + ") or GGUF paths")
    command.add_argument("-t", "--threads", help="thread counts: 1,2,4,8 or 1-8 or 1-16*2 (default: every count "
                         "up to the cores)")
    command.add_argument("-r", "--repetitions", type=int, help=f"repetitions per {unit} and thread count "
                         f"(default {BENCH_REPETITIONS if unit == 'test' else 1})")
    command.add_argument("--warmup", type=int, help=f"warmup runs per {unit} and thread count, recorded and never "
                         f"in a statistic (default {1 if unit == 'test' else 0})")
    command.add_argument("--ctx", dest="n_ctx", type=int, help="context size in tokens (default 2048)")
    command.add_argument("--seed", type=int, help="sampling seed (default 42)")
    command.add_argument("-o", "--output-format", choices=OUTPUT_FORMATS, default="md",
                         help="the table of cells printed at the end, as llama-bench's -o (default md)")
    command.add_argument("--out", dest="out", help="run directory (default results/<run-id>)")
    command.add_argument("--timeout", type=float, help=f"seconds a {unit} may take before its runner is killed "
                         f"(default: 30 min for a runner's first {unit}, then 10x what its last {unit} predicts)")
    command.add_argument("--force", action="store_true", help="replace a run already in --out")
    command.add_argument("--resume", metavar="DIR", help=f"continue the run in DIR: skip the {unit}s it has done "
                         "(options given again must measure the same; --timeout may change)")
    command.add_argument("--retry-failed", action="store_true", help=f"with --resume: run failed {unit}s again")
    command.add_argument("--dry-run", action="store_true", help=f"print the {unit}s, the nodes and cores and, "
                         "from earlier runs of the same cells in the results folder, an estimate; run nothing")
    command.add_argument("--no-plots", action="store_true", help="do not draw plots (nor the report) at the end")
    command.add_argument("--no-report", action="store_true", help="do not write report.html and report.md at the end")
    command.add_argument("--quiet", action="store_true", help="no progress on stderr (rank 0's)")
    command.add_argument("--status-interval", type=_positive_seconds, default=STATUS_INTERVAL_S, metavar="S",
                         help="off a terminal (mpiexec, a Slurm log): seconds between status lines "
                              f"(default {STATUS_INTERVAL_S:.0f}; one also at each change of model)")
    command.add_argument("--allow-oversize", action="store_true", help="run models whose file and KV cache exceed a "
                         "node's available memory (refused otherwise)")


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="mpibench", description=__doc__)
    top.add_argument("--version", action="version", version=f"mpibench {__version__}")
    sub = top.add_subparsers(dest="command", required=True)

    run = _command(sub, "run", "run a sweep (launch with mpirun -n N)",
                   "mpirun -n 3 mpibench run -m smollm2-135m --prompts pi,weather -t 1,2 -r 3 -n 64")
    run.add_argument("config", nargs="?", help="TOML configuration file (see launch/study.toml)")
    run.add_argument("--prompts", help="comma list of prompt ids (default: the five study queries)")
    run.add_argument("-n", "--max-tokens", type=int, help="tokens to generate at most per answer (default 128; "
                     "llama-cli's -n; in bench, -n is the exact length of a tgN test)")
    _add_run_options(run, "task")
    run.set_defaults(func=cmd_run)

    bench = _command(sub, "bench", "llama-bench's pp/tg tests under MPI (launch with mpirun -n N)",
                     "mpirun -n 2 mpibench bench -m smollm2-135m -p 512 -n 128 -r 5 -t 1,2 -o csv",
                     description="Each ppN test processes N synthetic prompt tokens in one batch; each tgN "
                     "test generates N tokens one at a time; warmups are recorded and flagged.")
    bench.add_argument("config", nargs="?", help="TOML configuration file")
    bench.add_argument("-p", "--n-prompt", dest="n_prompt", help="prompt sizes: 512 or 128,512 (0: no pp test; default 512)")
    bench.add_argument("-n", "--n-gen", dest="n_gen", help="generation lengths: 128 or 16,128 (0: no tg test; default 128)")
    _add_run_options(bench, "test")
    bench.set_defaults(func=cmd_run, kind="bench")

    show = _command(sub, "show", "print a results file as a table", "mpibench show results/<run-id>")
    show.add_argument("results", type=_results_file, help="a run directory or its results.h5")
    show.add_argument("--exclude-contended", action="store_true", help=EXCLUDE_HELP)
    show.set_defaults(func=cmd_show)

    export = _command(sub, "export", "per-cell statistics (or with --rows every task) as CSV, JSON, JSON lines, "
                      "Markdown or llama-bench's CSV",
                      "mpibench export results/<run-id> --format csv --rows --out tasks.csv")
    export.add_argument("results", type=_results_file, help="a run directory or its results.h5")
    export.add_argument("--format", default="csv", choices=EXPORT_FORMATS,
                        help="csv (default), json, jsonl, md (the show tables), llama-bench-csv (bench tests "
                        "with llama-bench's columns, for llama.cpp's scripts), or jtl (a load run's steady-window "
                        "requests as JMeter's CSV results)")
    export.add_argument("--rows", action="store_true", help="one row per task (every repetition and warmup) with "
                        "its run id, host, answer and scores, instead of one per cell (csv, json, jsonl)")
    export.add_argument("--out", help="file to write (default: standard output)")
    export.add_argument("--force", action="store_true", help="replace --out if it exists")
    export.add_argument("--exclude-contended", action="store_true", help=EXCLUDE_HELP)
    export.set_defaults(func=cmd_export)

    report = _command(sub, "report", "write report.html and report.md: the study's answers, tables, "
                      "figures, data quality and the run", "mpibench report results/<run-id>",
                      description="The files land beside results.h5 unless --out is given.")
    report.add_argument("results", type=_results_file, help="a run directory or its results.h5")
    report.add_argument("--out", help="folder for the report and its figures (default: beside results.h5)")
    report.add_argument("--exclude-contended", action="store_true", help=EXCLUDE_HELP)
    report.set_defaults(func=cmd_report)

    plot = _command(sub, "plot", "draw the plots of a results file", "mpibench plot results/<run-id> --out figures")
    plot.add_argument("results", type=_results_file, help="a run directory or its results.h5")
    plot.add_argument("--out", help="folder for the PNG files (default: plots/ beside the results)")
    plot.add_argument("--exclude-contended", action="store_true", help=EXCLUDE_HELP)
    plot.set_defaults(func=cmd_plot)

    score = _command(sub, "score", "score the answers 1-10 (rubric, LLM judge under mpirun, human CSV); "
                     "without --scorer, print the scores",
                     "mpibench score results/<run-id> --scorer rubric\n  "
                     "mpirun -n 2 mpibench score results/<run-id> --scorer judge --judge-model gemma3-270m --ctx 4096")
    score.add_argument("results", type=_results_file, help="a run directory or its results.h5")
    score.add_argument("--scorer", choices=("rubric", "judge", "human"), help="which scorer to run")
    score.add_argument("--rubrics", help="rubric: TOML file of rubrics per prompt id (default: the study's and the run's)")
    score.add_argument("--judge-model", help="judge: builtin name or GGUF path of the judge model")
    score.add_argument("--judge-threads", type=int, help="judge: threads per judge task (default 1)")
    score.add_argument("--judge-max-tokens", type=int, help="judge: tokens per judgement at most (default 256)")
    score.add_argument("--ctx", "--judge-ctx", dest="judge_ctx", type=int,
                       help="judge: context size in tokens (default 4096)")
    score.add_argument("--export", metavar="CSV", help="human: write the distinct answers to CSV for grading")
    score.add_argument("--blind", action="store_true", help="human: leave model and threads out of the export")
    score.add_argument("--force", action="store_true", help="human: replace an existing export CSV")
    score.add_argument("--import", dest="import_csv", metavar="CSV", help="human: read the graded CSV back")
    score.add_argument("--grader", help="human: the grader's name (scores are kept per grader)")
    score.add_argument("--no-plots", action="store_true", help="do not redraw the quality plots")
    score.set_defaults(func=cmd_score)

    determinism = _command(sub, "determinism", "are greedy answers identical across thread counts? (exit 1 when "
                           "they differ)", "mpibench determinism results/<run-id> || echo answers differ")
    determinism.add_argument("results", type=_results_file, help="a run directory or its results.h5")
    determinism.set_defaults(func=cmd_determinism)

    rebuild = _command(sub, "rebuild", "write results.h5 again from a run directory's journal",
                       "mpibench rebuild results/<run-id>")
    rebuild.add_argument("run_dir", help="the run directory (holding run.json and journal.jsonl)")
    rebuild.set_defaults(func=cmd_rebuild)

    doctor = _command(sub, "doctor", "check the launch, each node's llama.cpp build against its CPU, and an "
                      "engine preflight (launch with mpirun -n N to check every node)", "mpirun -n 2 mpibench doctor",
                      description="Prints a verdict and the fix for each problem; exits 1 when a check failed.")
    doctor.set_defaults(func=cmd_doctor)

    synth = _command(sub, "synth", "write a synthetic model: a real model's shape with random weights, for timing",
                     "mpibench synth --shape llama2-7b --quant q4_0 --out 7b.gguf",
                     description="The file is flagged synthetic (timing only, never scored); a config may name it "
                     "synth:SHAPE:QUANT instead, generated once into the cache.")
    synth.add_argument("--shape", help="the model shape (see --list), e.g. llama2-7b")
    synth.add_argument("--quant", default="q4_0", help="q4_0 (default), q4_1, q8_0 or q4_k (Q4_K_M)")
    synth.add_argument("--out", help="the GGUF file to write")
    synth.add_argument("--force", action="store_true", help="replace --out if it exists")
    synth.add_argument("--list", action="store_true", help="list the shapes with file size and memory needed")
    synth.set_defaults(func=cmd_synth)

    probe = _command(sub, "probe", "measure each node's read bandwidth at each thread count (launch with "
                     "mpirun -n N to probe every node)", "mpirun -n 2 mpibench probe -t 1,2",
                     description="Each node's lowest rank reads a working set well above the last-level cache with "
                     "one pinned thread per core, repeated until stable.")
    probe.add_argument("-t", "--threads", help="thread counts: 1,2,4 or 1-16*2 (default: every count a run would "
                       "sweep on the node's cores)")
    probe.set_defaults(func=cmd_probe)

    load = _command(sub, "load", "load-test a node's server configurations, JMeter-style: concurrent users or an "
                    "arrival rate, up to saturation (launch with mpirun -n N)",
                    "mpirun -n 2 mpibench load -m smollm2-135m --users 1,2,4,8 --duration 60\n  "
                    "mpirun -n 2 mpibench load --rate 0.5,1,2,4 --arrivals poisson\n  "
                    "mpirun -n 2 mpibench load --sweep --slo-ttft-ms 500 --slo-tpot-ms 50",
                    description="Each load point runs one server configuration (P runners x S sequences batched x T "
                    "threads) on a whole node under one load; latency is measured from each request's intended "
                    "start (no coordinated omission). Without --users or --rate: a sweep.")
    load.add_argument("config", nargs="?", help="TOML configuration file (see launch/load.toml)")
    load.add_argument("-m", "--model", "--models", dest="models",
                      help="comma list of builtin names (" + ", ".join(BUILTIN_MODEL_NAMES) + ") or GGUF paths")
    load.add_argument("--servers", help="server configurations P x S x T: 1x4x1 (one runner batching 4 sequences on "
                      "1 thread), 2x1x1 (two single-sequence runners); default 1x4x(cores-1)")
    load.add_argument("--kv-unified", action="store_true", help="one KV buffer shared by a runner's sequences")
    load.add_argument("--replicas", help="nodes that run each point at once, started together, their requests "
                      "pooled: a count, or 'all' (default 1: different series run on different nodes)")
    load.add_argument("--users", help="closed loop: user counts, 1,2,4,8")
    load.add_argument("--rate", dest="rates", help="open loop: requests per second, 0.5,1,2,4")
    load.add_argument("--sweep", action="store_true", help="one user, then saturation, then rates between (default "
                      "without --users or --rate)")
    load.add_argument("--sweep-rates", type=int, help="a sweep's rates between one user and saturation (default 5)")
    load.add_argument("--arrivals", choices=("poisson", "constant", "gamma"), help="open loop's arrivals "
                      "(default poisson)")
    load.add_argument("--gamma-shape", type=float, help="gamma arrivals' shape k: inter-arrival CV 1/sqrt(k) "
                      "(default 0.5)")
    load.add_argument("--max-concurrency", type=int, help="open loop: at most this many requests in the system; "
                      "the others queue (default: no cap)")
    load.add_argument("--think", choices=("none", "constant", "exponential"), help="closed loop: think time "
                      "between a user's requests (default none)")
    load.add_argument("--think-s", type=float, help="its mean, seconds")
    load.add_argument("--duration", type=float, help="each point's steady (measured) window, seconds (default 60)")
    load.add_argument("--ramp-up", type=float, help="seconds over which users start or the rate rises (default 0)")
    load.add_argument("--warmup-time", type=float, help="seconds of load before the window, not measured "
                      "(default 5)")
    load.add_argument("--cooldown", type=float, help="seconds of load after the window (default 2)")
    load.add_argument("--drain", type=float, help="seconds requests in the system get to finish at the end "
                      "(default 60)")
    load.add_argument("--prompts", help="comma list of prompt ids the requests cycle through (default: the study's)")
    load.add_argument("-n", "--max-tokens", type=int, help="tokens per answer at most; with -p, exactly "
                      "(default 64)")
    load.add_argument("-p", "--prompt-tokens", type=int, help="fixed workload: this many random prompt tokens, "
                      "-n tokens generated with end-of-sequence ignored (as llama-batched-bench)")
    load.add_argument("--ctx", dest="n_ctx", type=int, help="context per sequence in tokens (default 1024)")
    load.add_argument("--seed", type=int, help="schedule and token seed (default 42)")
    load.add_argument("--slo-ttft-ms", type=float, help="SLO on time to first token (default 1000)")
    load.add_argument("--slo-tpot-ms", type=float, help="SLO on time per output token (default 100)")
    load.add_argument("--slo-e2e-ms", type=float, help="SLO on end-to-end time (default none)")
    load.add_argument("--out", dest="out", help="run directory (default results/<run-id>)")
    load.add_argument("--force", action="store_true", help="replace a run already in --out")
    load.add_argument("--resume", metavar="DIR", help="continue the load test in DIR: skip the points it has done")
    load.add_argument("--no-plots", action="store_true", help="do not write the report and its plots at the end")
    load.add_argument("--quiet", action="store_true", help="no per-point lines on stderr")
    load.add_argument("--allow-oversize", action="store_true", help="run models whose file and KV caches exceed a "
                      "node's available memory")
    load.set_defaults(func=cmd_load)

    models = _command(sub, "models", "list the builtin models", "mpibench models")
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
    except BrokenPipeError:  # the reader left early (show ... | head -1): stop quietly, as any writer to a pipe
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing left to flush at exit
        return 128 + 13  # as a process killed by SIGPIPE
