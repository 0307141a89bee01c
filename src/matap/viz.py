"""Pictures of videos: frame strips (PNG), side-by-side animations (GIF or MP4), and the labelled
context | truth | prediction picture of ``matap predict --png`` (:func:`save_prediction_strip`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from matap.atomic import atomic_write
from matap.errors import MatapError


def _save(image: Image.Image, path: str | Path, **params: object) -> None:
    """Save ``image`` atomically in the format its file name says (.png, .gif, ...)."""
    suffix = Path(path).suffix.lower()
    if suffix not in Image.registered_extensions():
        raise MatapError(f"unknown image file extension {suffix!r}: {path}")
    atomic_write(path, lambda fh: image.save(fh, format=Image.registered_extensions()[suffix], **params))


def _to_uint8(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.dtype != np.uint8:
        frames = np.rint(np.clip(frames, 0, 1) * 255).astype(np.uint8)
    return frames


def save_strip(videos: np.ndarray, path: str | Path, max_frames: int = 20) -> None:
    """PNG grid: one row per video, one column per frame. ``videos`` (N, T, H, W)."""
    v = _to_uint8(videos)[:, :max_frames]
    rows = [np.concatenate(list(video), axis=1) for video in v]
    _save(Image.fromarray(np.concatenate(rows, axis=0)), path)


def _animation_frames(panels: list[np.ndarray], scale: int, gap: int) -> list[np.ndarray]:
    """The frames of panels side by side, uint8 (H, W) each; each panel is (N, T, H, W) (videos stacked
    vertically). Panels with fewer frames than the longest are padded with blank frames at the start,
    so that a prediction panel lines up in time with its ground truth."""
    panels = [_to_uint8(p) for p in panels]
    T = max(p.shape[1] for p in panels)
    frames = []
    for t in range(T):
        columns = []
        for p in panels:
            offset = T - p.shape[1]
            tile = p[:, t - offset] if t >= offset else np.zeros_like(p[:, 0])
            column = np.concatenate([np.pad(v, ((0, gap), (0, 0)), constant_values=64) for v in tile], axis=0)
            columns.append(np.pad(column, ((0, 0), (0, gap)), constant_values=64))
        image = np.concatenate(columns, axis=1)
        frames.append(image.repeat(scale, axis=0).repeat(scale, axis=1))  # nearest neighbour, scale x
    return frames


def save_gif(panels: list[np.ndarray], path: str | Path, fps: int = 4, scale: int = 2, gap: int = 2) -> None:
    """Animate panels side by side (:func:`_animation_frames`) as a GIF."""
    frames = [Image.fromarray(frame) for frame in _animation_frames(panels, scale, gap)]
    _save(frames[0], path, save_all=True, append_images=frames[1:], duration=int(1000 / fps), loop=0)


def save_mp4(panels: list[np.ndarray], path: str | Path, fps: int = 4, scale: int = 2, gap: int = 2) -> None:
    """Animate panels side by side (:func:`_animation_frames`) as an H.264 MP4 (MPEG-4 part 2 where PyAV's
    FFmpeg has no H.264 encoder), written with PyAV; frames padded to even sizes, as yuv420p needs."""
    import av

    frames = _animation_frames(panels, scale, gap)
    h, w = frames[0].shape
    even = [np.pad(frame, ((0, h % 2), (0, w % 2))) for frame in frames]
    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"

    def write(fh: object) -> None:
        with av.open(fh, "w", format="mp4") as container:
            stream = container.add_stream(codec, rate=fps)
            stream.width, stream.height, stream.pix_fmt = w + w % 2, h + h % 2, "yuv420p"
            for frame in even:
                container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="gray").reformat(format="yuv420p")))
            container.mux(stream.encode())

    atomic_write(path, write)


def _prediction_panels(clip: np.ndarray, prediction: np.ndarray) -> list[np.ndarray]:
    """[truth, shown]: ``clip`` uint8 (N, C + F, H, W) holds the C context frames and the F true future frames,
    ``prediction`` (N, F, H, W) floats in [0, 1] the predicted ones; shown is the context, then the prediction."""
    context = clip.shape[1] - prediction.shape[1]
    return [clip, np.concatenate([clip[:, :context].astype(np.float32) / 255, prediction], axis=1)]


def save_prediction_gif(clip: np.ndarray, prediction: np.ndarray, path: str | Path, scale: int = 2) -> None:
    """Animate the truth beside the prediction (:func:`_prediction_panels`) as a GIF."""
    save_gif(_prediction_panels(clip, prediction), path, scale=scale)


def save_prediction_mp4(clip: np.ndarray, prediction: np.ndarray, path: str | Path, scale: int = 2) -> None:
    """Animate the truth beside the prediction (:func:`_prediction_panels`) as an MP4, the frames of the GIF."""
    save_mp4(_prediction_panels(clip, prediction), path, scale=scale)


# ---------------------------------------------------------------------------------------------
# The prediction picture: per sequence, a block of three labelled rows
#
#              1    2    3    4    5    6    7    8        <- frame numbers, above every block
#   context  [ 1 ][ 2 ][ 3 ][ 4 ]
#   truth                        [ 5 ][ 6 ][ 7 ][ 8 ]
#   prediction                   [ 5 ][ 6 ][ 7 ][ 8 ]
#
# one column per frame number, so the prediction sits under the frame it predicts; then, below
# all blocks, a plot of the per-frame SSIM whose x axis lines up with the future columns.
# ---------------------------------------------------------------------------------------------

SCALE = 2            # frames are scaled up SCALE x with nearest neighbour
TEXT_SCALE = 2       # the bitmap font is drawn TEXT_SCALE x larger (nearest neighbour) to be readable
GRID = 2             # grey lines between frames, px
MARGIN = 10          # outer margin, px
LABEL_W = 140        # label column on the left (row names), px
HEADER_H = 30        # frame numbers above each block, px
BLOCK_GAP = 24       # between two sequences' blocks (a thin line in its middle), px
PLOT_GAP = 12        # between the last block and the SSIM plot, px
PLOT_H = 260         # height of the SSIM plot, px
ROWS = ("context", "truth", "prediction")

BACKGROUND = (255, 255, 255)
GRID_COLOUR = (150, 150, 150)
TEXT_COLOUR = (40, 40, 40)
SEPARATOR_COLOUR = (200, 200, 200)
CONTEXT_NUMBER_COLOUR = (120, 120, 120)   # frame numbers of the context columns: grey; future: dark


@dataclass(frozen=True)
class PredictionLayout:
    """Pixel geometry of the prediction picture: ``num`` blocks of 3 rows x (context + horizon)
    columns of frame_h x frame_w frames, and the SSIM plot below them when ``plot``."""

    num: int
    context: int
    horizon: int
    frame_h: int = 64
    frame_w: int = 64
    plot: bool = True

    @property
    def columns(self) -> int:
        return self.context + self.horizon

    @property
    def tile_w(self) -> int:
        return self.frame_w * SCALE

    @property
    def tile_h(self) -> int:
        return self.frame_h * SCALE

    @property
    def grid_x(self) -> int:
        """Left edge of the grid (its first grey line)."""
        return MARGIN + LABEL_W

    @property
    def block_h(self) -> int:
        return HEADER_H + 3 * (self.tile_h + GRID) + GRID

    @property
    def blocks_h(self) -> int:
        return self.num * self.block_h + (self.num - 1) * BLOCK_GAP

    @property
    def width(self) -> int:
        return self.grid_x + self.columns * (self.tile_w + GRID) + GRID + MARGIN

    @property
    def height(self) -> int:
        return MARGIN + self.blocks_h + (PLOT_GAP + PLOT_H if self.plot else 0) + MARGIN

    def block_y(self, seq: int) -> int:
        """Top of block ``seq`` (its frame-number header)."""
        return MARGIN + seq * (self.block_h + BLOCK_GAP)

    def column_x(self, frame: int) -> int:
        """Left edge of the pixels of frame number ``frame`` (1-based) in any row."""
        return self.grid_x + GRID + (frame - 1) * (self.tile_w + GRID)

    def row_y(self, seq: int, row: int) -> int:
        """Top edge of the pixels of row ``row`` (0 context, 1 truth, 2 prediction) of block ``seq``."""
        return self.block_y(seq) + HEADER_H + GRID + row * (self.tile_h + GRID)

    def cell(self, seq: int, row: int, frame: int) -> tuple[int, int, int, int]:
        """(left, top, right, bottom) of frame number ``frame`` in row ``row`` of block ``seq``."""
        x, y = self.column_x(frame), self.row_y(seq, row)
        return x, y, x + self.tile_w, y + self.tile_h

    @property
    def plot_y(self) -> int:
        return MARGIN + self.blocks_h + PLOT_GAP


def _font() -> ImageFont.ImageFont:
    """PIL's built-in bitmap font (Pillow >= 10.1 would otherwise give a FreeType font)."""
    return ImageFont.load_default_imagefont() if hasattr(ImageFont, "load_default_imagefont") \
        else ImageFont.load_default()


