"""Configuration: one TOML file -> frozen dataclasses, with ``--set section.key=value`` overrides.

Every field has a default and a ``help`` text (shown by ``recagent config show``). Unknown
sections or keys are errors with a did-you-mean, never silently ignored. Each area of the code
owns its section (``recagent/retrieval/config.py`` etc.); this module assembles them.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from recagent.errors import ConfigError
from recagent.paths import atomic_write_text, default_cache_dir, default_runs_dir


@dataclass(frozen=True)
class Rule:
    """What a config value may be besides its type; every part is optional.

    Numbers: ``min``/``max`` (inclusive), ``gt``/``lt`` (exclusive); floats must be finite.
    ``choices``: the allowed values. Lists: ``items`` (a ``Rule`` whose ``type`` is each value's
    type) and ``length`` (exact, or a ``(min, max)`` pair with ``None`` for no limit).
    ``check``: a function returning what is wrong with a value (one phrase ending with the
    fix), or None. ``unbounded``: why a numeric field needs no range (tests ask every numeric
    field for a range or a reason).
    """

    type: type | None = None
    min: float | None = None
    max: float | None = None
    gt: float | None = None
    lt: float | None = None
    choices: tuple | None = None
    items: "Rule | None" = None
    length: int | tuple | None = None
    check: Callable[[Any], str | None] | None = None
    unbounded: str = ""

    def constrains(self) -> bool:
        """True when the rule limits a number's range (or a list's numbers), or says why not."""
        bounds = (self.min, self.max, self.gt, self.lt, self.choices, self.check)
        return any(b is not None for b in bounds) or bool(self.unbounded) or bool(self.items and self.items.constrains())

    def describe(self) -> str:
        """The declared limits in a few words (``config show`` prints them after the help)."""
        bounds = [f"{word} {b:g}" for b, word in ((self.min, ">="), (self.gt, ">"), (self.max, "<="), (self.lt, "<"))
                  if b is not None]
        parts = [" and ".join(bounds)] if bounds else []
        if self.choices is not None:
            parts.append("one of " + ", ".join(map(str, self.choices)))
        if self.length is not None:
            lo, hi = (self.length, self.length) if isinstance(self.length, int) else self.length
            parts.append(f"{lo} values" if lo == hi else (f"at least {lo} value{'s' if lo != 1 else ''}" if hi is None
                                                          else f"{lo} to {hi} values"))
        if self.items is not None and self.items.describe():
            parts.append("each " + self.items.describe())
        return ", ".join(parts)

    def problem(self, value: Any) -> str | None:
        """What is wrong with an already type-coerced ``value`` (a phrase), or None."""
        if isinstance(value, float) and not math.isfinite(value):
            return f"must be a finite number, got {value}"
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            for bound, bad, word in ((self.min, lambda b: value < b, ">="), (self.max, lambda b: value > b, "<="),
                                     (self.gt, lambda b: value <= b, ">"), (self.lt, lambda b: value >= b, "<")):
                if bound is not None and bad(bound):
                    return f"must be {word} {bound:g}, got {value:g}"
        if self.choices is not None and value not in self.choices:
            return (f"unknown value '{value}'.{_did_you_mean(str(value), [str(c) for c in self.choices])} "
                    f"Choices: {', '.join(map(str, self.choices))}")
        if isinstance(value, list):
            if self.length is not None:
                lo, hi = (self.length, self.length) if isinstance(self.length, int) else self.length
                if (lo is not None and len(value) < lo) or (hi is not None and len(value) > hi):
                    need = f"{lo}" if lo == hi else (f"at least {lo}" if hi is None else f"{lo} to {hi}")
                    return f"needs {need} value{'' if (hi or lo) == 1 else 's'}, got {len(value)}"
            if self.items is not None:
                for i, v in enumerate(value):
                    wrong = self.items.problem(v)
                    if wrong:
                        return f"item {i + 1} {wrong}"
        return self.check(value) if self.check is not None else None

    def coerce_item(self, value: Any) -> Any:
        """A list item converted to ``type`` (int -> float), or ``_WRONG_TYPE``."""
        t = self.type
        if t is None or (isinstance(value, t) and not isinstance(value, bool)):
            return value
        if t is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        return _WRONG_TYPE


_WRONG_TYPE = object()
_ARTICLE = {int: "an int", float: "a float", str: "a string", bool: "true or false"}


def opt(default: Any, help: str, *, min: float | None = None, max: float | None = None, gt: float | None = None,
        lt: float | None = None, choices: typing.Sequence | None = None, items: Rule | None = None,
        length: int | tuple | None = None, check: Callable[[Any], str | None] | None = None,
        unbounded: str = "") -> Any:
    """A config field with a default, the sentence that explains it, and what values it accepts.

    Args:
        default: the value when neither a file nor ``--set`` gives one.
        help: one sentence shown by ``recagent config show``.
        min, max, gt, lt, choices, items, length, check, unbounded: see ``Rule``; checked
            wherever a config is loaded (TOML file, ``--set``, ``Config.replace``).
    """
    rule = Rule(min=min, max=max, gt=gt, lt=lt, choices=tuple(choices) if choices is not None else None,
                items=items, length=length, check=check, unbounded=unbounded)
    meta = {"help": help, "rule": rule}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata=meta)
    return field(default=default, metadata=meta)


def rule_of(f: dataclasses.Field) -> Rule:
    """The ``Rule`` declared with ``opt`` (an empty one for plain fields)."""
    return f.metadata.get("rule") or Rule()


def check_split_ratios(ratios: list) -> str | None:
    """Protocol A's train/valid/test shares: train and test > 0, valid >= 0, summing to 1."""
    total = sum(ratios)
    if abs(total - 1.0) > 0.01:
        return f"the shares sum to {total:g}, not 1; give train, valid, test shares such as [0.8, 0.1, 0.1]"
    if ratios[0] <= 0 or ratios[2] <= 0:
        return "the train and test shares must be > 0 (valid may be 0), e.g. [0.8, 0.1, 0.1]"
    return None


