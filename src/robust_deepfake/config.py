"""Configuration checking: the schema is the single place that says what a valid config is.

The workflow calls :func:`validate_config` while Snakemake parses the Snakefile, so a wrong value
stops the run before any job starts, with a message that names the key and what it may be.
"""

from __future__ import annotations

import copy
import difflib
import importlib.util
import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from robust_deepfake.registry import (DEFENCES, DETECTOR_FAMILIES, GENERATORS, POISON_ATTACKS, RENDERED_LAYOUTS,
                                      SCHEMA_ENUMS)

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "config" / "config.schema.json"

# keys that were renamed: a config that still uses one is told the new name
RENAMED_KEYS = {("purify", "purifiers"): "defences (a top-level list: the defence axis)",
                ("experiments", "*", "purifier"): "defence"}


def as_list(value) -> list:
    """A key that takes one name or a list of them (poison.loss), as a list without repeats."""
    return list(dict.fromkeys([value] if isinstance(value, str) else value))


class ConfigError(ValueError):
    """A configuration value the schema (or a cross-key rule) does not allow."""


def load_schema(path: str | Path = SCHEMA_PATH) -> dict:
    """The JSON Schema, with the allowed names of each algorithm family filled in from the
    registry (`registry.SCHEMA_ENUMS`), so that a new member is one entry there."""
    with open(path) as f:
        schema = json.load(f)
    for keys, names in SCHEMA_ENUMS.items():
        node = _schema_node(schema, keys)
        (node["items"] if node.get("type") == "array" else node)["enum"] = list(names)
    return schema


def _schema_node(schema: dict, keys: tuple[str, ...]) -> dict:
    """The schema of config key `keys`, through arrays of objects too (the experiment blocks), or
    the shared definition ("$defs", name) that several keys refer to (the poisoning losses)."""
    if keys[0] == "$defs":
        return schema["$defs"][keys[1]]
    node = schema
    for key in keys:
        node = (node["items"] if node.get("type") == "array" else node)["properties"][key]
    return node


def _renamed_keys(config: dict) -> list[str]:
    problems = []
    for keys, new in RENAMED_KEYS.items():
        nodes = [(config, "")]
        for key in keys:
            nodes = [(item, f"{where}{i}.") for node, where in nodes if isinstance(node, list)
                     for i, item in enumerate(node)] if key == "*" else [
                (node[key], f"{where}{key}.") for node, where in nodes if isinstance(node, dict) and key in node]
        problems += [f"config key '{where.rstrip('.')}' was renamed: use {new}" for _, where in nodes]
    return problems


def _dotted(path) -> str:
    return ".".join(str(p) for p in path) or "<top level>"


def _describe_allowed(error: jsonschema.ValidationError) -> str:
    """Say what the key may be, in the words a user edits the YAML with."""
    schema = error.schema if isinstance(error.schema, dict) else {}
    if error.validator == "pattern":  # the folder and model names: say the rule, not the regex
        return schema.get("description") or f"pattern {schema['pattern']}"
    if "enum" in schema:
        return "allowed values: " + ", ".join(repr(v) for v in schema["enum"])
    bounds = []
    for key, word in (("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="), ("exclusiveMaximum", "<")):
        if key in schema:
            bounds.append(f"{word} {schema[key]}")
    kind = schema.get("type")
    kind = " or ".join(kind) if isinstance(kind, list) else kind
    parts = [p for p in (kind, " and ".join(bounds)) if p]
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        return "allowed keys: " + ", ".join(allowed)
    return ("allowed: " + " ".join(parts)) if parts else ""


def _fill_defaults(instance: Any, schema: dict) -> None:
    """Insert schema defaults for absent keys, recursively, so presets may stay short."""
    if not isinstance(instance, dict):
        return
    for key, sub in schema.get("properties", {}).items():
        if key not in instance and "default" in sub:
            instance[key] = copy.deepcopy(sub["default"])
        if key in instance:
            _fill_defaults(instance[key], sub)


_SCALAR_TYPES = {"number": (int, float), "integer": (int,), "boolean": (bool,), "null": (type(None),)}