def _text(image: Image.Image, text: str, box: tuple[int, int, int, int], fill: tuple[int, int, int],
          align: str = "center") -> None:
    """Draw ``text`` in the bitmap font, TEXT_SCALE x larger, centred vertically in ``box``
    (left, top, right, bottom) and aligned left, centre or right in it."""
    font = _font()
    _, _, w, h = font.getbbox(text)
    mask = Image.new("L", (max(w, 1), max(h, 1)), 0)
    ImageDraw.Draw(mask).text((0, 0), text, font=font, fill=255)
    mask = mask.resize((mask.width * TEXT_SCALE, mask.height * TEXT_SCALE), Image.NEAREST)
    left, top, right, bottom = box
    x = {"left": left, "right": right - mask.width, "center": (left + right - mask.width) // 2}[align]
    y = (top + bottom - mask.height) // 2
    image.paste(Image.new("RGB", mask.size, fill), (x, y), mask)


def _paste_frame(image: Image.Image, frame: np.ndarray, box: tuple[int, int, int, int]) -> None:
    """A uint8 (h, w) frame, scaled SCALE x with nearest neighbour, framed by a GRID-wide grey line."""
    left, top, right, bottom = box
    ImageDraw.Draw(image).rectangle((left - GRID, top - GRID, right + GRID - 1, bottom + GRID - 1), fill=GRID_COLOUR)
    tile = Image.fromarray(frame, "L").resize((right - left, bottom - top), Image.NEAREST)
    image.paste(tile.convert("RGB"), (left, top))


def _check_prediction_inputs(context: np.ndarray, truth: np.ndarray, prediction: np.ndarray) -> None:
    if context.ndim != 4 or truth.ndim != 4:
        raise MatapError(f"context and truth must be (N, T, H, W), got {context.shape} and {truth.shape}")
    if truth.shape != prediction.shape:
        raise MatapError(f"truth and prediction shapes differ: {truth.shape} vs {prediction.shape}")
    if context.shape[0] != truth.shape[0] or context.shape[2:] != truth.shape[2:]:
        raise MatapError(f"context {context.shape} and truth {truth.shape} differ in sequences or frame size")
    if context.shape[0] < 1 or context.shape[1] < 1 or truth.shape[1] < 1:
        raise MatapError("need at least one sequence, one context frame and one future frame")


def ssim_curves(context: np.ndarray, truth: np.ndarray, prediction: np.ndarray) -> dict[str, np.ndarray]:
    """Per-frame SSIM (:func:`matap.metrics.ssim`, as tf.image.ssim) against ``truth``, averaged over
    the sequences, of ``prediction``, of all-black frames, and of the last context frame repeated.

    ``context`` (N, C, H, W), ``truth`` and ``prediction`` (N, F, H, W): uint8, or floats in [0, 1].
    Returns {"prediction", "black", "last context"}: arrays of F values."""
    import torch

    from matap.metrics import ssim

    def tensor(frames: np.ndarray) -> torch.Tensor:
        frames = np.asarray(frames)
        scale = 255.0 if frames.dtype == np.uint8 else 1.0
        return torch.from_numpy(np.ascontiguousarray(frames, dtype=np.float32) / np.float32(scale))

    context, truth, prediction = (np.asarray(a) for a in (context, truth, prediction))
    _check_prediction_inputs(context, truth, prediction)
    target = tensor(truth)
    last = tensor(context[:, -1:]).expand_as(target)
    with torch.no_grad():
        return {
            "prediction": ssim(tensor(prediction), target).mean(0).double().numpy(),
            "black": ssim(torch.zeros_like(target), target).mean(0).double().numpy(),
            "last context": ssim(last, target).mean(0).double().numpy(),
        }


def _ssim_plot(layout: PredictionLayout, curves: dict[str, np.ndarray]) -> np.ndarray:
    """The SSIM plot as an RGB array (PLOT_H, layout.width, 3); its x axis spans the future
    columns of the blocks above, one frame number per column, points at the column centres."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    W, H, dpi = layout.width, PLOT_H, 100
    fig = Figure(figsize=(W / dpi, H / dpi), dpi=dpi, facecolor="white")
    FigureCanvasAgg(fig)
    left = layout.column_x(layout.context + 1) - GRID / 2           # half a column before the first future centre
    right = layout.column_x(layout.columns) + layout.tile_w + GRID / 2
    top, bottom = 14, 44                                           # px for the top and the x tick labels + label
    ax = fig.add_axes((left / W, bottom / H, (right - left) / W, (H - top - bottom) / H))
    frames = np.arange(layout.context + 1, layout.columns + 1)
    ax.plot(frames, curves["prediction"], "o-", color="tab:blue", lw=2, ms=5, label="prediction")
    ax.plot(frames, curves["last context"], "s--", color="tab:orange", lw=1.5, ms=4,
            label=f"last context frame ({layout.context}) repeated")
    ax.plot(frames, curves["black"], "^--", color="0.35", lw=1.5, ms=4, label="all-black frames")
    ax.set_xlim(layout.context + 0.5, layout.columns + 0.5)
    low = min(0.0, float(np.min([np.min(c) for c in curves.values()])))
    ax.set_ylim(low - 0.02, 1.02)
    if layout.horizon <= 40:
        ax.set_xticks(frames)
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("frame", fontsize=10, labelpad=2)
    ax.set_ylabel("SSIM", fontsize=10, labelpad=2)
    ax.tick_params(labelsize=9)
    ax.grid(alpha=0.3)
    n = "1 sequence" if layout.num == 1 else f"mean of {layout.num} sequences"
    x0 = MARGIN / W
    fig.text(x0, 1 - top / H, f"SSIM against the truth\n(tf.image.ssim, {n})", fontsize=10, va="top", ha="left")
    if left - MARGIN >= 320:   # room left of the y axis (its ticks and label take about 60 px): the legend goes there
        handles, labels = ax.get_legend_handles_labels()
        fig.legend(handles, labels, loc="upper left", bbox_to_anchor=(x0, 1 - (top + 40) / H), fontsize=9,
                   frameon=False, borderaxespad=0, handlelength=2.5)
    else:                      # short context: inside the axes
        ax.legend(loc="upper right", fontsize=8, framealpha=0.9, handlelength=2.5)
    fig.canvas.draw()
    rgb = np.asarray(fig.canvas.buffer_rgba())[..., :3]
    out = np.full((H, W, 3), 255, dtype=np.uint8)                  # exact size, whatever Agg rounded to
    h, w = min(H, rgb.shape[0]), min(W, rgb.shape[1])
    out[:h, :w] = rgb[:h, :w]
    return out


def render_prediction_strip(context: np.ndarray, truth: np.ndarray, prediction: np.ndarray,
                            plot: bool = True, curves: dict[str, np.ndarray] | None = None) -> Image.Image:
    """The prediction picture as an RGB image (geometry: :class:`PredictionLayout`).

    ``context`` (N, C, H, W): frames 1..C; ``truth`` and ``prediction`` (N, F, H, W): frames
    C+1..C+F; uint8, or floats in [0, 1] (rounded to uint8 for display). One block per sequence,
    rows "context", "truth", "prediction", frame numbers above the columns; with ``plot``, the
    per-frame SSIM plot (:func:`ssim_curves`, or the given ``curves``) below the blocks."""
    context, truth, prediction = (np.asarray(a) for a in (context, truth, prediction))
    _check_prediction_inputs(context, truth, prediction)
    N, C = context.shape[:2]
    F = truth.shape[1]
    layout = PredictionLayout(N, C, F, *context.shape[2:], plot=plot)
    image = Image.new("RGB", (layout.width, layout.height), BACKGROUND)
    rows = (_to_uint8(context), _to_uint8(truth), _to_uint8(prediction))
    for seq in range(N):
        y = layout.block_y(seq)
        if seq:
            line_y = y - BLOCK_GAP // 2
            ImageDraw.Draw(image).line((MARGIN, line_y, layout.width - MARGIN - 1, line_y), fill=SEPARATOR_COLOUR)
        _text(image, f"sequence {seq + 1}", (MARGIN, y, layout.grid_x - 8, y + HEADER_H), TEXT_COLOUR, "left")
        for frame in range(1, C + F + 1):
            x = layout.column_x(frame)
            colour = CONTEXT_NUMBER_COLOUR if frame <= C else TEXT_COLOUR
            _text(image, str(frame), (x, y, x + layout.tile_w, y + HEADER_H), colour)
        for row, (name, frames) in enumerate(zip(ROWS, rows)):
            top = layout.row_y(seq, row)
            _text(image, name, (MARGIN, top, layout.grid_x - 8, top + layout.tile_h), TEXT_COLOUR, "right")
            first = 1 if row == 0 else C + 1
            for i, frame in enumerate(frames[seq]):
                _paste_frame(image, frame, layout.cell(seq, row, first + i))
    if plot:
        if curves is None:
            curves = ssim_curves(context, truth, prediction)
        image.paste(Image.fromarray(_ssim_plot(layout, curves)), (0, layout.plot_y))
    return image


def save_prediction_strip(context: np.ndarray, truth: np.ndarray, prediction: np.ndarray, path: str | Path,
                          plot: bool = True) -> dict[str, np.ndarray]:
    """Write :func:`render_prediction_strip` to the PNG ``path`` (deterministic: no time stamps);
    return the SSIM curves drawn in it ({} without ``plot``)."""
    curves = ssim_curves(context, truth, prediction) if plot else {}
    image = render_prediction_strip(context, truth, prediction, plot=plot, curves=curves if plot else None)
    atomic_write(path, lambda fh: image.save(fh, format="PNG"))
    return curves