def _check_encoding(name: str) -> str | None:
    import codecs

    try:
        codecs.lookup(name)
    except LookupError:
        return f"unknown encoding '{name}'; use e.g. utf-8, latin-1 or cp1252"
    return None


def _check_device(value: str) -> str | None:
    """'cpu' / 'auto' always; 'cuda[:N]' and 'mps' only where torch sees that device."""
    import re

    if value in ("cpu", "auto"):
        return None
    m = re.fullmatch(r"(cuda|mps)(?::(\d+))?", value)
    if m is None:
        guess = value.strip().lower().split(":")[0]
        hint = " Did you mean 'cuda'?" if guess == "gpu" else _did_you_mean(guess, ["cpu", "cuda", "mps", "auto"])
        return f"unknown device '{value}'.{hint} Use cpu, cuda, cuda:N, mps or auto"
    import torch  # only for a GPU device: a CPU config never pays for the import

    if m[1] == "mps":
        ok = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
        return None if ok else "'mps' but torch sees no Apple GPU on this machine; use cpu or auto"
    if not torch.cuda.is_available():
        return f"'{value}' but torch sees no CUDA GPU on this machine; use cpu or auto"
    n = torch.cuda.device_count()
    if m[2] is not None and int(m[2]) >= n:
        return f"'{value}' but this machine has {n} CUDA GPU{'s' if n != 1 else ''} (cuda:0 to cuda:{n - 1}); use one of those or auto"
    return None


@dataclass(frozen=True)
class PathsConfig:
    cache_dir: str = opt("", "models and data sets; empty = $RECAGENT_CACHE_DIR or ~/.cache/recagent")
    runs_dir: str = opt("", "indexes, checkpoints, reports; empty = $RECAGENT_RUNS_DIR or ./runs")
    run: str = opt("", "a run folder (recagent finetune --out, or --run) holding this data set's index and models; "
                       "empty = <runs_dir>/<data set>")

    @property
    def cache(self) -> Path:
        return Path(self.cache_dir).expanduser() if self.cache_dir else default_cache_dir()

    @property
    def runs(self) -> Path:
        return Path(self.runs_dir).expanduser() if self.runs_dir else default_runs_dir()


