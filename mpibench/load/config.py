"""A load test's configuration: TOML file plus CLI overrides, validated before anything runs (pure).

A load test measures server configurations (P runners x S sequences x T threads, protocol.ServerConfig) of each
model under load points: closed-loop user counts, open-loop rates, or a sweep planned from the measurements.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field, replace

from mpibench.config import DEFAULT_MODEL, Canonical, ConfigError, ModelSpec, parse_int_list, parse_models, \
    parse_prompts, read_settings
from mpibench.prompts import Prompt, study_prompts
from mpibench.protocol import LoadShape, Phases, ServerConfig, Workload

ARRIVALS = ("poisson", "constant", "gamma")
THINK = ("none", "constant", "exponential")
DEFAULT_SLOTS = 4  # the default server: one runner batching 4 sequences on every core but the generator's
SERVER = re.compile(r"P?(\d+)x(?:S?(\d+))x(?:T?(\d+))", re.IGNORECASE)
TOP_LEVEL_KEYS = ("models", "servers", "kv_unified", "users", "rates", "sweep", "sweep_rates", "arrivals",
                  "gamma_shape", "think", "think_s", "max_concurrency", "duration", "ramp_up", "warmup_time", "cooldown",
                  "drain", "prompts", "max_tokens", "prompt_tokens", "n_ctx", "seed", "slo_ttft_ms", "slo_tpot_ms",
                  "slo_e2e_ms", "out", "plots", "replicas")
UNMEASURED_KEYS = ("out", "plots")


@dataclass(frozen=True)
class LoadConfig(Canonical):
    models: tuple[ModelSpec, ...] = (ModelSpec(DEFAULT_MODEL, builtin=DEFAULT_MODEL),)
    servers: tuple[ServerConfig, ...] | None = None  # None: 1 x DEFAULT_SLOTS x (the node's cores but one)
    kv_unified: bool = False
    users: tuple[int, ...] = ()  # closed-loop points
    rates: tuple[float, ...] = ()  # open-loop points, requests per second
    sweep: bool = False  # neither users nor rates: a sweep
    sweep_rates: int = 5  # the sweep's open-loop rates between the synchronous and the saturated point
    arrivals: str = "poisson"
    gamma_shape: float = 0.5
    think: str = "none"
    think_s: float = 0.0
    max_concurrency: int = 0
    duration: float = 60.0  # the steady window, seconds
    ramp_up: float = 0.0
    warmup_time: float = 5.0
    cooldown: float = 2.0
    drain: float = 60.0
    prompts: tuple[Prompt, ...] = field(default_factory=study_prompts)
    max_tokens: int = 64  # generated per request at most ("prompts"), or exactly ("fixed")
    prompt_tokens: int = 0  # > 0: the fixed workload, this many random prompt tokens, end-of-sequence ignored
    n_ctx: int = 1024  # per sequence
    seed: int = 42
    slo_ttft_ms: float = 1000.0
    slo_tpot_ms: float = 100.0
    slo_e2e_ms: float | None = None
    out: str | None = None
    plots: bool = True
    replicas: int = 1  # nodes that run each point at once, from a shared t0; 0: every node
    unmeasured = UNMEASURED_KEYS  # Canonical's: not part of the hash
    added = {"replicas": 1}  # Canonical's: runs recorded before replicas keep their hash

    @property
    def phases(self) -> Phases:
        return Phases(self.ramp_up, self.warmup_time, self.duration, self.cooldown, self.drain)

    @property
    def workload(self) -> Workload:
        if self.prompt_tokens:
            return Workload("fixed", prompt_tokens=self.prompt_tokens, gen_tokens=self.max_tokens)
        return Workload("prompts", tuple((p.id, p.text) for p in self.prompts), max_tokens=self.max_tokens)

    def shapes(self) -> tuple[LoadShape, ...]:
        """The load points given up front (none for a sweep, which plans them from its measurements)."""
        closed = [LoadShape("closed", users=u, think=self.think, think_s=self.think_s) for u in self.users]
        return tuple(closed + [self.open_shape(r) for r in self.rates])

    def open_shape(self, rate: float) -> LoadShape:
        return LoadShape("open", rate=rate, arrivals=self.arrivals, gamma_shape=self.gamma_shape,
                         max_concurrency=self.max_concurrency)

    @property
    def slos(self) -> dict[str, float | None]:
        """The SLOs in seconds (None: not set)."""
        return {name: getattr(self, f"slo_{name}_ms") / 1e3 if getattr(self, f"slo_{name}_ms") else None
                for name in ("ttft", "tpot", "e2e")}


def parse_server(text: str) -> ServerConfig:
    """'P2xS1xT4' or '2x1x4': P runners x S sequences each x T threads each."""
    match = SERVER.fullmatch(str(text).strip())
    if not match or min(int(g) for g in match.groups()) < 1:
        raise ConfigError(f"server '{text}' is not P x S x T with positive counts, e.g. 1x4x1 (one runner batching "
                          "4 sequences on 1 thread) or P2xS1xT1 (two single-sequence runners)")
    return ServerConfig(*(int(g) for g in match.groups()))


def _servers(value) -> tuple[ServerConfig, ...]:
    items = [s.strip() for s in value.split(",") if s.strip()] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not items:
        raise ConfigError("servers must be a list like ['1x4x1', '2x1x1'] (P runners x S sequences x T threads)")
    return tuple(dict.fromkeys(parse_server(s) for s in items))


def _rates(value) -> tuple[float, ...]:
    items = [s.strip() for s in value.split(",") if s.strip()] if isinstance(value, str) else value
    try:
        rates = tuple(float(r) for r in items)
    except (TypeError, ValueError):
        rates = ()
    if not rates or not all(math.isfinite(r) and r > 0 for r in rates):
        raise ConfigError(f"rates must be positive requests per second, e.g. 0.5,1,2, got {value!r}")
    return tuple(dict.fromkeys(rates))


def _number(value, key: str, minimum: float = 0.0, strict: bool = False) -> float:
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value) and \
        (value > minimum if strict else value >= minimum)
    if not ok:
        raise ConfigError(f"{key} must be a number {'above' if strict else 'of at least'} {minimum:g}, got {value!r}")
    return float(value)


def _count(value, key: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{key} must be an integer of at least {minimum}, got {value!r}")
    return value


def _replicas(value) -> int:
    """'all' (0: every node) or a count of nodes."""
    if value == "all":
        return 0
    try:
        return _count(int(value) if isinstance(value, str) and value.strip().isdigit() else value, "replicas")
    except ConfigError:
        raise ConfigError(f"replicas must be a count of nodes (1 or more) or 'all', got {value!r}") from None


def _choice(value, key: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ConfigError(f"{key} must be one of {', '.join(choices)}, got {value!r}")
    return value


def build_load_config(toml_text: str | None = None, overrides: dict | None = None,
                      base: LoadConfig | None = None) -> LoadConfig:
    """Validate a TOML text and CLI overrides (CLI wins) into a LoadConfig; what neither sets keeps `base`'s value
    (a resumed run's own), or the default."""
    data = read_settings(toml_text, overrides, TOP_LEVEL_KEYS, "the load configuration")
    config, changes = base or LoadConfig(), {}
    converters = {
        "models": parse_models, "servers": _servers, "prompts": parse_prompts, "rates": _rates,
        "users": lambda v: parse_int_list(v, "users") if isinstance(v, str) else
        tuple(_count(u, "every user count") for u in v) if isinstance(v, (list, tuple)) and v else
        (_count(v, "users"),),
        "arrivals": lambda v: _choice(v, "arrivals", ARRIVALS), "think": lambda v: _choice(v, "think", THINK),
        "gamma_shape": lambda v: _number(v, "gamma_shape", strict=True), "think_s": lambda v: _number(v, "think_s"),
        "duration": lambda v: _number(v, "duration", strict=True), "ramp_up": lambda v: _number(v, "ramp_up"),
        "warmup_time": lambda v: _number(v, "warmup_time"), "cooldown": lambda v: _number(v, "cooldown"),
        "drain": lambda v: _number(v, "drain", strict=True), "max_concurrency": lambda v: _count(v, "max_concurrency", 0),
        "sweep_rates": lambda v: _count(v, "sweep_rates"), "max_tokens": lambda v: _count(v, "max_tokens"),
        "prompt_tokens": lambda v: _count(v, "prompt_tokens", 0), "n_ctx": lambda v: _count(v, "n_ctx", 8),
        "seed": lambda v: _count(v, "seed", 0), "replicas": _replicas,
        "slo_ttft_ms": lambda v: _number(v, "slo_ttft_ms", strict=True),
        "slo_tpot_ms": lambda v: _number(v, "slo_tpot_ms", strict=True),
        "slo_e2e_ms": lambda v: _number(v, "slo_e2e_ms", strict=True),
    }
    for key, value in data.items():
        if key in converters:
            changes[key] = converters[key](value)
        elif key in ("kv_unified", "sweep", "plots"):
            if not isinstance(value, bool):
                raise ConfigError(f"{key} must be true or false")
            changes[key] = value
        elif key == "out":
            if not isinstance(value, str) or not value.strip():
                raise ConfigError("out must be a directory path")
            changes[key] = value
    if changes.get("users") or changes.get("rates"):
        changes.setdefault("sweep", False)
    config = replace(config, **changes)
    if config.sweep and (config.users or config.rates):
        raise ConfigError("--sweep plans its own load points: give it without --users and --rate")
    if not (config.sweep or config.users or config.rates):
        config = replace(config, sweep=True)  # no load given: sweep from one user to saturation
    if config.prompt_tokens + config.max_tokens > config.n_ctx:
        raise ConfigError(f"a request of {config.prompt_tokens} prompt and {config.max_tokens} generated tokens does "
                          f"not fit the context of {config.n_ctx} tokens per sequence: raise --ctx")
    return config


def load_config_from_json(text: str) -> LoadConfig:
    """The LoadConfig that canonical_json() wrote (a run directory's record of its configuration)."""
    data = json.loads(text)
    data["models"] = tuple(ModelSpec(**m) for m in data["models"])
    data["prompts"] = tuple(Prompt(**p) for p in data["prompts"])
    if data["servers"] is not None:
        data["servers"] = tuple(ServerConfig(**s) for s in data["servers"])
    for key in ("users", "rates"):
        data[key] = tuple(data[key])
    return LoadConfig(**data)
