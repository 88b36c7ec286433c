"""The `mpibench` command: run a sweep, show a results file, draw its plots, list the builtin models."""

from __future__ import annotations

import argparse
import sys
import traceback
from pathlib import Path

from mpibench import __version__
from mpibench.config import BUILTIN_MODEL_NAMES, ConfigError, build_config


def _load_config(args):
    """A loader for rank 0: the config file (if any) with the CLI flags on top."""
    def load():
        text = ""
        if args.config:
            try:
                text = Path(args.config).read_text()
            except OSError as error:
                raise ConfigError(f"cannot read config file {args.config}: {error.strerror}") from None
        overrides = {"models": args.models, "threads": args.threads, "prompts": args.prompts,
                     "repetitions": args.repetitions, "max_tokens": args.max_tokens, "out": args.out,
                     "seed": args.seed, "n_ctx": args.ctx}
        return build_config(text, overrides), text
    return load


def cmd_run(args) -> int:
    from mpibench import mpi, sweep

    try:
        return sweep.run(_load_config(args), args.force, not args.no_plots)
    except BaseException as error:
        comm = mpi.comm_world()
        if comm.size > 1:  # never leave the other ranks waiting forever
            if not isinstance(error, (KeyboardInterrupt, SystemExit)):
                traceback.print_exc()
            print(f"mpibench: rank {comm.rank} failed; aborting the MPI job", file=sys.stderr)
            mpi.abort(comm, 1)
        raise


def cmd_show(args) -> int:
    from mpibench.store.hdf5 import read_results
    from mpibench.summary import cells, format_table

    results = read_results(args.results)
    attrs = results.attrs
    print(f"run {attrs['run_id']} ({attrs['status']}), mpibench {attrs['mpibench_version']}, "
          f"{attrs['world_size']} ranks, {len(results.results)}/{attrs['total_tasks']} tasks, "
          f"started {attrs['started']}")
    print(f"MPI: {attrs['mpi_library_version']}")
    for host in results.hosts:
        print(f"host {host['hostname']}: {host['cpu_model']}, {host['physical_cores']} cores / "
              f"{host['logical_cpus']} CPUs, job CPUs {host['cpus']}, governor {host['governor']}")
        if host.get("llama_system_info"):  # schema 2 on
            print(f"  llama.cpp build: {host['llama_system_info']}")
        if host.get("simd_mismatch"):
            print(f"  SIMD mismatch: {host['simd_mismatch']} (see launch/build-portable.sh)")
    for model in results.models:
        print(f"model {model['name']}: {model['architecture']} {model['parameters'] / 1e6:.0f}M params "
              f"{model['quantization']}, {model['size_bytes'] / 2**20:.0f} MiB, {model['path']}")
    print("medians per cell; speedup = e2e at the fewest threads / e2e here\n")
    print(format_table(cells(results.results)))
    failures = [r for r in results.results if r["status"] != "ok"]
    for record in failures[:10]:
        print(f"failed: {record['model']} {record['prompt_id']} t={record['threads']}: {record['error'][:200]}")
    return 0


def cmd_plot(args) -> int:
    from analysis.plots import main as plots_main

    return plots_main([args.results] + (["--out", args.out] if args.out else []))


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
    run.add_argument("--ctx", type=int, help="context size in tokens (default 2048)")
    run.add_argument("--out", help="run directory (default results/<run-id>)")
    run.add_argument("--force", action="store_true", help="replace a run already in --out")
    run.add_argument("--no-plots", action="store_true", help="do not draw plots at the end")
    run.set_defaults(func=cmd_run)

    show = sub.add_parser("show", help="print a results file as a table")
    show.add_argument("results", help="results.h5")
    show.set_defaults(func=cmd_show)

    plot = sub.add_parser("plot", help="draw the plots of a results file")
    plot.add_argument("results", help="results.h5")
    plot.add_argument("--out", help="folder for the PNG files (default: plots/ beside the results)")
    plot.set_defaults(func=cmd_plot)

    models = sub.add_parser("models", help="list the builtin models")
    models.set_defaults(func=cmd_models)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from mpibench.models import ModelError
    from mpibench.store.hdf5 import ResultsFileError

    try:
        return args.func(args)
    except (ConfigError, ModelError, ResultsFileError) as error:
        print(f"mpibench: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mpibench: interrupted", file=sys.stderr)
        return 130