@dataclass(frozen=True)
class DataConfig:
    dataset: str = opt("ml-100k", "built-in data set name, or 'custom' to use the file paths below")
    items: str = opt("", "catalog file (CSV, TSV, Parquet, JSONL or RecBole .item) for a custom data set")
    interactions: str = opt("", "interaction log (CSV, TSV, Parquet, JSONL or RecBole .inter)")
    users: str = opt("", "optional user attributes file (user_id + any columns)")
    encoding: str = opt("utf-8", "text encoding of CSV/TSV/JSONL inputs, e.g. 'latin-1' for old MovieLens files",
                        check=_check_encoding)
    category_separator: str = opt("|", "separator of several categories in one CSV/TSV cell",
                                  check=lambda v: None if v else "must not be empty; use e.g. '|'")
    rating_min: float = opt(0.0, "smallest valid rating; smaller values are rejected",
                            unbounded="any scale; cross_check keeps it below rating_max")
    rating_max: float = opt(5.0, "largest valid rating; larger values are rejected",
                            unbounded="any scale; cross_check keeps it above rating_min")
    positive_threshold: float = opt(4.0, "ratings >= this count as positives in Protocol A (DESIGN.md)",
                                    unbounded="cross_check keeps it within [rating_min, rating_max]")
    split_ratios: list = opt([0.8, 0.1, 0.1], "train/valid/test ratios of the per-user random split (Protocol A)",
                             items=Rule(float, min=0.0, max=1.0), length=3, check=check_split_ratios)
    split_seed: int = opt(2020, "seed of the per-user random split (2020 = the peers' protocol)", min=0)
    item_noun: str = opt("", "what one item is called in replies ('book', 'recipe'); empty = the built-in data set's "
                             "own ('movie' for ml-100k), else the catalog file's name when it says ('books.csv': "
                             "'book'), else 'item'")
    category_noun: str = opt("", "what the catalog's categories are called ('genre', 'cuisine'); empty = the built-in "
                                 "data set's own, else 'category'")
    images_dir: str = opt("", "folder that relative image_path values resolve against (`finetune --images DIR`); "
                              "empty = the catalog file's folder")
    allow_outside_images: bool = opt(False, "accept image_path values outside the catalog's folder (off: such items "
                                            "are kept text-only with a warning; the chat server serves item images)")

    def cross_check(self) -> str | None:
        """Rules between keys, checked once every file and --set is applied."""
        if self.rating_min >= self.rating_max:
            return (f"data.rating_min ({self.rating_min:g}) must be below data.rating_max ({self.rating_max:g}); "
                    "set both, e.g. --set data.rating_min=1 --set data.rating_max=10.")
        if not self.rating_min <= self.positive_threshold <= self.rating_max:
            return (f"data.positive_threshold ({self.positive_threshold:g}) must be between data.rating_min and "
                    f"data.rating_max ({self.rating_min:g} to {self.rating_max:g}); set it on your scale, "
                    f"e.g. --set data.positive_threshold={self.rating_min + 0.75 * (self.rating_max - self.rating_min):g}.")
        return None


@dataclass(frozen=True)
class ModelsConfig:
    llm: str = opt("smollm2-135m-instruct", "LLM: a cached alias, a local directory, or a hub id (online users)")
    llm_adapter: str = opt("", "optional LoRA adapter directory (from `recagent finetune`)")
    llm_backend: str = opt("ct2", "local LLM runtime: 'ct2' (CTranslate2 int8, converted once at `models pull`; ~2-3x "
                                  "faster on CPU) or 'hf' (transformers float32, the reference)", choices=("ct2", "hf"))
    llm_endpoint: str = opt("", "OpenAI-compatible base URL (vLLM, Ollama, ...); when set, `llm` is the served model name")
    llm_api_key_env: str = opt("OPENAI_API_KEY", "environment variable holding the endpoint's API key, if it needs one")
    text_encoder: str = opt("all-minilm-l6-v2", "sentence-transformers model: cached alias, local directory or hub id")
    clip_model: str = opt("ViT-B-32", "open_clip architecture name")
    clip_checkpoint: str = opt("", "local open_clip checkpoint file; empty = no image channel unless clip_pretrained is set")
    clip_pretrained: str = opt("", "open_clip pretrained tag (needs internet), e.g. 'laion2b_s34b_b79k'")
    device: str = opt("cpu", "torch device: 'cpu', 'cuda', 'cuda:1', 'mps' or 'auto'", check=_check_device)
    threads: int = opt(0, "torch CPU threads; 0 = leave torch's default", min=0, max=1024)