def _coerce_cli_strings(instance: Any, schema: dict) -> Any:
    """Turn strings into the numbers/booleans/null the schema asks for.

    Snakemake parses nested `--config 'crop={margin: 0.45}'` values with YAML's BaseLoader, which
    keeps every scalar a string; without this, the command users type would be refused.
    """
    if isinstance(instance, dict):
        props = schema.get("properties", {})
        return {k: _coerce_cli_strings(v, props.get(k, {})) for k, v in instance.items()}
    if isinstance(instance, list):
        return [_coerce_cli_strings(v, schema.get("items", {})) for v in instance]
    branches = [schema, *schema.get("oneOf", []), *schema.get("anyOf", [])]
    kinds = [k for b in branches for k in ([b["type"]] if isinstance(b.get("type"), str) else b.get("type", []))]
    wanted = tuple(t for k in kinds for t in _SCALAR_TYPES.get(k, ()))
    if isinstance(instance, str) and wanted and "string" not in kinds:
        parsed = yaml.safe_load(instance)
        if isinstance(parsed, wanted) and not (isinstance(parsed, bool) and bool not in wanted):
            return parsed
    return instance


def _check_cross_keys(config: dict, schema: dict) -> list[str]:
    problems = []
    fractions = config["split"]["fractions"]
    total = sum(fractions.values())
    if abs(total - 1.0) > 1e-6:
        problems.append(f"config key 'split.fractions': A + B + C = {total:g}, must be 1 "
                        f"(got {fractions})")
    if config["dataset"]["layout"] not in RENDERED_LAYOUTS and not config.get("dataset_root"):
        problems.append(f"config key 'dataset_root': layout '{config['dataset']['layout']}' needs the "
                        "dataset's root folder (set it with --config dataset_root=/path/to/data)")
    poison = config.get("poison", {})
    starts_at_input = sorted(a for a in poison.get("attacks", []) if POISON_ATTACKS[a].starts_at_input)
    if starts_at_input and "mse" in as_list(poison.get("loss", [])):
        problems.append(f"config key 'poison.attacks': {starts_at_input} start at the clean image, where the "
                        "gradient of the mse loss MSE(G(x+d), G(x)) is zero, so they never move: use pgd "
                        "(random start) or poison.loss: target")
    prompt = config.get("diffusion", {}).get("prompt", "")
    try:
        prompt.format(identity="", attributes="")
    except (KeyError, IndexError, ValueError) as exc:
        problems.append(f"config key 'diffusion.prompt': {prompt!r} is not a template of {{identity}} and "
                        f"{{attributes}} ({type(exc).__name__}: {exc})")
    return (problems + _check_defence_targets(config) + _check_experiments(config) + _check_backbones(config)
            + _check_backbone_settings(config, schema))


def _check_defence_targets(config: dict) -> list[str]:
    """A defence built for some generators (an adversarially trained one, the blur variant for
    StarGAN) would otherwise load a file of one family as another, or have no fine-tuning to run."""
    attacked = config["poison"]["generator"]
    problems = [f"config key 'defences': {name!r} works only when the attacked generator is one of "
                f"{list(DEFENCES[name].generators)}, but poison.generator is {attacked!r}"
                for name in config.get("defences", [])
                if DEFENCES[name].generators is not None and attacked not in DEFENCES[name].generators]
    fine_tuned = any(DEFENCES[name].adversarial_generator for name in config.get("defences", []))
    settings = config.get("adv_generator", {})
    has_critic = "critic_warmup" in (GENERATORS[attacked].adversarial_settings or ())
    if fine_tuned and has_critic and settings.get("critic_warmup", 0) >= settings.get("steps", 1):
        problems.append(f"config key 'adv_generator.critic_warmup': {settings['critic_warmup']} critic-only steps of "
                        f"adv_generator.steps {settings['steps']} would never fine-tune StarGAN; make it smaller")
    return problems


# experiment axis -> (config key of the upstream list it must draw from, how to compare values)
EXPERIMENT_AXES = {"generator": ("fakes.generators", str), "attack": ("poison.attacks", str),
                   "loss": ("poison.loss", str), "poison_rate": ("poison.poison_rate", float),
                   "defence": ("defences", str)}


def _check_experiments(config: dict) -> list[str]:
    """An experiment may only use scenarios the attack and defence stages make, else its detector
    would wait for fakes no rule produces."""
    problems = []
    for i, block in enumerate(config.get("experiments", [])):
        for axis, (key, kind) in EXPERIMENT_AXES.items():
            node = config
            for part in key.split("."):
                node = node[part]
            available = [kind(v) for v in ([node] if isinstance(node, str) else node)]
            missing = [v for v in block.get(axis, []) if kind(v) not in available]
            if missing:
                problems.append(f"config key 'experiments.{i}.{axis}': {missing} not in '{key}' {available}")
    return problems


