"""What rank 0 runs in a load test: the validated configuration on this launch's nodes, the run directory and
header, and the load points, each a (model, server configuration, load) on one whole node.

A node's first worker rank runs its points (the generator on the node's last core, the runners on the others);
the node's other ranks stay idle, so that nothing else runs on a node under load. Points of one (model, server)
series run one after another; a sweep plans its next point from the last one's measurements (load/sweep.py). With
replicas, each point runs on that many nodes at once, replica r with seed + r (independent schedules).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path

from mpibench import __version__, launcher
from mpibench.config import ConfigError
from mpibench.load.config import DEFAULT_SLOTS, LoadConfig, load_config_from_json
from mpibench.models import ModelInfo, inspect_model
from mpibench.placement import Placement
from mpibench.protocol import LoadPoint, LoadShape, ServerConfig
from mpibench.store import rundir
from mpibench.table import counted



def point_key(model: str, server: ServerConfig, shape: LoadShape) -> str:
    """A load point's identity in the journal (what --resume skips)."""
    return f"{model}|{server.label}|{shape.mode}|{shape.label}"


def node_leaders(place: Placement) -> dict[str, int]:
    """Each worker node's first worker rank: the one that runs its load points."""
    leaders: dict[str, int] = {}
    for rank, node in sorted(place.worker_nodes.items()):
        leaders.setdefault(node, rank)
    return leaders


def resolve_servers(config: LoadConfig, place: Placement) -> tuple[ServerConfig, ...]:
    """The configuration's servers (default: one runner batching DEFAULT_SLOTS sequences on every core but the
    generator's), each checked to fit every worker node beside the generator's core."""
    cores = min(len(place.node_cores[node]) for node in node_leaders(place))
    if cores < 2:
        raise ConfigError(f"a load test needs 2 cores or more per node (one for the load generator), the smallest "
                          f"node offers {cores}: launch with more cores per node")
    servers = config.servers or (ServerConfig(1, DEFAULT_SLOTS, cores - 1),)
    for server in servers:
        if server.partitions * server.threads > cores - 1:
            raise ConfigError(f"server {server.label} needs {server.partitions * server.threads} cores for its "
                              f"runners and one for the generator; the smallest node offers {cores}: use fewer "
                              f"runners or threads")
    return tuple(replace(s, kv_unified=config.kv_unified) for s in servers)


def resolve_replicas(config: LoadConfig, place: Placement) -> int:
    """How many nodes run each point (config.replicas; 0: every worker node), checked against the launch's."""
    nodes = len(node_leaders(place))
    if config.replicas > nodes:
        raise ConfigError(f"--replicas {config.replicas} runs each point on {config.replicas} nodes at once; this "
                          f"launch has {counted(nodes, 'worker node')}: launch on more nodes or ask fewer replicas")
    return config.replicas or nodes


@dataclass
class LoadPlan:
    config: LoadConfig
    place: Placement
    servers: tuple[ServerConfig, ...]
    replicas: int  # nodes that run each point at once
    models: dict[str, ModelInfo]
    run_dir: Path
    header: dict
    done: dict[str, dict]  # point key -> its journal record, from an earlier launch

    @classmethod
    def make(cls, config: LoadConfig, config_toml: str, place: Placement, launch: dict, resume: str | None,
             force: bool) -> LoadPlan:
        previous: list[dict] = []
        if resume:
            old, previous = rundir.read_run(resume)
            if old.get("kind") != rundir.LOAD_KIND:
                raise rundir.RunDirError(f"{resume} is not a load run: continue it with `mpibench run --resume`")
            if config.hash() != old["config_hash"]:
                raise rundir.RunDirError(f"{resume} was run with a different load configuration; resume with the same "
                                         "one, or with none to use the run's own")
            config = replace(load_config_from_json(old["config_json"]), out=resume)
        servers, replicas = resolve_servers(config, place), resolve_replicas(config, place)
        models = {m.name: inspect_model(m) for m in config.models}
        if resume:
            run_dir = Path(resume)
            header = dict(old, status="running", launches=old.get("launches", []) + [launch],
                          resumes=old.get("resumes", []) + [launch["started"]])
        else:
            run_id = rundir.new_run_id(config.hash())
            run_dir = rundir.create(Path(config.out or f"results/{run_id}"), force)
            header = dict(launch, kind=rundir.LOAD_KIND, run_id=run_id, mpibench_version=__version__,
                          config_hash=config.hash(), config_json=config.canonical_json(), config_toml=config_toml,
                          threads=sorted({s.threads for s in servers}), servers=[asdict(s) for s in servers],
                          total_tasks=0, status="running", models=[asdict(m) for m in models.values()],
                          launches=[launch], prompts=[{"id": p.id, "category": p.category, "text": p.text}
                                                      for p in config.prompts])
        rundir.write_header(run_dir, header)
        done = {r["task_id"]: r for r in previous if not r.get("error")}
        return cls(config, place, servers, replicas, models, run_dir, header, done)

    def summary(self) -> str:
        config = self.config
        loads = "a sweep" if config.sweep else ", ".join(s.label for s in config.shapes())
        replicated = f", each point on {self.replicas} nodes at once" if self.replicas > 1 else ""
        return (f"load {self.header['run_id']}: {counted(len(self.models), 'model')} x servers "
                f"{', '.join(s.label for s in self.servers)} x {loads}; {config.duration:g} s steady windows "
                f"on {counted(len(node_leaders(self.place)), 'node')}{replicated} -> {self.run_dir}")

    def point(self, index: int, model: str, server: ServerConfig, shape: LoadShape, node: str,
              replica: int = 0) -> LoadPoint:
        """The point as a node runs it (as its replica `replica`): the generator on the node's last core, the
        runners on the others."""
        info, cores = self.models[model], self.place.node_cores[node]
        return LoadPoint(index, server, shape, self.config.workload, self.config.phases, model, info.path,
                         info.prompt_format, self.config.n_ctx, self.config.seed + replica, tuple(cores[:-1]),
                         cores[-1], int(info.synthetic), replica, self.replicas)

    def resume_command(self, world_size: int) -> str:
        return launcher.relaunch_command(world_size, "load", ["--resume", str(self.run_dir)])
