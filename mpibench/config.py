"""A sweep's configuration: TOML file plus CLI overrides, validated before anything runs."""

from __future__ import annotations

import difflib
import hashlib
import json
import re
import tomllib
from dataclasses import asdict, dataclass, field, replace

from mpibench.prompts import Prompt, study_prompts
from mpibench.prompts.rubric import RubricError, parse_rubric
from mpibench.synth.shapes import SynthError, is_synth_name, parse_synth_name

BUILTIN_MODEL_NAMES = ("smollm2-135m", "gemma3-270m")
DEFAULT_MODEL = "smollm2-135m"
TOP_LEVEL_KEYS = ("kind", "models", "prompts", "threads", "repetitions", "warmup", "max_tokens", "n_prompt", "n_gen",
                  "n_ctx", "seed", "timeout", "out", "plots")
KINDS = ("query", "bench")
UNMEASURED_KEYS = ("timeout", "out", "plots")  # change where and how long, not what is measured
MODEL_KEYS = ("name", "path", "prompt_format")
PROMPT_KEYS = ("id", "text", "category", "rubric")


class ConfigError(ValueError):
    """A configuration the user must fix; the message says how."""


@dataclass(frozen=True)
class ModelSpec:
    """A model of the sweep: a builtin (path found at run time) or a GGUF file path."""

    name: str
    path: str | None = None
    builtin: str | None = None  # a builtin name, or "synth:SHAPE:QUANT" (generated into the cache)
    prompt_format: str | None = None  # e.g. "Question: {prompt}\nAnswer:"; None: chat template or default


class Canonical:
    """A configuration dataclass's canonical JSON and the hash of what it measures (its `unmeasured` keys left out:
    they change where and how long, not what is measured)."""

    unmeasured = UNMEASURED_KEYS
    added: dict = {}  # keys added after runs were recorded -> the default they are left out at (hashes stay)

    def hash(self) -> str:
        """Hash of everything that decides the measurements (not where they are written)."""
        return hashlib.sha256(self.canonical_json(measured_only=True).encode()).hexdigest()[:16]

    def canonical_json(self, measured_only: bool = False) -> str:
        data = {k: v for k, v in asdict(self).items() if k not in self.added or v != self.added[k]}
        for key in self.unmeasured if measured_only else ():
            del data[key]
        return json.dumps(data, sort_keys=True)


@dataclass(frozen=True)
class SweepConfig(Canonical):
    models: tuple[ModelSpec, ...] = (ModelSpec(DEFAULT_MODEL, builtin=DEFAULT_MODEL),)
    prompts: tuple[Prompt, ...] = field(default_factory=study_prompts)
    threads: tuple[int, ...] | None = None  # None: every count up to the cores available
    repetitions: int = 1
    warmup: int | None = None  # warmup runs per group; None: 1 for bench, 0 for query
    max_tokens: int = 128
    kind: str = "query"  # "query": answer the prompts; "bench": llama-bench's pp/tg tests
    n_prompt: tuple[int, ...] = (512,)  # bench: ppN tests (0: none)
    n_gen: tuple[int, ...] = (128,)  # bench: tgN tests (0: none)
    n_ctx: int = 2048
    seed: int = 42
    timeout: float | None = None  # seconds a task may take; None: adaptive (see deadline.py)
    out: str | None = None
    plots: bool = True


def _unknown_key_error(key: str, valid: tuple[str, ...], where: str) -> ConfigError:
    close = difflib.get_close_matches(key, valid, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else f" Valid keys: {', '.join(valid)}."
    return ConfigError(f"unknown key '{key}' in {where}.{hint}")


def check_keys(table: dict, valid: tuple[str, ...], where: str) -> None:
    for key in table:
        if key not in valid:
            raise _unknown_key_error(key, valid, where)


def read_settings(toml_text: str | None, overrides: dict | None, valid: tuple[str, ...], where: str) -> dict:
    """The settings of a TOML text with the CLI's overrides on top (those given, not None), every key checked."""
    try:
        data = tomllib.loads(toml_text) if toml_text else {}
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"the configuration is not valid TOML: {error}") from None
    check_keys(data, valid, where)
    data.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return data


def parse_int_list(text: str, what: str, allow_zero: bool = False) -> tuple[int, ...]:
    """Parse '1,2,4,8', ranges '1-4' and geometric ranges '1-16*2' into non-negative integers."""
    values: list[int] = []
    for part in filter(None, (p.strip() for p in str(text).split(","))):
        match = re.fullmatch(r"(\d+)(?:-(\d+)(?:\*(\d+))?)?", part)
        if not match:
            raise ConfigError(f"{what}: '{part}' is not a number, a range like 1-4 or 1-16*2")
        first, last, factor = int(match[1]), int(match[2] or match[1]), int(match[3] or 0)
        if last < first:
            raise ConfigError(f"{what}: range '{part}' ends before it starts")
        if match[3] is not None and factor < 2:
            raise ConfigError(f"{what}: the factor of '{part}' must be 2 or more (1-16*2 is 1,2,4,8,16)")
        if factor and first == 0:
            raise ConfigError(f"{what}: '{part}' never ends")
        if first == 0 and not allow_zero:
            raise ConfigError(f"{what}: every value must be a positive integer, got 0")
        value = first
        while value <= last:
            values.append(value)
            value = value * factor if factor else value + 1
    if not values:
        raise ConfigError(f"{what}: no values given")
    return tuple(values)