@lru_cache(maxsize=1)
def timm_model_names() -> frozenset[str]:
    """Every model name timm registers, read from its source files' `@register_model` functions and
    deprecated-name tables rather than by importing timm: the config check runs while Snakemake
    parses the workflow, where importing timm (and torch) would cost seconds at every start.
    Empty when timm is not installed or its layout is not recognised (then nothing is checked)."""
    spec = importlib.util.find_spec("timm")
    if spec is None or not spec.submodule_search_locations:
        return frozenset()
    names: set[str] = set()
    for source in (Path(spec.submodule_search_locations[0]) / "models").rglob("*.py"):
        text = source.read_text(encoding="utf-8", errors="replace")
        names.update(re.findall(r"@register_model\s*\n\s*def\s+(\w+)", text))
        for table in re.findall(r"register_model_deprecations\(\s*__name__\s*,\s*\{(.*?)\}\s*\)", text, re.S):
            names.update(re.findall(r"['\"]([\w.]+)['\"]\s*:", table))
    return frozenset(names)


def _check_backbones(config: dict) -> list[str]:
    """An unknown backbone would otherwise fail inside train_detector, after every upstream job.
    timm names may carry a pretrained tag (`resnet18.a1_in1k`)."""
    timm_names = timm_model_names()
    if not timm_names:
        return []
    known = timm_names | set(DETECTOR_FAMILIES)
    problems = []
    for i, block in enumerate(config.get("experiments", [])):
        unknown = [b for b in block.get("backbone", []) if b not in DETECTOR_FAMILIES and b.split(".")[0] not in known]
        for name in unknown:
            close = difflib.get_close_matches(name, known, n=5, cutoff=0.7)
            problems.append(f"config key 'experiments.{i}.backbone': {name!r} is neither a detector family of this "
                            f"pipeline ({', '.join(DETECTOR_FAMILIES)}) nor a timm model"
                            + (f" (similar: {', '.join(close)})" if close else ""))
    named = [("detector.ensemble.experts", name) for name in config["detector"].get("ensemble", {}).get("experts", [])]
    named.append(("detector.recce.encoder", config["detector"].get("recce", {}).get("encoder", "resnet18")))
    for key, name in named:
        if name.split(".")[0] not in timm_names:
            close = difflib.get_close_matches(name, timm_names, n=5, cutoff=0.7)
            problems.append(f"config key '{key}': {name!r} is not a timm model"
                            + (f" (similar: {', '.join(close)})" if close else ""))
    return problems


def _check_backbone_settings(config: dict, schema: dict) -> list[str]:
    """Per-backbone detector settings may change training keys only, each to a value the schema
    allows for that key."""
    schema = schema["properties"]["detector"]["properties"]
    fixed = {"backbone_settings", "seeds", "pretrained", *(f.settings for f in DETECTOR_FAMILIES.values() if f.settings)}
    problems = []
    for backbone, changes in config["detector"].get("backbone_settings", {}).items():
        for key, value in changes.items():
            where = f"config key 'detector.backbone_settings.{backbone}.{key}'"
            if key not in schema or key in fixed:
                problems.append(f"{where}: not a per-backbone setting (allowed: "
                                f"{', '.join(sorted(set(schema) - fixed))})")
                continue
            error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema[key]).iter_errors(value))
            if error is not None:
                problems.append(f"{where}: {error.message}")
    return problems


def _branch_error(error: jsonschema.ValidationError) -> jsonschema.ValidationError:
    """For a key that takes a name or a list of names, the error of the branch meant for the
    value given (a list is judged by the list's rule), so the message names the wrong item."""
    def fits(sub: jsonschema.ValidationError) -> bool:
        branch = error.schema["anyOf"][sub.relative_schema_path[0]]
        return (branch.get("type") == "array") == isinstance(error.instance, list)
    return jsonschema.exceptions.best_match([e for e in error.context if fits(e)] or error.context)


def validate_config(config: dict, schema_path: str | Path = SCHEMA_PATH) -> dict:
    """Check `config` against the schema, fill defaults in place and return it.

    Every problem is reported at once, one line each, so a user fixes a preset in one go.
    """
    renamed = _renamed_keys(config)
    if renamed:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(renamed))
    schema = load_schema(schema_path)
    config.update(_coerce_cli_strings(config, schema))
    validator = jsonschema.Draft202012Validator(schema)
    problems = []
    for error in sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path))):
        if error.validator == "anyOf" and error.context:  # a name or a list of names: say what is wrong in it
            error = _branch_error(error)
        allowed = _describe_allowed(error)
        message = f"{error.instance!r} is not allowed" if error.validator == "pattern" else error.message
        line = f"config key '{_dotted(error.absolute_path)}': {message}"
        problems.append(line + (f" ({allowed})" if allowed else ""))
    if problems:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems))
    _fill_defaults(config, schema)
    problems = _check_cross_keys(config, schema)
    if problems:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems))
    return config
