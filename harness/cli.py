"""The ``harness`` command line. Listing and help import no torch (fast paths)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Callable

from harness.core.errors import CheckpointError, DataError, HarnessError

EXIT_USAGE = 2  # a bad command, option, name or configuration file
EXIT_DATA = 3   # a dataset or checkpoint file that is missing or not in the expected format
RECORDS_HELP = ("a records folder, or a run's output folder (its records/ is read); repeatable "
                "(default: the curated results/records of the source tree)")


def _bounded_int(minimum: int, noun: str, rule: str) -> Callable[[str], int]:
    """An argparse type: an integer of at least ``minimum``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {noun}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text!r}: {rule}")
        return value

    return parse


_seed = _bounded_int(0, "a seed (a non-negative integer)", "seeds are non-negative")
_positive = _bounded_int(1, "a whole number", "must be at least 1")
_count = _bounded_int(0, "a whole number", "must be at least 0")


def _duplicates_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--duplicates", choices=["refuse", "first"], default="refuse",
                        help="a unit found in two records folders with different results: refuse (exit 2, the "
                             "default) or keep the first folder's (identical records always count once)")


def _cmd_list(args: argparse.Namespace) -> int:
    from harness.core import config, registry

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


def parse_seeds(text: str) -> list[int]:
    """``--seeds``: comma-separated non-negative integers and inclusive ranges (``0,1,2``,
    ``0-4``, ``0-2,7``); duplicates are an error."""
    seeds: list[int] = []
    for part in text.split(","):
        part = part.strip()
        lo, dash, hi = part.partition("-")
        try:
            if dash:
                a, b = int(lo), int(hi)
                if a > b:
                    raise ValueError
                seeds.extend(range(a, b + 1))
            else:
                seeds.append(int(part))
        except ValueError:
            raise HarnessError(f"--seeds {text!r}: {part!r} is not a seed (expected comma-separated non-negative "
                               "integers or ranges A-B with A <= B, e.g. 0,1,2 or 0-4)") from None
    if any(s < 0 for s in seeds):
        raise HarnessError(f"--seeds {text!r}: seeds must be non-negative")
    if len(set(seeds)) != len(seeds):
        raise HarnessError(f"--seeds {text!r}: a seed is listed twice")
    return seeds


def _cmd_run(args: argparse.Namespace) -> int:
    from harness.core import config
    from harness.run import dev_run, preflight, runner, summary

    seeds = parse_seeds(args.seeds) if args.seeds is not None else [args.seed]
    cfgs = [config.only_tasks(config.resolve(args.method, args.suite, preset=args.preset, recipe=args.recipe,
                                             seed=seed, overrides=args.set, data_root=args.data_root),
                               args.only, args.skip)
            for seed in seeds]
    out = Path(args.out).resolve()
    dev = None
    if args.fast_dev_run is not None:
        dev = dev_run.settings(dev_run.parse_steps(args.fast_dev_run), args.dev_run_images)
        cfgs = [{**cfg, "dev_run": dev} for cfg in cfgs]
        out = out / "dev-run"
    plans = [runner.plan(cfg) for cfg in cfgs]
    launcher = _launcher(args)
    worlds = _worlds(args)
    if args.dry_run:
        import yaml

        print(f"# resolved configuration (seed {cfgs[0]['seed']}):")
        print(yaml.safe_dump(cfgs[0], sort_keys=False, default_flow_style=None, width=110).rstrip())
        for cfg, units in zip(cfgs, plans):
            print(f"seed {cfg['seed']}: config hash {config.config_hash(cfg)[:16]}; output {out}; "
                  f"launcher {launcher.name}")
            r = runner.Runner(cfg, out, launcher=launcher)
            for i, u in enumerate(units, 1):
                print(f"[{i}/{len(units)}] {u.label:<34} key {u.key}  {launcher.describe(r.request(u, u.label))}")
        root = runner.existing_data_root(cfgs[0])
        findings = preflight.check_plan(cfgs[0], plans[0], root, worlds=worlds, out=out, launcher=args.launcher)
        print(preflight.summary(findings, len(plans[0]), root))
        preflight.raise_for(findings)
        return 0
    runner.check_writable(out)
    cfg0 = cfgs[0]
    seed_text = f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {','.join(map(str, seeds))}"
    print(f"harness run: method {cfg0['method']['name']} (recipe {runner.recipe_label(cfg0)}), suite {cfg0['suite']}, "
          f"preset {cfg0['preset']}, {seed_text}, {sum(map(len, plans))} units -> {out}"
          + (f" (fast dev run: {dev['steps']} steps, {dev['images']} images)" if dev else ""), flush=True)
    data_root = runner.prepare_data(cfg0, print)
    findings = preflight.check_plan(cfg0, plans[0], data_root, worlds=worlds, out=out, launcher=args.launcher)
    print(preflight.summary(findings, len(plans[0]), data_root), flush=True)
    preflight.raise_for(findings)
    if dev is None:
        _warn_single_process(cfg0, args.launcher)
    failed: list[str] = []
    task_keys: set[str] = set()
    for cfg, units in zip(cfgs, plans):
        r = runner.Runner(cfg, out, launcher=launcher)
        if len(seeds) > 1:
            print(f"-- seed {cfg['seed']}", flush=True)
        outcomes = r.run(units, data_root)
        task_keys |= {o.unit.key for o in outcomes if o.unit.kind == "task" and o.status in ("ok", "skipped")}
        if launcher.waits and dev:
            _print_dev_table(outcomes, cfg, worlds)
        elif launcher.waits:
            print("\n" + runner.summary_table([o for o in outcomes if o.unit.kind == "task"]))
        else:
            print(f"submitted {sum(o.status == 'submitted' for o in outcomes)} jobs; "
                  f"follow them with `harness status --out {out}`")
        failed += [text for text in [summary.failures(outcomes, r.workdir)] if text]
        failed += [f"not run: {o.unit.label} (an upstream unit failed)" for o in outcomes if o.status == "blocked"]
    if launcher.waits and not dev:
        method, recipe, records_dir = cfg0["method"]["name"], runner.recipe_label(cfg0), r.records_dir
        if len(seeds) > 1:
            print(f"\n{method}:{recipe} over seeds {','.join(map(str, seeds))}:\n"
                  + summary.metrics_over_seeds(records_dir, task_keys))
        print(f"\nrecords: {records_dir}")
        if failed:
            print("\n" + "\n".join(failed))
        print("\n" + summary.next_commands(out, cfg0, recipe, len(task_keys)))
    return 1 if failed else 0


