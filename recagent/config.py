"""Configuration: one TOML file -> frozen dataclasses, with ``--set section.key=value`` overrides.

Every field has a default and a ``help`` text (shown by ``recagent config show``). Unknown
sections or keys are errors with a did-you-mean, never silently ignored. Each area of the code
owns its section (``recagent/retrieval/config.py`` etc.); this module assembles them.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recagent.errors import ConfigError
from recagent.paths import atomic_write_text, default_cache_dir, default_runs_dir


def opt(default: Any, help: str) -> Any:
    """A config field with a default and the sentence that explains it."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata={"help": help})
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class PathsConfig:
    cache_dir: str = opt("", "models and data sets; empty = $RECAGENT_CACHE_DIR or ~/.cache/recagent")
    runs_dir: str = opt("", "indexes, checkpoints, reports; empty = $RECAGENT_RUNS_DIR or ./runs")

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
    encoding: str = opt("utf-8", "text encoding of CSV/TSV/JSONL inputs, e.g. 'latin-1' for old MovieLens files")
    category_separator: str = opt("|", "separator of several categories in one CSV/TSV cell")
    rating_min: float = opt(0.0, "smallest valid rating; smaller values are rejected")
    rating_max: float = opt(5.0, "largest valid rating; larger values are rejected")
    positive_threshold: float = opt(4.0, "ratings >= this count as positives in Protocol A (DESIGN.md)")
    split_ratios: list = opt([0.8, 0.1, 0.1], "train/valid/test ratios of the per-user random split (Protocol A)")
    split_seed: int = opt(2020, "seed of the per-user random split (2020 = the peers' protocol)")
    allow_outside_images: bool = opt(False, "accept image_path values outside the catalog's folder (off: such items "
                                            "are kept text-only with a warning; the chat server serves item images)")
    item_noun: str = opt("", "what one item is called in replies ('book', 'recipe'); empty = the built-in data set's "
                             "own ('movie' for ml-100k), else 'item'")
    category_noun: str = opt("", "what the catalog's categories are called ('genre', 'cuisine'); empty = the built-in "
                                 "data set's own, else 'category'")


@dataclass(frozen=True)
class ModelsConfig:
    llm: str = opt("smollm2-135m-instruct", "LLM: a cached alias, a local directory, or a hub id (online users)")
    llm_adapter: str = opt("", "optional LoRA adapter directory (from `recagent finetune`)")
    llm_backend: str = opt("ct2", "local LLM runtime: 'ct2' (CTranslate2 int8, converted once at `models pull`; ~2-3x "
                                  "faster on CPU) or 'hf' (transformers float32, the reference)")
    llm_endpoint: str = opt("", "OpenAI-compatible base URL (vLLM, Ollama, ...); when set, `llm` is the served model name")
    llm_api_key_env: str = opt("OPENAI_API_KEY", "environment variable holding the endpoint's API key, if it needs one")
    text_encoder: str = opt("all-minilm-l6-v2", "sentence-transformers model: cached alias, local directory or hub id")
    clip_model: str = opt("ViT-B-32", "open_clip architecture name")
    clip_checkpoint: str = opt("", "local open_clip checkpoint file; empty = no image channel unless clip_pretrained is set")
    clip_pretrained: str = opt("", "open_clip pretrained tag (needs internet), e.g. 'laion2b_s34b_b79k'")
    device: str = opt("cpu", "torch device: 'cpu', 'cuda', 'cuda:1', 'mps' or 'auto'")
    threads: int = opt(0, "torch CPU threads; 0 = leave torch's default")


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
                    lines.append(f"# {f.metadata['help']}")
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
        cfg = _apply(cfg, raw, source=str(p))
    for item in overrides:
        key, sep, value = item.partition("=")
        section, dot, name = key.strip().partition(".")
        if not sep or not dot or not name:
            raise ConfigError(f"--set {item!r}: expected section.key=value, e.g. --set data.positive_threshold=3.5.")
        cfg = _apply(cfg, {section: {name: _parse_value(value.strip())}}, source=f"--set {item}")
    return cfg


def _parse_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _did_you_mean(name: str, options: typing.Iterable[str]) -> str:
    match = difflib.get_close_matches(name, list(options), n=1, cutoff=0.6)
    return f" Did you mean '{match[0]}'?" if match else ""


def _apply(cfg: Config, raw: dict[str, Any], source: str) -> Config:
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
    return Config(sections)


def _coerce(value: Any, f: dataclasses.Field, where: str) -> Any:
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
        f"default is {_toml_value(f.default if f.default is not dataclasses.MISSING else f.default_factory())}."
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