def _positive_int(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{what} must be a positive integer, got {value!r}")
    return value


def _threads(value) -> tuple[int, ...]:
    items = parse_int_list(value, "threads") if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not items:
        raise ConfigError("threads must be a non-empty list of positive integers, e.g. [1, 2, 4, 8]")
    counts = tuple(_positive_int(t, "every thread count") for t in items)
    return tuple(dict.fromkeys(counts))


def _token_counts(value, what: str) -> tuple[int, ...]:
    items = parse_int_list(value, what, allow_zero=True) if isinstance(value, str) else value
    if isinstance(items, int) and not isinstance(items, bool):
        items = (items,)
    if not isinstance(items, (list, tuple)) or not items or any(
            isinstance(n, bool) or not isinstance(n, int) or n < 0 for n in items):
        raise ConfigError(f"{what} must be a list of token counts (0 or more), got {value!r}")
    return tuple(dict.fromkeys(items))


def model_from_entry(entry) -> ModelSpec:
    """A model from a builtin name, a synthetic one (synth:SHAPE:QUANT), a GGUF path, or a table {name, path,
    prompt_format}."""
    if isinstance(entry, str):
        if entry in BUILTIN_MODEL_NAMES:
            return ModelSpec(entry, builtin=entry)
        if is_synth_name(entry):
            try:
                parse_synth_name(entry)
            except SynthError as error:
                raise ConfigError(str(error)) from None
            return ModelSpec(entry, builtin=entry)
        if not entry.strip():
            raise ConfigError("a model entry is empty: give a builtin name or a GGUF file path")
        stem = re.sub(r"\.gguf$", "", entry.rstrip("/").rsplit("/", 1)[-1], flags=re.I)
        return ModelSpec(stem, path=entry)
    if not isinstance(entry, dict):
        raise ConfigError(f"a model must be a name, a path or a table, got {entry!r}")
    check_keys(entry, MODEL_KEYS, "a [[models]] table")
    if "path" not in entry and entry.get("name") not in BUILTIN_MODEL_NAMES and not is_synth_name(entry.get("name")):
        raise ConfigError(f"model table {entry!r} needs a 'path' to a GGUF file (or a builtin 'name')")
    base = model_from_entry(entry.get("path") or entry["name"])
    fmt = entry.get("prompt_format")
    if fmt is not None and (not isinstance(fmt, str) or "{prompt}" not in fmt):
        raise ConfigError(f"prompt_format of model '{base.name}' must be a string containing {{prompt}}")
    return replace(base, name=str(entry.get("name", base.name)), prompt_format=fmt)


def _check_rubric(rubric, prompt_id: str) -> None:
    try:
        parse_rubric(rubric, f"rubric of prompt '{prompt_id}'")
    except RubricError as error:
        raise ConfigError(str(error)) from None


def parse_prompts(entries) -> tuple[Prompt, ...]:
    suite = {p.id: p for p in study_prompts()}
    if isinstance(entries, str):
        entries = [e.strip() for e in entries.split(",") if e.strip()]
    if not isinstance(entries, (list, tuple)) or not entries:
        raise ConfigError(f"the prompt list is empty: name some of {', '.join(suite)} or add [[prompts]] tables")
    prompts = []
    for entry in entries:
        if isinstance(entry, str):
            if entry not in suite:
                raise _unknown_key_error(entry, tuple(suite), "the prompt ids")
            prompts.append(suite[entry])
        elif isinstance(entry, dict):
            check_keys(entry, PROMPT_KEYS, "a [[prompts]] table")
            if not isinstance(entry.get("id"), str) or not isinstance(entry.get("text"), str) or not entry["text"].strip():
                raise ConfigError(f"prompt {entry!r} needs a string 'id' and a non-empty 'text'")
            if "rubric" in entry:  # checked now, used by `mpibench score --scorer rubric`
                _check_rubric(entry["rubric"], entry["id"])
            prompts.append(Prompt(entry["id"], entry["text"], entry.get("category", "custom")))
        else:
            raise ConfigError(f"a prompt must be an id or a table with id and text, got {entry!r}")
    ids = [p.id for p in prompts]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ConfigError(f"prompt ids must be unique; repeated: {', '.join(duplicates)}")
    return tuple(prompts)


def parse_models(entries) -> tuple[ModelSpec, ...]:
    if isinstance(entries, str):
        entries = [e.strip() for e in entries.split(",") if e.strip()]
    if not isinstance(entries, (list, tuple)) or not entries:
        raise ConfigError("the model list is empty: name a builtin (" + ", ".join(BUILTIN_MODEL_NAMES) + ") or a GGUF path")
    models = tuple(model_from_entry(e) for e in entries)
    names = [m.name for m in models]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"model names must be unique; repeated: {', '.join(duplicates)} (give tables a 'name')")
    return models