def _print_dev_table(outcomes: list[Any], cfg: dict[str, Any], worlds: Any) -> None:
    from harness.run import dev_report

    devices = [(o.record or {}).get("device") for o in outcomes if (o.record or {}).get("device")]
    print("\n" + dev_report.table(dev_report.rows(outcomes, cfg, worlds.stage, worlds.task),
                                  devices[0] if devices else "unknown"))


def _warn_single_process(cfg: dict[str, Any], launcher: str) -> None:
    """A paper-scale run in one process: say so, with the schedule it is about to run."""
    if launcher != "local" or cfg["preset"] == "tiny":
        return
    method = cfg["method"]
    print(f"WARNING: preset {cfg['preset']!r} with --launcher local runs every unit in one process on this "
          f"machine ({method.get('epochs', '?')} epochs of {method['name']} at batch {method.get('batch_size', '?')} "
          f"first). Measure the projected time with --fast-dev-run, and use --launcher torchrun or slurm for the "
          f"real run.", file=sys.stderr, flush=True)


def _worlds(args: argparse.Namespace) -> Any:
    """Processes per stage and per task unit under the chosen launcher."""
    from harness.run.preflight import Worlds

    if args.launcher == "torchrun":
        return Worlds(args.nproc_per_node, args.nproc_per_node)
    if args.launcher == "slurm":
        gpus = max(args.gpus_per_node, 1)
        return Worlds(args.nodes * gpus, gpus)
    return Worlds()


def _launcher(args: argparse.Namespace):
    from harness.run.launch import make_launcher
    from harness.run.launch.slurm import SlurmResources

    res = SlurmResources(partition=args.partition, nodes=args.nodes, gpus_per_node=args.gpus_per_node,
                         cpus_per_task=args.cpus_per_task, mem=args.mem, time_min=args.time, account=args.account)
    return make_launcher(args.launcher, nproc_per_node=args.nproc_per_node, slurm_resources=res,
                         slurm_cluster=args.slurm_cluster)


def _cmd_status(args: argparse.Namespace) -> int:
    from harness.run import status

    return status.status_main(Path(args.out))


def _cmd_data_synth(args: argparse.Namespace) -> int:
    from harness.data import synthetic

    synthetic.synth_main(Path(args.out), seed=args.seed, size=args.size)
    return 0


