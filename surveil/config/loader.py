"""Loading a config file: hardened YAML reading, ${VAR} substitution, line-numbered errors."""

from __future__ import annotations

import difflib
import logging
import os
import re
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import yaml
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from surveil.config.inputs import InputPathError, open_regular_file
from surveil.config.placeholders import placeholder_options
from surveil.config.schema import Config
from surveil.redact import redact, secret_value, url_secrets
from surveil.redact import remember as redact_remember


class ConfigError(Exception):
    """A configuration file that cannot be used; the message is meant for a person."""


# ---------------------------------------------------------------- loading
#
# Every input, however hostile, ends in a Config or a ConfigError, within a bounded time:
# bytes (size cap) -> text (strict UTF-8) -> YAML events (node and depth budget, counted
# before anything is built) -> node graph (alias expansion budget) -> ${VAR} substitution into
# scalar values -> Python data -> pydantic. Anything else that escapes is a bug, and still a
# ConfigError (exit 2), never a traceback.

MAX_CONFIG_BYTES = 1_000_000
MAX_YAML_NODES = 50_000  # after alias expansion; a 64-camera site with 20 zones each needs ~40,000
MAX_YAML_DEPTH = 32  # the schema itself is 8 deep
MAX_ERRORS_SHOWN = 20

_ENV_PATTERN = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_STR_TAG = "tag:yaml.org,2002:str"
_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_NODE_EVENTS = (yaml.ScalarEvent, yaml.SequenceStartEvent, yaml.MappingStartEvent, yaml.AliasEvent)
# Option names whose rejected value is never echoed back (it may be a secret).
_SECRET_FIELDS = re.compile(
    r"(?i)(url|uri|dsn|host|hostname|broker|password|passwd|pass|secret|token|key|auth|credentials?|username|user)$"
)
# A value that looks like it carries credentials (a URL, ``user:pw@host``) is never echoed, whatever the option.
_SECRET_LOOKING = re.compile(r"(?i)(://|@|\b(pass(word)?|pwd|token|secret|key|auth)\s*[=:])")
_USERINFO = re.compile(r"[^\s'\"/@]*:[^\s'\"/@]*@")
_NO_TYPE = FieldInfo(annotation=None)


def substitute_env(value: str, environ: Mapping[str, str] | None = None, line: int | None = None) -> str:
    """Replace ``${VAR}`` and ``${VAR:-default}`` in one scalar value; an unset VAR without default is an error.

    The result is not scanned again, and it is a value, not YAML: whatever a variable holds
    (``#``, ``null``, newlines, ``key: value``) arrives verbatim in the option it was written in.
    """
    env = os.environ if environ is None else environ

    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        where = f"line {line}: " if line else ""
        raise ConfigError(
            f"{where}environment variable ${{{name}}} is not set (write ${{{name}:-default}} to give a default)"
        )

    return _ENV_PATTERN.sub(replace, value)


def load_config(path: str | Path, environ: dict[str, str] | None = None) -> Config:
    """Read, parse, substitute and validate a config file; relative paths become absolute.

    Raises ConfigError with a message naming the file, the YAML line, the field and what was
    expected, for every input (see the budgets above), and for a secret left at an example's
    placeholder (surveil.config.placeholders); the secrets of a valid config are handed to
    :mod:`surveil.redact`.
    """
    return load_config_tree(path, environ)[0]


def load_config_tree(path: str | Path, environ: Mapping[str, str] | None = None) -> tuple[Config, yaml.Node]:
    """:func:`load_config`, and the YAML node tree it came from (for line numbers: :func:`line_of`)."""
    path = Path(path)
    env = os.environ if environ is None else environ
    try:
        text = _read_text(path)
        root = _compose_bounded(text)
        if root is None or not isinstance(root, yaml.MappingNode):
            raise ConfigError("the file must be a YAML mapping with at least a `cameras:` list")
        _substitute_nodes(root, env)
        data = _construct(root)
        config = Config.model_validate(data)
        config = resolve_paths(config, path.resolve().parent, env.get("STATE_DIRECTORY"))
        _refuse_placeholders(config, root)
    except ConfigError as exc:
        raise ConfigError(f"{path}{'' if str(exc).startswith(':') else ': '}{exc}") from None
    except ValidationError as exc:
        raise ConfigError(format_validation_error(path, exc, root)) from None
    except (RecursionError, MemoryError):
        raise ConfigError(f"{path}: too deeply nested or too large to validate") from None
    except Exception as exc:  # a bug, but still a message and exit 2, not a traceback
        logging.getLogger(__name__).debug("unexpected error validating %s", path, exc_info=True)
        raise ConfigError(
            f"{path}: cannot be validated ({type(exc).__name__}: {redact(str(exc))[:200]}); please report this"
        ) from None
    redact_remember(config_secrets(config))
    return config, root


