"""The ``harness`` command line. Listing and help import no torch (fast paths)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

from harness.errors import HarnessError

EXIT_USAGE = 2


def _cmd_list(args: argparse.Namespace) -> int:
    from harness import config, registry

    if args.what == "methods":
        for name, entry in registry.methods().items():
            recipes = ", ".join(registry.recipe_names(name)) or "-"
            print(f"{name:<12} recipes: {recipes:<40} ({entry.entry})")
    elif args.what == "tasks":
        for name, entry in registry.tasks().items():
            print(f"{name:<18} v{entry.version:<4} {entry.framework:<6} {entry.description}")
    elif args.what == "suites":
        for name in config.suite_names():
            suite = config.load_suite(name)
            tasks = [t if isinstance(t, str) else t.get("as", t["task"]) for t in suite["tasks"]]
            print(f"{name:<16} {suite.get('description', '')}\n{'':<16} tasks: {', '.join(tasks)}")
    else:
        for name in config.preset_names():
            print(f"{name:<8} {config.load_preset(name).get('description', '')}")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from harness import config, runner

    cfg = config.resolve(args.method, args.suite, preset=args.preset, recipe=args.recipe, seed=args.seed,
                         overrides=args.set, data_root=args.data_root)
    units = runner.plan(cfg)
    out = Path(args.out).resolve()
    if args.dry_run:
        print(f"config hash {config.config_hash(cfg)[:16]}; output {out}")
        for i, u in enumerate(units, 1):
            print(f"[{i}/{len(units)}] {u.label:<34} key {u.key}")
        return 0
    runner.check_writable(out)
    print(f"harness run: method {cfg['method']['name']} (recipe {runner.recipe_label(cfg)}), suite {cfg['suite']}, "
          f"preset {cfg['preset']}, seed {cfg['seed']}, {len(units)} units -> {out}", flush=True)
    data_root = runner.prepare_data(cfg, print)
    r = runner.Runner(cfg, out, launcher=args.launcher, nproc_per_node=args.nproc_per_node)
    outcomes = r.run(units, data_root)
    print("\n" + runner.summary_table([o for o in outcomes if o.unit.kind == "task"]))
    print(f"\nrecords: {r.records_dir}")
    failed = [o for o in outcomes if o.status in ("failed", "blocked")]
    return 1 if failed else 0


def _cmd_data_synth(args: argparse.Namespace) -> int:
    from harness.data import synthetic

    synthetic.synth_main(Path(args.out), seed=args.seed, size=args.size)
    return 0


def _cmd_data_verify(args: argparse.Namespace) -> int:
    from harness.data import verify

    return verify.verify_main(Path(args.data_root), args.dataset)


def _cmd_convert(args: argparse.Namespace) -> int:
    from harness import checkpoints

    return checkpoints.convert_main(Path(args.src), Path(args.dst), arch=args.arch)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="harness", description=(
        "Pretrain an object-aware SSL method with its registered recipe, run a suite of downstream "
        "tasks, and collect one result record per task."))
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="pretrain a method and run a suite of tasks (resumable)")
    run.add_argument("--method", required=True, help="method name (see `harness list methods`)")
    run.add_argument("--suite", default="all", help="suite name (see `harness list suites`)")
    run.add_argument("--preset", default="tiny", help="scale preset: tiny (CPU, synthetic data) or paper")
    run.add_argument("--recipe", help="method recipe (default: the preset's name)")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="override a resolved config value by dotted path, e.g. method.epochs=2")
    run.add_argument("--data-root", help="root of the real datasets (default: the synthetic benchmark)")
    run.add_argument("--out", default="runs", help="output folder (units and records)")
    run.add_argument("--launcher", choices=["local", "torchrun"], default="local")
    run.add_argument("--nproc-per-node", type=int, default=1, help="processes per unit under torchrun")
    run.add_argument("--dry-run", action="store_true", help="print the plan and the unit keys, run nothing")
    run.set_defaults(func=_cmd_run)

    ls = sub.add_parser("list", help="list methods, tasks, suites or presets")
    ls.add_argument("what", choices=["methods", "tasks", "suites", "presets"])
    ls.set_defaults(func=_cmd_list)

    data = sub.add_parser("data", help="datasets: synthetic benchmark, verification")
    dsub = data.add_subparsers(dest="data_command", required=True)
    synth = dsub.add_parser("synth", help="write the synthetic benchmark (official layouts) into a folder")
    synth.add_argument("--out", required=True)
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--size", default="default", choices=["tiny", "default"])
    synth.set_defaults(func=_cmd_data_synth)
    ver = dsub.add_parser("verify", help="check the datasets under a data root")
    ver.add_argument("--data-root", required=True)
    ver.add_argument("--dataset", help="check only this dataset")
    ver.set_defaults(func=_cmd_data_verify)

    conv = sub.add_parser("convert", help="import a public SSL checkpoint as a torchvision backbone file")
    conv.add_argument("src")
    conv.add_argument("dst")
    conv.add_argument("--arch", help="resnet18 / resnet50 (default: inferred)")
    conv.set_defaults(func=_cmd_convert)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except HarnessError as exc:
        print(f"harness: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("harness: interrupted; run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