def _cmd_data_verify(args: argparse.Namespace) -> int:
    from harness.data import verify

    if args.suite is not None:
        if args.dataset is not None:
            raise HarnessError("data verify: give --dataset or --suite, not both")
        from harness.run import preflight

        return preflight.verify_suite_main(Path(args.data_root), args.suite, args.preset, args.method, args.recipe,
                                           args.set)
    if args.method is not None:
        raise HarnessError("data verify: --method needs --suite (what the method reads is checked per suite)")

    bad = verify.verify_main(Path(args.data_root), args.dataset, sample=args.sample, strict_counts=args.strict_counts)
    return EXIT_DATA if bad else 0


def _cmd_data_oim(args: argparse.Namespace) -> int:
    from harness.data.openimage_mini import build, spec

    spec_path = Path(args.spec) if args.spec else spec.default_spec_path(tiny=args.tiny)
    build.build(Path(args.oi_root), Path(args.out), spec_path, workers=args.workers)
    return 0


def _cmd_convert(args: argparse.Namespace) -> int:
    from harness.convert import convert_main

    return convert_main(Path(args.src), Path(args.dst), arch=args.arch)


def _cmd_tables(args: argparse.Namespace) -> int:
    from harness.results import leaderboard

    return leaderboard.tables_main([Path(r) for r in args.records] or None, args.suite, args.format,
                                   Path(args.out) if args.out else None, args.check, args.duplicates)


def _cmd_check(args: argparse.Namespace) -> int:
    from harness.core import config
    from harness.results import baselines, leaderboard, regress, store
    from harness.run import runner

    baseline = baselines.load(Path(args.baseline))
    tasks = leaderboard.suite_tasks(args.suite) if args.suite else None
    if args.records:
        records_dir = Path(args.records)
    else:
        if not args.suite:
            raise HarnessError("check: name the --suite to run (or read existing --records)")
        cfg = config.resolve(baseline["method"], args.suite, preset=baseline.get("preset", "tiny"),
                             recipe=baseline["recipe"], seed=args.seed)
        out = Path(args.out).resolve()
        runner.check_writable(out)
        r = runner.Runner(cfg, out)
        r.run(runner.plan(cfg), runner.prepare_data(cfg, print))
        records_dir = r.records_dir
    rows = regress.row_records(store.load_records(records_dir, kind=None), baseline, records_dir)
    checks = regress.evaluate(rows, baseline, tasks if tasks is not None else sorted(set(rows["task"])))
    if not checks:
        raise HarnessError(f"{args.baseline}: checks none of the tasks of suite {args.suite!r}")
    checks += regress.signature_checks(rows)
    print(regress.format_checks(checks))
    return 0 if all(c.status == "pass" for c in checks) else 1


def _cmd_baselines(args: argparse.Namespace) -> int:
    from harness.core import paths
    from harness.results import baselines

    records = [Path(r) for r in args.records] or [paths.results_dir() / "records"]
    cross = [Path(r) for r in args.cross_cpu] or [paths.results_dir() / "cross-cpu"]
    return baselines.baselines_main(records, cross, Path(args.out) if args.out else None, args.check)


def _records_dirs(args: argparse.Namespace) -> list[Path]:
    from harness.core import paths

    return [Path(r) for r in args.records] or [paths.results_dir() / "records"]


def _cmd_compare(args: argparse.Namespace) -> int:
    from harness.results import compare

    return compare.compare_main(args.row_a, args.row_b, _records_dirs(args), args.duplicates)


def _cmd_claims(args: argparse.Namespace) -> int:
    from harness.results import claims

    return claims.claims_main(_records_dirs(args), [Path(f) for f in args.file] or None, args.duplicates)


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("objaware-harness")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