def _refuse_placeholders(config: Config, root: yaml.Node) -> None:
    found = placeholder_options(config)
    if found:
        where = "\n".join(f"  line {_line_of(root, loc)}: {_dotted(loc)}" for loc in found)
        raise ConfigError(
            f"still the example's placeholder secret (surveil.config.placeholders), refused:\n{where}\n"
            "  set real ones: the ${VAR}s these options name come from the environment "
            "(/etc/surveil/surveil.env, the Secret surveil-credentials)"
        )


def line_of(root: yaml.Node, loc: tuple[str | int, ...]) -> int | None:
    """1-based line of the option at ``loc`` (``("cameras", 0, "url")``) in a tree from :func:`load_config_tree`."""
    return _line_of(root, loc)


def _read_text(path: Path) -> str:
    try:
        with open_regular_file(path, "config file") as handle:  # never blocks: a FIFO or device is refused
            raw = handle.read(MAX_CONFIG_BYTES + 1)
    except InputPathError as exc:
        raise ConfigError(exc.reason) from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file: {exc.strerror or exc}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"config file is larger than {MAX_CONFIG_BYTES:,} bytes; is this the right file?")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ConfigError(
            f"line {line}, column {column}: not UTF-8 text (byte 0x{raw[exc.start]:02x}); save the file as UTF-8"
        ) from None


def _compose_bounded(text: str) -> yaml.Node | None:
    """The YAML node graph, after checking the node count and nesting on the event stream (cheap, in C)."""
    try:
        has_aliases = _check_event_budget(text)
        loader = _SafeLoader(text)
        try:
            root = loader.get_single_node()
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{where}not valid YAML: {problem}") from None
    if root is not None and has_aliases:  # without aliases the expanded size is the event count, checked
        _check_expanded_size(root)
    return root


def _check_event_budget(text: str) -> bool:
    """Count values and nesting on the event stream; returns whether the document uses aliases."""
    loader = _SafeLoader(text)
    nodes = depth = 0
    aliases = False
    try:
        while loader.check_event():
            event = loader.get_event()
            aliases = aliases or isinstance(event, yaml.AliasEvent)
            if isinstance(event, _NODE_EVENTS):
                nodes += 1
                if nodes > MAX_YAML_NODES:
                    raise ConfigError(
                        f"line {_line_number(event.start_mark)}: more than {MAX_YAML_NODES:,} YAML values; is this the right file?"
                    )
            if isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
                depth += 1
                if depth > MAX_YAML_DEPTH:
                    raise ConfigError(
                        f"line {_line_number(event.start_mark)}: nested more than {MAX_YAML_DEPTH} levels deep"
                    )
            elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
                depth -= 1
    finally:
        loader.dispose()
    return aliases


class _Mark(Protocol):
    line: int


def _line_number(mark: _Mark | None) -> int | str:
    """1-based line of a YAML event's start mark."""
    return mark.line + 1 if mark is not None else "?"


def _check_expanded_size(root: yaml.Node) -> None:
    """Aliases share nodes; count what they expand to, and how deep (memoised, so a 'billion laughs'
    costs its file size). Anchors are defined before use, so the walk meets each definition first."""
    measured: dict[int, tuple[int, int]] = {}  # node -> (values, depth) once expanded
    in_progress: set[int] = set()

    def measure(node: yaml.Node) -> tuple[int, int]:
        known = measured.get(id(node))
        if known is not None:
            return known
        if id(node) in in_progress:
            raise ConfigError(f"line {node.start_mark.line + 1}: an alias refers to the value that contains it")
        in_progress.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            children = [measure(child) for child in node.value]
        elif isinstance(node, yaml.MappingNode):
            children = [measure(part) for pair in node.value for part in pair]
        else:
            children = []
        in_progress.discard(id(node))
        total = 1 + sum(size for size, _ in children)
        depth = 1 + max((d for _, d in children), default=0)
        if total > MAX_YAML_NODES:
            raise ConfigError(
                f"line {node.start_mark.line + 1}: expands (through aliases) to more than {MAX_YAML_NODES:,} YAML values"
            )
        if depth > MAX_YAML_DEPTH:
            raise ConfigError(f"line {node.start_mark.line + 1}: aliases nest more than {MAX_YAML_DEPTH} levels deep")
        measured[id(node)] = (total, depth)
        return total, depth

    measure(root)


