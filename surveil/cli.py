"""Command line: `surveil run | check-config | shards | analyse | snapshot | bench | version | train | eval | export`."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from surveil import __version__
from surveil.config import ConfigError, load_config
from surveil.redact import quiet_native_logs, redact

EXIT_USAGE = 2


def _cmd_run(args: argparse.Namespace) -> int:
    quiet_native_logs()  # before cv2 is imported: OpenCV/FFmpeg's own stderr lines bypass log redaction
    from surveil.service.daemon import run_daemon
    from surveil.service.pipeline import PipelineError
    from surveil.service.startup import StartupError

    _warn_first_run_problems(args.config, args.log_level)
    try:
        return run_daemon(args.config, args.log_level, shard=args.shard)
    except (ConfigError, PipelineError, StartupError) as exc:  # the user's input or machine, never a traceback: exit 2
        print(f"surveil: {redact(str(exc))}", file=sys.stderr)
        return EXIT_USAGE


def _warn_first_run_problems(path: str, log_level: str | None) -> None:
    """What check-config would report beyond the schema (e.g. a rule's class the model lacks: the rule
    would never alert), logged as warnings in the daemon's log format: the daemon still starts, and
    fails by itself where it must."""
    from surveil.config.first_run import first_run_problems
    from surveil.config.loader import load_config_tree
    from surveil.service.logsetup import configure_logging

    try:
        config, tree = load_config_tree(path)
    except ConfigError:
        return  # run_daemon reports it
    problems = first_run_problems(config, tree)
    if problems:
        configure_logging(log_level or config.logging.level, config.logging.format)  # as run_daemon will
    for problem in problems:
        logging.getLogger("surveil.config").warning("%s: %s (surveil check-config says the same)", path, problem)


def _cmd_check_config(args: argparse.Namespace) -> int:
    from surveil.config.first_run import first_run_problems
    from surveil.config.loader import load_config_tree

    files = [*args.file, *args.config]
    if not files:
        print("surveil: check-config needs a config file: surveil check-config FILE [FILE ...]", file=sys.stderr)
        return EXIT_USAGE
    status = 0
    for file in files:
        try:
            config, tree = load_config_tree(file)
        except ConfigError as exc:
            print(f"surveil: {redact(str(exc))}", file=sys.stderr)
            status = EXIT_USAGE
            continue
        problems = first_run_problems(config, tree, _checkpoint_labels)
        if problems:
            print(
                f"surveil: {file}: would not start or would never alert ({len(problems)} problem(s)):", file=sys.stderr
            )
            print(redact("\n".join(f"  {p}" for p in problems)), file=sys.stderr)
            status = EXIT_USAGE
            continue
        zones = sum(len(c.zones) for c in config.cameras)
        print(f"{file}: OK ({len(config.cameras)} camera(s), {len(config.enabled_cameras)} enabled, {zones} zone(s))")
    return status


def _checkpoint_labels(weights: str) -> list[str] | None:
    """A checkpoint's class names when PyTorch can read it here (check-config's fallback when no graph sidecar ships)."""
    try:
        from surveil.detection.checkpoints import read_checkpoint
    except ImportError:  # a torch-free runtime install
        return None
    try:
        return list(read_checkpoint(weights)["labels"])
    except Exception:  # check-config reports what it can; `surveil run` names an unreadable checkpoint
        return None


def _cmd_shards(args: argparse.Namespace) -> int:
    """Which instance runs which enabled camera, for ``--instances`` daemons (default: the config's ``sharding.instances``)."""
    from surveil.service.sharding import MAX_INSTANCES, assign

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"surveil: {redact(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    instances = config.sharding.instances if args.instances is None else args.instances
    pins = config.sharding.pin
    beyond = sorted(name for name, index in pins.items() if index >= instances)
    if not 1 <= instances <= MAX_INSTANCES or beyond:
        why = (
            f"pinned beyond index {instances - 1}: {', '.join(beyond)}"
            if beyond
            else f"--instances must be 1-{MAX_INSTANCES}"
        )
        print(f"surveil: {why}", file=sys.stderr)
        return EXIT_USAGE
    names = [c.name for c in config.cameras if c.enabled]
    for index, cameras in assign(names, instances, pins).items():
        shown = ", ".join(f"{name} (pinned)" if name in pins else name for name in cameras)
        print(f"{index}/{instances}: {len(cameras)} camera(s): {shown}")
    return 0


def _cmd_version(_args: argparse.Namespace) -> int:
    print(f"surveil {__version__}")
    return 0


# name, help, module, argument adder, entry point; the modules import torch, so they are
# imported only when their command is the one being run (check-config stays fast).
TRAINING_COMMANDS = [
    (
        "train",
        "fine-tune a detector on labelled images (COCO, Pascal VOC, YOLO txt)",
        "surveil.training.train",
        "add_arguments",
        "main",
    ),
    (
        "eval",
        "score a checkpoint: COCO mAP, AP50, per-class precision/recall/F1",
        "surveil.evaluation.cli",
        "add_eval_arguments",
        "eval_main",
    ),
    (
        "export",
        "export a checkpoint to ONNX or TorchScript",
        "surveil.evaluation.cli",
        "add_export_arguments",
        "export_main",
    ),
]


def _add_training_commands(sub: argparse._SubParsersAction, requested: str | None) -> None:
    for name, help_text, module_name, adder, entry in TRAINING_COMMANDS:
        parser = sub.add_parser(name, help=help_text)
        if name == requested:
            module = importlib.import_module(module_name)
            getattr(module, adder)(parser)
            parser.set_defaults(func=getattr(module, entry))


# Like the training commands, imported only when run; they open video (OpenCV), so its own
# stderr is quieted first (it would print camera URLs with their passwords).
TOOL_COMMANDS = [
    (
        "analyse",
        "analyse recorded video files frame by frame: alerts as JSON lines and a summary",
        "surveil.tools.analyse",
    ),
    (
        "snapshot",
        "write one frame of a camera with its zones, lines and a coordinate grid drawn",
        "surveil.tools.snapshot",
    ),
    (
        "bench",
        "benchmark: N file cameras through the real pipeline beside the bare model and a naive loop",
        "surveil.tools.bench",
    ),
]


def _add_tool_commands(sub: argparse._SubParsersAction, requested: str | None) -> None:
    for name, help_text, module_name in TOOL_COMMANDS:
        parser = sub.add_parser(name, help=help_text)
        if name == requested:
            quiet_native_logs()
            module = importlib.import_module(module_name)
            module.add_arguments(parser)
            parser.set_defaults(func=module.main)


def _requested_command(argv: list[str] | None) -> str | None:
    args = sys.argv[1:] if argv is None else argv
    return next((a for a in args if not a.startswith("-")), None)


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="surveil", description="Real-time multi-camera surveillance detection.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="run the daemon")
    p.add_argument("-c", "--config", required=True, help="YAML config file")
    p.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="override logging.level")
    p.add_argument(
        "--shard",
        metavar="INDEX/INSTANCES",
        help="run only this shard's cameras, e.g. 0/3 (overrides SURVEIL_SHARD and sharding)",
    )
    p.set_defaults(func=_cmd_run)
    p = sub.add_parser("check-config", help="validate config files and exit (0 = all valid, 2 = one or more invalid)")
    p.add_argument("file", nargs="*", help="YAML config files")
    # `-c` as in `surveil run -c`: people type the run command's form, and it should not be an error.
    p.add_argument("-c", "--config", action="append", default=[], help="a config file (repeatable), as for `run`")
    p.set_defaults(func=_cmd_check_config)
    _add_tool_commands(sub, _requested_command(argv))
    p = sub.add_parser("shards", help="print which instance of a fleet runs which camera (rendezvous hashing, pins)")
    p.add_argument("-c", "--config", required=True, help="YAML config file")
    p.add_argument("--instances", type=int, help="number of daemons (default: sharding.instances)")
    p.set_defaults(func=_cmd_shards)
    p = sub.add_parser("version", help="print the version")
    p.set_defaults(func=_cmd_version)
    _add_training_commands(sub, _requested_command(argv))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser(argv).parse_args(argv)
    if args.command not in ("run",):
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return int(args.func(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