class _HelpWithDefaults(argparse.HelpFormatter):
    """Help that shows every option's default unless its text already says it (required
    options and flags, which are off unless given, excepted)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if ("default" in text or not action.option_strings or action.required or action.nargs == 0
                or action.default is argparse.SUPPRESS):
            return text
        shown = "none" if action.default is None or action.default == [] else "%(default)s"
        return f"{text} (default: {shown})"


def _all_parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    out = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                out += _all_parsers(sub)
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="harness", description=(
        "Pretrain an object-aware SSL method with its registered recipe, run a suite of downstream "
        "tasks, and collect one result record per task."))
    p.add_argument("--version", action="version", version=f"harness {_version()}")
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="pretrain a method and run a suite of tasks (resumable)")
    run.add_argument("--method", required=True, help="method name (see `harness list methods`)")
    run.add_argument("--suite", default="all", help="suite name (see `harness list suites`)")
    run.add_argument("--preset", default="tiny", help="scale preset: tiny (CPU, synthetic data) or paper")
    run.add_argument("--recipe", help="method recipe (default: the preset's name)")
    seed_group = run.add_mutually_exclusive_group()
    seed_group.add_argument("--seed", type=_seed, default=0, help="pretraining and task seed (a non-negative integer)")
    seed_group.add_argument("--seeds", help="several seeds in one resumable command: 0,1,2 or 0-4 (default: the one --seed)")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="override a resolved config value by dotted path, e.g. method.epochs=2 or "
                          "log.backends=[tensorboard,wandb,mlflow] (experiment tracking)")
    run.add_argument("--only", action="append", default=[], metavar="TASK",
                     help="run only this task instance of the suite (repeatable; the method's stages still run; "
                          "default: every task of the suite)")
    run.add_argument("--skip", action="append", default=[], metavar="TASK",
                     help="leave this task instance of the suite out (repeatable)")
    run.add_argument("--data-root", help="root of the real datasets (default: the synthetic benchmark)")
    run.add_argument("--out", default="runs", help="output folder (units and records)")
    run.add_argument("--launcher", choices=["local", "torchrun", "slurm"], default="local",
                     help="local: a subprocess per unit; torchrun: a DDP job per unit on this node; "
                     "slurm: one submitit job per unit with dependencies")
    run.add_argument("--nproc-per-node", type=_positive, default=1, help="processes per unit under torchrun")
    slurm = run.add_argument_group("slurm")
    slurm.add_argument("--partition", help="SLURM partition (default: the cluster's default)")
    slurm.add_argument("--nodes", type=_positive, default=1, help="nodes of each pretraining stage's job")
    slurm.add_argument("--gpus-per-node", type=_count, default=8, help="GPUs (and processes) per node of each job")
    slurm.add_argument("--cpus-per-task", type=_positive, default=10, help="CPU cores per process (DataLoader workers)")
    slurm.add_argument("--mem", help="memory per node, e.g. 256G (default: the cluster's default)")
    slurm.add_argument("--time", type=_positive, default=72 * 60, help="time limit per job in minutes")
    slurm.add_argument("--account", help="SLURM account to charge (default: yours)")
    slurm.add_argument("--slurm-cluster", choices=["slurm", "local"], default=None,
                       help="submitit executor (default: slurm when sbatch exists); local runs jobs here")
    run.add_argument("--dry-run", action="store_true",
                     help="print the plan and the unit keys and run the preflight checks; run nothing")
    run.add_argument("--fast-dev-run", nargs="?", const=str(2), metavar="N",
                     help="run every unit for N steps (default 2) of its real configuration into OUT/dev-run and "
                     "print the measured cost and the projected time of the real run")
    run.add_argument("--dev-run-images", type=_positive, default=8, metavar="K",
                     help="images per split of a fast dev run's tasks and non-training stages (default 8)")
    run.set_defaults(func=_cmd_run)

    st = sub.add_parser("status", help="state, job id, progress and last log line of each unit")
    st.add_argument("--out", default="runs", help="the output folder of the run")
    st.set_defaults(func=_cmd_status)

    ls = sub.add_parser("list", help="list methods, tasks, suites or presets")
    ls.add_argument("what", choices=["methods", "tasks", "suites", "presets"], help="what to list")
    ls.set_defaults(func=_cmd_list)

    data = sub.add_parser("data", help="datasets: synthetic benchmark, verification")
    dsub = data.add_subparsers(dest="data_command", required=True)
    synth = dsub.add_parser("synth", help="write the synthetic benchmark (official layouts) into a folder")
    synth.add_argument("--out", required=True, help="the data root to write the datasets into")
    synth.add_argument("--seed", type=_seed, default=0, help="seed of the generated scenes")
    synth.add_argument("--size", default="default", choices=["tiny", "default"], help="images per split")
    synth.set_defaults(func=_cmd_data_synth)
    ver = dsub.add_parser("verify", help="check the datasets under a data root")
    ver.add_argument("--data-root", required=True, help="the folder holding the datasets in their official layouts")
    ver.add_argument("--dataset", help="check only this dataset (default: every dataset found under the root)")
    ver.add_argument("--sample", type=_positive, default=8, help="images decoded per dataset")
    ver.add_argument("--strict-counts", action="store_true",
                     help="fail when a count differs from the official release (not only report it)")
    ver.add_argument("--suite", help="check exactly what this suite's units read (can this run start here?)")
    ver.add_argument("--preset", default="tiny", help="with --suite: the preset whose tasks are checked")
    ver.add_argument("--method", help="with --suite: also the method's pretraining images")
    ver.add_argument("--recipe", help="with --method: the recipe (default: the preset's)")
    ver.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="with --suite: a config override, as for `harness run`")
    ver.set_defaults(func=_cmd_data_verify)

    tab = sub.add_parser("tables", help="collate result records into leaderboards")
    tab.add_argument("--records", action="append", default=[], help=RECORDS_HELP)
    tab.add_argument("--suite", help="only this suite's tasks (default: every task the records hold)")
    tab.add_argument("--format", choices=["md", "csv", "tex", "html"], help="only this format (default all)")
    tab.add_argument("--out", help="write the files here (default: print a summary of the leaderboards)")
    tab.add_argument("--check", action="store_true", help="fail when the files in --out (default results/) "
                     "are stale against the records")
    _duplicates_option(tab)
    tab.set_defaults(func=_cmd_tables)

    chk = sub.add_parser("check", help="run (or read) a method's records and check them against its baseline "
                         "and each pretraining stage's signature against its untrained value")
    chk.add_argument("--baseline", required=True, help="baseline YAML, e.g. results/baselines/mocov2-tiny.yaml")
    chk.add_argument("--suite", help="the suite to run, and the tasks to check (default with --records: the "
                     "tasks the records hold)")
    chk.add_argument("--seed", type=_seed, default=0, help="seed of the run (default 0)")
    chk.add_argument("--records", help="read records from here (a records folder or a run's output folder) instead "
                     "of running (default: run the suite)")
    chk.add_argument("--out", default="runs/check", help="output folder when running (default runs/check)")
    chk.set_defaults(func=_cmd_check)

    bas = sub.add_parser("baselines", help="derive results/baselines/<method>-<recipe>.yaml from seed records")
    bas.add_argument("--records", action="append", default=[], help="curated records (repeatable; "
                     "default results/records)")
    bas.add_argument("--cross-cpu", action="append", default=[], help="records of the same units run on another "
                     "CPU (repeatable; default results/cross-cpu): their same-seed differences widen the bands")
    bas.add_argument("--out", help="folder of the baseline files (default results/baselines)")
    bas.add_argument("--check", action="store_true", help="fail when the files are stale against the records")
    bas.set_defaults(func=_cmd_baselines)

    cmp_ = sub.add_parser("compare", help="B - A per metric with a paired-bootstrap 95 %% CI and p-value")
    cmp_.add_argument("row_a", metavar="A", help="METHOD or METHOD:RECIPE (the recipe label of the records)")
    cmp_.add_argument("row_b", metavar="B", help="METHOD or METHOD:RECIPE")
    cmp_.add_argument("--records", action="append", default=[], help=RECORDS_HELP)
    _duplicates_option(cmp_)
    cmp_.set_defaults(func=_cmd_compare)

    clm = sub.add_parser("claims", help="check the published claims (benchmarks/claims/*.yaml) on records")
    clm.add_argument("--records", action="append", default=[], help=RECORDS_HELP)
    clm.add_argument("--file", action="append", default=[], help="a claims file (repeatable; default all)")
    _duplicates_option(clm)
    clm.set_defaults(func=_cmd_claims)

    oim = dsub.add_parser("openimage-mini", help="build OpenImage-MINI from Open Images annotations (resumable)")
    oim.add_argument("--oi-root", required=True, help="the Open Images folder (CSVs, <split>/<ImageID>.jpg, masks/)")
    oim.add_argument("--out", required=True, help="the folder to build OpenImage-MINI in")
    oim.add_argument("--spec", help="spec file (default benchmarks/openimage_mini/spec.yaml)")
    oim.add_argument("--tiny", action="store_true", help="use spec-tiny.yaml (the synthetic Open-Images-style files)")
    oim.add_argument("--workers", type=_positive, help="image processes (default: all cores)")
    oim.set_defaults(func=_cmd_data_oim)

    conv = sub.add_parser("convert", help="import a public SSL checkpoint as a torchvision backbone file")
    conv.add_argument("src", help="the public checkpoint (MoCo, OpenSelfSup/mmselfsup, BYOL, Lightning, torchvision)")
    conv.add_argument("dst", help="the backbone file to write (.pth), or a folder for backbone.pth")
    conv.add_argument("--arch", help="resnet18 / resnet50 (default: inferred)")
    conv.set_defaults(func=_cmd_convert)
    for parser in _all_parsers(p):
        parser.formatter_class = _HelpWithDefaults
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except HarnessError as exc:
        print(f"harness: error: {exc}", file=sys.stderr)
        return EXIT_DATA if isinstance(exc, (DataError, CheckpointError)) else EXIT_USAGE
    except KeyboardInterrupt:
        print("harness: interrupted; run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