def build_config(toml_text: str | None = None, overrides: dict | None = None,
                 base: SweepConfig | None = None) -> SweepConfig:
    """Validate a TOML text and CLI overrides (CLI wins) into a SweepConfig; what neither sets keeps `base`'s
    value (a resumed run's own configuration), or the default."""
    data = read_settings(toml_text, overrides, TOP_LEVEL_KEYS, "the configuration")
    config = base or SweepConfig()
    if "models" in data:
        config = replace(config, models=parse_models(data["models"]))
    if "prompts" in data:
        config = replace(config, prompts=parse_prompts(data["prompts"]))
    if "threads" in data:
        config = replace(config, threads=_threads(data["threads"]))
    for key in ("repetitions", "max_tokens", "n_ctx"):
        if key in data:
            config = replace(config, **{key: _positive_int(data[key], key)})
    if "kind" in data:
        if data["kind"] not in KINDS:
            raise _unknown_key_error(str(data["kind"]), KINDS, "the kinds")
        config = replace(config, kind=data["kind"])
    if "warmup" in data:
        if isinstance(data["warmup"], bool) or not isinstance(data["warmup"], int) or data["warmup"] < 0:
            raise ConfigError(f"warmup must be a non-negative integer, got {data['warmup']!r}")
        config = replace(config, warmup=data["warmup"])
    for key in ("n_prompt", "n_gen"):
        if key in data:
            config = replace(config, **{key: _token_counts(data[key], key)})
    if config.kind == "bench" and not any(config.n_prompt + config.n_gen):
        raise ConfigError("a bench needs a test: give -p (prompt tokens) or -n (generated tokens) above 0")
    if "seed" in data:
        if isinstance(data["seed"], bool) or not isinstance(data["seed"], int) or data["seed"] < 0:
            raise ConfigError(f"seed must be a non-negative integer, got {data['seed']!r}")
        config = replace(config, seed=data["seed"])
    if "timeout" in data:
        value = data["timeout"]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise ConfigError(f"timeout must be a positive number of seconds, got {value!r}")
        config = replace(config, timeout=float(value))
    if "out" in data:
        if not isinstance(data["out"], str) or not data["out"].strip():
            raise ConfigError("out must be a directory path")
        config = replace(config, out=data["out"])
    if "plots" in data:
        if not isinstance(data["plots"], bool):
            raise ConfigError("plots must be true or false")
        config = replace(config, plots=data["plots"])
    return config


def default_thread_counts(cores: int) -> tuple[int, ...]:
    """Every count from 1 to `cores` up to 8 cores; beyond that powers of two plus `cores` itself."""
    if cores <= 8:
        return tuple(range(1, cores + 1))
    counts = [1 << i for i in range(cores.bit_length()) if 1 << i <= cores]
    return tuple(counts + ([cores] if counts[-1] != cores else []))


def config_from_json(text: str) -> SweepConfig:
    """The SweepConfig that canonical_json() wrote (a run directory's record of its configuration)."""
    data = json.loads(text)
    data["models"] = tuple(ModelSpec(**m) for m in data["models"])
    data["prompts"] = tuple(Prompt(**p) for p in data["prompts"])
    if data["threads"] is not None:
        data["threads"] = tuple(data["threads"])
    return SweepConfig(**data)


def differing_keys(a: SweepConfig, b: SweepConfig) -> list[str]:
    """The measured keys whose values differ between two configurations."""
    left, right = json.loads(a.canonical_json(True)), json.loads(b.canonical_json(True))
    return sorted(k for k in left if left[k] != right.get(k))


def bench_tests(config: SweepConfig) -> tuple[str, ...]:
    """llama-bench's tests of a bench config: ppN for each prompt size, tgN for each generation length."""
    return tuple([f"pp{n}" for n in config.n_prompt if n] + [f"tg{n}" for n in config.n_gen if n])


def bench_test_sizes(test: str) -> tuple[int, int] | None:
    """(n_prompt, n_gen) of a bench test name (pp512: (512, 0), tg128: (0, 128)); None for any other name."""
    match = re.fullmatch(r"(pp|tg)(\d+)", test)
    if not match:
        return None
    return (int(match[2]), 0) if match[1] == "pp" else (0, int(match[2]))


def warmup_runs(config: SweepConfig) -> int:
    return config.warmup if config.warmup is not None else (1 if config.kind == "bench" else 0)