def _sections() -> dict[str, type]:
    # Imported here so each area owns its own section without import cycles.
    from recagent.agent.config import AgentConfig
    from recagent.eval.config import EvalConfig
    from recagent.finetune.config import FinetuneConfig
    from recagent.ranking.config import RankingConfig
    from recagent.retrieval.config import RetrievalConfig
    from recagent.ui.config import UIConfig

    return {
        "paths": PathsConfig,
        "data": DataConfig,
        "models": ModelsConfig,
        "retrieval": RetrievalConfig,
        "ranking": RankingConfig,
        "eval": EvalConfig,
        "agent": AgentConfig,
        "ui": UIConfig,
        "finetune": FinetuneConfig,
    }


@dataclass(frozen=True)
class Config:
    """The whole resolved configuration; sections are attributes (``cfg.data.dataset``)."""

    sections: dict = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["sections"][name]
        except KeyError:
            raise AttributeError(name) from None

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return {name: dataclasses.asdict(sec) for name, sec in self.sections.items()}

    def replace(self, section: str, **changes: Any) -> "Config":
        """A copy with some fields of one section changed (validated like ``--set``)."""
        return _apply(self, {section: changes}, source="replace()")

    def to_toml(self, comments: bool = True) -> str:
        lines: list[str] = []
        for name, sec in self.sections.items():
            lines.append(f"[{name}]")
            for f in dataclasses.fields(sec):
                if comments and f.metadata.get("help"):
                    accepts = rule_of(f).describe()
                    lines.append(f"# {f.metadata['help']}" + (f" [{accepts}]" if accepts else ""))
                lines.append(f"{f.name} = {_toml_value(getattr(sec, f.name))}")
            lines.append("")
        return "\n".join(lines)

    def save(self, path: Path) -> Path:
        """Write the resolved config as TOML (a run writes it next to its outputs)."""
        atomic_write_text(Path(path), self.to_toml())
        return Path(path)


def default_config() -> Config:
    return Config({name: cls() for name, cls in _sections().items()})