def _substitute_nodes(root: yaml.Node, environ: Mapping[str, str]) -> None:
    """``${VAR}`` into string scalar values (not keys, not comments: those never reach here)."""
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.ScalarNode):
            if node.tag == _STR_TAG and "${" in node.value:
                node.value = substitute_env(node.value, environ, node.start_mark.line + 1)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
        elif isinstance(node, yaml.MappingNode):
            stack.extend(value for _key, value in node.value)


def _construct(root: yaml.Node) -> Any:
    loader = _SafeLoader("")
    try:
        return loader.construct_document(root)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark else ""
        raise ConfigError(f"{where}not valid YAML: {getattr(exc, 'problem', None) or exc}") from None
    except ValueError as exc:  # e.g. an integer of more than 4,300 digits
        raise ConfigError(f"a value cannot be read: {str(exc).split(';')[0]}") from None
    finally:
        loader.dispose()


def config_secrets(config: Config) -> list[str]:
    """Every secret value in a config: camera URL passwords and secret query values, the MQTT password."""
    found: list[str | None] = []
    for camera in config.cameras:
        found += url_secrets(camera.url)
    for name in type(config).model_fields:  # every SecretStr of every section: mqtt.password, web.password, ...
        section = getattr(config, name)
        if isinstance(section, BaseModel):
            fields = type(section).model_fields.items()
            found += [secret_value(getattr(section, f)) for f, info in fields if "SecretStr" in str(info.annotation)]
    return [s for s in found if s]


def format_validation_error(path: Path, exc: ValidationError, root: yaml.Node | None) -> str:
    errors = exc.errors(include_url=False)
    lines = [f"{path}: invalid configuration ({len(errors)} problem{'s' if len(errors) > 1 else ''}):"]
    for error in errors[:MAX_ERRORS_SHOWN]:
        loc = _rule_loc(root, tuple(error["loc"]), error["msg"])
        field = _dotted(loc) or "(top level)"
        line = _line_of(root, loc)
        where = f"line {line}: " if line else ""
        message = error["msg"].removeprefix("Value error, ")  # pydantic's prefix for a validator's ValueError
        if error["type"] == "extra_forbidden":
            hint = _did_you_mean(str(loc[-1]), _options_at(loc[:-1]))
            message = f"unknown option{hint or ' (check the spelling; see docs/config.md for the options)'}"
        elif error["type"] == "union_tag_invalid":
            got_tag = str(error.get("ctx", {}).get("tag", ""))
            tags = [t.strip(" '") for t in str(error.get("ctx", {}).get("expected_tags", "")).split(",")]
            message = f"unknown type {got_tag!r}{_did_you_mean(got_tag, tags)}; the types: {', '.join(tags)}"
        elif error["type"] == "missing":
            message = "required option is missing"
        got = error.get("input")
        hidden = _may_be_secret(field, got)
        if hidden:
            message = _USERINFO.sub("***@", message.replace(str(got), "***") if got not in (None, "") else message)
        elif error["type"] not in ("missing", "extra_forbidden") and not isinstance(got, (dict, list)):
            shown = repr(got)
            message += f" (got {shown[:60] + '...' if len(shown) > 60 else shown})"
        lines.append(redact(f"  {where}{field}: {message}"))
    if len(errors) > MAX_ERRORS_SHOWN:
        lines.append(f"  ... and {len(errors) - MAX_ERRORS_SHOWN} more")
    return "\n".join(lines)


_RULE_MESSAGE = re.compile(r"\brule (\S+): no (zone|line) named ")


def _rule_loc(root: yaml.Node | None, loc: tuple[Any, ...], message: str) -> tuple[Any, ...]:
    """A camera-level error about one of its rules (an unknown zone or line) belongs at that rule's
    ``zone:``/``line:`` option: ``("cameras", 0)`` becomes ``("cameras", 0, "rules", 2, "zone")``."""
    match = _RULE_MESSAGE.search(message)
    if not (match and len(loc) == 2 and loc[0] == "cameras" and isinstance(loc[1], int) and root is not None):
        return loc
    rules = _node_at(root, (*loc, "rules"))
    if not isinstance(rules, yaml.SequenceNode):
        return loc
    for index, rule in enumerate(rules.value):
        if isinstance(rule, yaml.MappingNode) and any(
            k.value == "id" and getattr(v, "value", None) == match.group(1) for k, v in rule.value
        ):
            return (*loc, "rules", index, match.group(2))
    return loc


def _node_at(node: yaml.Node, loc: tuple[Any, ...]) -> yaml.Node | None:
    for part in loc:
        if isinstance(node, yaml.MappingNode) and isinstance(part, str):
            found = next((v for k, v in node.value if k.value == part), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            found = node.value[part]
        else:
            found = None
        if found is None:
            return None
        node = found
    return node


def _did_you_mean(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models an annotation can hold (through Optional, unions, lists, dicts, Annotated)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    args = [a for a in typing.get_args(annotation) if a is not Ellipsis]
    if typing.get_origin(annotation) is dict:
        args = args[1:]
    return [model for arg in args for model in _models_in(arg)]


def _options_at(loc: tuple[Any, ...]) -> list[str]:
    """The option names of the section at ``loc`` (``("cameras", 0, "rules", 1, "loitering")``); [] if unknown."""
    models: list[type[BaseModel]] = [Config]
    for part in loc:
        if isinstance(part, int):
            continue  # a list index: the models are already the items'
        by_tag = [m for m in models if part in typing.get_args(m.model_fields.get("type", _NO_TYPE).annotation)]
        if by_tag:  # a tagged union's member (pydantic puts the tag in the location)
            models = by_tag
            continue
        models = [
            m for model in models if part in model.model_fields for m in _models_in(model.model_fields[part].annotation)
        ]
        if not models:
            return []
    return sorted({name for model in models for name in model.model_fields})


def _may_be_secret(field: str, value: object) -> bool:
    """Whether a rejected value must not be echoed: the option's name says secret (url, host,
    password, token, ...), or the value looks like a URL or credentials (in any option)."""
    if _SECRET_FIELDS.search(field.rstrip("]").rsplit("[", 1)[0] if field.endswith("]") else field):
        return True
    if isinstance(value, (dict, list)):
        return False
    return isinstance(value, str) and bool(_SECRET_LOOKING.search(value))


def _dotted(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, str) and not part.startswith("function-after") and "[" not in part:
            out += ("." if out else "") + part
    return out


def _line_of(node: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """1-based line of the YAML node at ``loc``, or of its nearest existing parent."""
    if node is None:
        return None
    line = node.start_mark.line + 1
    for part in loc:
        child = None
        if isinstance(node, yaml.MappingNode) and isinstance(part, str):
            for key, value in node.value:
                if key.value == part:
                    child = value if not isinstance(value, yaml.ScalarNode) or value.value != "" else key
                    line = key.start_mark.line + 1
                    break
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            child = node.value[part]
        if child is None:
            if isinstance(part, str) and ("function" in part or "[" in part):
                continue  # pydantic's validator/union labels are not YAML keys
            break
        node = child
        line = node.start_mark.line + 1
    return line


def _resolve(base: Path, value: str) -> str:
    p = Path(os.path.expanduser(value))
    return str(p if p.is_absolute() else (base / p).resolve())


def resolve_paths(config: Config, base: Path, systemd_state_dir: str | None = None) -> Config:
    """Make paths absolute: inputs against the config file's folder, outputs against the state folder."""
    if config.state_dir:
        state = Path(_resolve(base, config.state_dir))
    elif systemd_state_dir:
        state = Path(systemd_state_dir.split(":")[0])  # systemd lists several folders with ':'
    else:
        state = base
    cameras = [
        c.model_copy(update={"url": _resolve(base, str(c.url))}) if c.kind == "file" else c for c in config.cameras
    ]
    detector = config.detector
    if detector.weights != "coco":
        detector = detector.model_copy(update={"weights": _resolve(base, detector.weights)})
    mqtt = config.mqtt.model_copy(
        update={
            "spool_path": _resolve(state, config.mqtt.spool_path),
            **{
                k: _resolve(base, v)
                for k in ("ca_file", "cert_file", "key_file")
                if (v := getattr(config.mqtt, k)) is not None
            },
        }
    )
    alerts = config.alerts
    if alerts.jsonl_path:
        alerts = alerts.model_copy(update={"jsonl_path": _resolve(state, alerts.jsonl_path)})
    return config.model_copy(
        update={"cameras": cameras, "detector": detector, "mqtt": mqtt, "alerts": alerts, "state_dir": str(state)}
    )