def load_config(path: str | Path | None = None, overrides: typing.Sequence[str] = ()) -> Config:
    """Defaults <- TOML file <- ``section.key=value`` overrides, each validated.

    Args:
        path: a TOML file; ``None`` means defaults only.
        overrides: strings like ``"data.positive_threshold=3.5"``; values are parsed as TOML
            (so ``[0.7,0.2,0.1]`` is a list) and fall back to plain strings.
    """
    cfg = default_config()
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"{p}: config file not found; check the path given to --config.")
        try:
            raw = tomllib.loads(p.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{p}: not valid TOML ({exc}); fix the syntax or run `recagent config show` for a valid file.") from None
        cfg = _apply(cfg, raw, source=str(p), cross=False)
        touched = {name: str(p) for name in raw if isinstance(raw[name], dict)}
    else:
        touched = {}
    return apply_overrides(cfg, overrides, touched)


def apply_overrides(cfg: Config, overrides: typing.Sequence[str], touched: dict[str, str] | None = None) -> Config:
    """``cfg`` with ``section.key=value`` overrides applied and checked (as ``--set`` does)."""
    touched = dict(touched or {})
    for item in overrides:
        key, sep, value = item.partition("=")
        section, dot, name = key.strip().partition(".")
        if not sep or not dot or not name:
            raise ConfigError(f"--set {item!r}: expected section.key=value, e.g. --set data.positive_threshold=3.5.")
        cfg = _apply(cfg, {section: {name: _parse_value(value.strip())}}, source=f"--set {item}", cross=False)
        touched[section] = f"--set {item}"
    for section, source in touched.items():
        _cross_check(cfg.sections[section], source)
    return cfg


def _parse_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _did_you_mean(name: str, options: typing.Iterable[str]) -> str:
    match = difflib.get_close_matches(name, list(options), n=1, cutoff=0.6)
    return f" Did you mean '{match[0]}'?" if match else ""


def _apply(cfg: Config, raw: dict[str, Any], source: str, cross: bool = True) -> Config:
    """``cfg`` with ``raw`` ({section: {key: value}}) applied, each value checked; ``cross``
    also runs the sections' checks that relate several keys (``load_config`` runs those once,
    after every file and ``--set``, so the order of overrides does not matter)."""
    sections = dict(cfg.sections)
    for sec_name, values in raw.items():
        if sec_name not in sections:
            raise ConfigError(
                f"{source}: unknown config section '{sec_name}'.{_did_you_mean(sec_name, sections)} "
                f"Sections: {', '.join(sections)}."
            )
        if not isinstance(values, dict):
            raise ConfigError(f"{source}: '{sec_name}' must be a table ([{sec_name}]) of key = value lines.")
        sec = sections[sec_name]
        fields = {f.name: f for f in dataclasses.fields(sec)}
        changes = {}
        for key, value in values.items():
            if key not in fields:
                raise ConfigError(
                    f"{source}: unknown key '{sec_name}.{key}'.{_did_you_mean(key, fields)} "
                    f"Run `recagent config show` to list the keys."
                )
            changes[key] = _coerce(value, fields[key], f"{source}: {sec_name}.{key}")
        sections[sec_name] = dataclasses.replace(sec, **changes)
        if cross:
            _cross_check(sections[sec_name], source)
    return Config(sections)


def _cross_check(sec: Any, source: str) -> None:
    """A section's ``cross_check()`` (rules between its keys), if it has one."""
    wrong = sec.cross_check() if hasattr(sec, "cross_check") else None
    if wrong:
        raise ConfigError(f"{source}: {wrong}")


def _coerce(value: Any, f: dataclasses.Field, where: str) -> Any:
    """``value`` converted to the field's type and checked against its ``Rule``; else one line naming
    ``where``, what is wrong and the default."""
    value = _coerce_type(value, f, where)
    rule = rule_of(f)
    if isinstance(value, list) and rule.items is not None and rule.items.type is not None:
        items = []
        for i, v in enumerate(value):
            c = rule.items.coerce_item(v)
            if c is _WRONG_TYPE:
                shown = repr(v) if isinstance(v, str) else json.dumps(v)
                raise ConfigError(f"{where}: item {i + 1} must be {_ARTICLE.get(rule.items.type, rule.items.type.__name__)}, "
                                  f"got {shown}; default is {_default_text(f)}.")
            items.append(c)
        value = items
    wrong = rule.problem(value)
    if wrong:
        raise ConfigError(f"{where}: {wrong}; default is {_default_text(f)}.")
    return value


def _default_text(f: dataclasses.Field) -> str:
    return _toml_value(f.default if f.default is not dataclasses.MISSING else f.default_factory())


def _coerce_type(value: Any, f: dataclasses.Field, where: str) -> Any:
    expected = f.type if not isinstance(f.type, str) else _resolve_type(f.type)
    origin = typing.get_origin(expected)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(expected) if a is not type(None)]
        if value is None or value == "":
            return None if type(None) in typing.get_args(expected) else value
        expected = args[0]
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if expected is str and isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if expected is bool and isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    base = typing.get_origin(expected) or expected
    if base is list and isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, base) and not (base is int and isinstance(value, bool)):
        return value
    raise ConfigError(
        f"{where}: expected {getattr(base, '__name__', base)}, got {json.dumps(value) if not isinstance(value, str) else repr(value)}; "
        f"default is {_default_text(f)}."
    )


_TYPES = {"str": str, "int": int, "float": float, "bool": bool, "list": list, "dict": dict}


def _resolve_type(name: str) -> Any:
    name = name.replace(" ", "")
    if "|" in name:
        parts = [p for p in name.split("|")]
        resolved = [type(None) if p == "None" else _TYPES.get(p.split("[")[0], str) for p in parts]
        return typing.Union[tuple(resolved)]
    return _TYPES.get(name.split("[")[0], str)


def _toml_value(value: Any) -> str:
    if value is None:
        return '""'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    return json.dumps(str(value), ensure_ascii=False)
