"""Pictures shared by the CLI, the app and the notebooks: heat-map overlays, seed masks, boxes,
the difference of two maps, a plotly grid to show several pictures side by side, and a static
PNG copy of a plotly figure drawn with matplotlib (:func:`static_png`, :func:`use_static_copies`)
so that a notebook's figures show where plotly's JavaScript does not run."""
from __future__ import annotations

import base64
import io
import re
import warnings

import cv2
import numpy as np
from PIL import Image, ImageDraw

from spg_core.guidance import BACKGROUND, FOREGROUND

PRED_COLOR = (0, 200, 0)  # predicted box: green
GT_COLOR = (230, 0, 0)  # ground truth: red
IGNORE_GREY = 128
# Diverging colours of a difference A − B (ColorBrewer RdBu): B higher, equal, A higher.
DIFFERENCE_COLORS = ((33, 102, 172), (247, 247, 247), (178, 24, 43))


def colorize(score_map: np.ndarray) -> np.ndarray:
    """[0, 1] map → H×W×3 uint8 RGB (jet, as in the paper's figures)."""
    values = np.clip(np.nan_to_num(np.asarray(score_map, dtype=np.float32)), 0, 1)
    bgr = cv2.applyColorMap((values * 255).astype(np.uint8), cv2.COLORMAP_JET)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def heatmap_overlay(image: Image.Image, score_map: np.ndarray, alpha: float = 0.5) -> Image.Image:
    """Blend the colourised map over the image; ``alpha`` is the map's opacity."""
    base = np.asarray(image.convert("RGB"), dtype=np.float32)
    heat = colorize(score_map).astype(np.float32)
    if heat.shape[:2] != base.shape[:2]:
        heat = cv2.resize(heat, (base.shape[1], base.shape[0]), interpolation=cv2.INTER_LINEAR)
    return Image.fromarray(((1 - alpha) * base + alpha * heat).clip(0, 255).astype(np.uint8))


def mask_image(mask: np.ndarray) -> Image.Image:
    """Seed mask as in the paper's Fig. 4: foreground white, background black, ignored grey."""
    mask = np.asarray(mask)
    out = np.full(mask.shape, IGNORE_GREY, dtype=np.uint8)
    out[mask == FOREGROUND] = 255
    out[mask == BACKGROUND] = 0
    return Image.fromarray(out).convert("RGB")


def difference_image(map_a: np.ndarray, map_b: np.ndarray, limit: float = 1.0) -> Image.Image:
    """A − B of two [0, 1] maps of the same size, in diverging colours (:data:`DIFFERENCE_COLORS`):
    red where A is higher, blue where B is, near-white where they agree; full colour at a
    difference of ``limit`` or more."""
    a, b = (np.clip(np.nan_to_num(np.asarray(m, dtype=np.float32)), 0, 1) for m in (map_a, map_b))
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"difference_image needs two 2-D maps of one size, got {a.shape} and {b.shape}")
    if not limit > 0:
        raise ValueError(f"limit must be positive, got {limit}")
    difference = a - b
    weight = np.clip(np.abs(difference) / limit, 0, 1)[..., None]
    low, centre, high = (np.array(c, dtype=np.float32) for c in DIFFERENCE_COLORS)
    end = np.where((difference >= 0)[..., None], high, low)
    return Image.fromarray((centre + weight * (end - centre)).round().astype(np.uint8))


def draw_boxes(image: Image.Image, pred_boxes=(), gt_boxes=(), width: int | None = None) -> Image.Image:
    """Copy of ``image`` with GT boxes in red and predicted boxes in green (inclusive pixel coords)."""
    out = image.convert("RGB").copy()
    draw = ImageDraw.Draw(out)
    width = width or max(1, round(max(out.size) / 150))
    for boxes, color in ((gt_boxes, GT_COLOR), (pred_boxes, PRED_COLOR)):
        for box in np.asarray(boxes, dtype=np.float64).reshape(-1, 4):
            draw.rectangle([float(v) for v in box], outline=color, width=width)
    return out


def stage_picture(stage_name: str, stage_maps, masks: dict, alpha: float = 0.5) -> Image.Image:
    """The picture of one stage of the strip: masks as seeds, score maps as overlays."""
    if stage_name in masks:
        return mask_image(masks[stage_name])
    return heatmap_overlay(stage_maps.image, stage_maps.maps[stage_name], alpha)


def picture_grid(pictures, titles=None, cols: int | None = None, height: int | None = None):
    """Same-sized pictures (PIL images or H×W×3 uint8 arrays) side by side in one plotly figure.

    ``titles`` (one per picture) are written above the pictures; ``cols`` pictures per row (all of
    them in one row by default); ``height`` in pixels (200 per row plus a margin by default). The
    pictures are embedded as JPEG, which keeps the figure small. Returns the
    ``plotly.graph_objects.Figure``; call ``.show()`` on it to display it.
    """
    import plotly.express as px  # plotly is needed for this figure only

    if len(pictures) == 0:
        raise ValueError("picture_grid needs at least one picture")
    if titles is not None and len(titles) != len(pictures):
        raise ValueError(f"{len(titles)} titles for {len(pictures)} pictures")
    cols = int(cols or len(pictures))
    stack = np.stack([np.asarray(p.convert("RGB") if hasattr(p, "convert") else p, dtype=np.uint8)
                      for p in pictures])
    fig = px.imshow(stack, facet_col=0, facet_col_wrap=cols, binary_string=True, binary_format="jpg",
                    facet_col_spacing=0.01, facet_row_spacing=0.07)
    for annotation in fig.layout.annotations:  # "facet_col=3" -> the picture's own title
        annotation.text = "" if titles is None else str(titles[int(annotation.text.split("=")[-1])])
        annotation.font.size = 11
    rows = -(-len(pictures) // cols)
    fig.update_layout(height=height or 50 + 200 * rows, margin=dict(l=0, r=0, t=30, b=0))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return fig


# ----------------------------------------------------------------------------- static copies
# A notebook figure stored as plotly JSON only is drawn by JupyterLab and VS Code, and by nothing
# else: a code host's notebook view, nbconvert's HTML and most viewers show nothing there. Kaleido,
# plotly's own static export, needs a browser. So the course's figures carry a second copy, a PNG
# drawn here with matplotlib from the figure's data and layout: the trace types and layout the
# course uses (scatter, bar, histogram, heatmap, image; subplots, facet titles, vertical and
# horizontal lines, annotations, legends, colour bars), not all of plotly.
STATIC_WIDTH = 900  # px, a figure that sets no width (plotly.js's own default is its container)
STATIC_HEIGHT = 450  # px, plotly.js's default
STATIC_DPI = 100
STATIC_RENDERER = "spg_static_png"
PLOTLY_COLORWAY = ("#636efa", "#EF553B", "#00cc96", "#ab63fa", "#FFA15A", "#19d3f3", "#FF6692", "#B6E880",
                   "#FF97FF", "#FECB52")
DASH_STYLES = {"solid": "-", "dash": (0, (5, 3)), "dot": (0, (1, 2)), "dashdot": (0, (5, 2, 1, 2)),
               "longdash": (0, (9, 3)), "longdashdot": (0, (9, 2, 1, 2))}
MARKERS = {"circle": "o", "square": "s", "diamond": "D", "cross": "P", "x": "X", "triangle-up": "^",
           "triangle-down": "v", "triangle-left": "<", "triangle-right": ">", "star": "*", "hexagon": "h",
           "pentagon": "p", "x-thin": "x", "cross-thin": "+", "line-ns": "|", "line-ew": "_"}
PX_TO_PT = 72 / STATIC_DPI  # plotly sizes are pixels, matplotlib's points


def _rgba(color, default="#444444"):
    """A plotly colour ('#rgb', 'rgb(…)', 'rgba(…)', a CSS name) as a matplotlib RGBA tuple."""
    from matplotlib import colors

    if color is None or isinstance(color, (list, tuple)) and not color:
        color = default
    if isinstance(color, str):
        match = re.fullmatch(r"\s*rgba?\(([^)]*)\)\s*", color)
        if match:
            parts = [float(v) for v in match.group(1).split(",")]
            return (*(v / 255 for v in parts[:3]), parts[3] if len(parts) > 3 else 1.0)
    try:
        return colors.to_rgba(color)
    except ValueError:
        return colors.to_rgba(default)


def _plain(text) -> str:
    """Plotly text as plain text: <br> a new line, other tags dropped."""
    return re.sub(r"<[^>]+>", "", re.sub(r"<br\s*/?>", "\n", str(text or "")))


def _values(values) -> np.ndarray | None:
    """A trace's x / y / z as an array: numbers as float (None as NaN), anything else as objects."""
    if values is None:
        return None
    array = np.asarray(values, dtype=object)
    if any(isinstance(v, (str, bytes)) for v in array.ravel()):  # categories, even "0.5"
        return array
    try:
        return np.array([np.nan if v is None else v for v in array.ravel()], dtype=float).reshape(array.shape)
    except (TypeError, ValueError):
        return array


def _colormap(scale):
    from matplotlib.colors import LinearSegmentedColormap

    if isinstance(scale, str):
        import plotly.colors

        scale = plotly.colors.get_colorscale(scale)
    return LinearSegmentedColormap.from_list("plotly", [(float(p), _rgba(c)) for p, c in scale])


def _axis_id(name: str) -> str:
    """'xaxis2' -> 'x2'."""
    return name[0] + name[5:]


def _subplot_axes(fig, canvas, width, height, margins):
    """One matplotlib Axes per (x axis, y axis) pair a trace or an axis anchor uses, placed where
    plotly places it."""
    layout = fig.layout
    pairs = []
    for trace in fig.data:
        pair = (getattr(trace, "xaxis", None) or "x", getattr(trace, "yaxis", None) or "y")
        if pair not in pairs:
            pairs.append(pair)
    for axis in fig.select_xaxes():
        name = axis.plotly_name
        if axis.anchor and axis.anchor != "free" and (_axis_id(name), axis.anchor) not in pairs:
            pairs.append((_axis_id(name), axis.anchor))
    left, right, top, bottom = margins
    plot_w, plot_h = width - left - right, height - top - bottom
    axes = {}
    for x, y in pairs or [("x", "y")]:
        xaxis = layout[f"xaxis{x[1:]}"] if f"xaxis{x[1:]}" in layout else None
        yaxis = layout[f"yaxis{y[1:]}"] if f"yaxis{y[1:]}" in layout else None
        x0, x1 = (xaxis.domain if xaxis is not None and xaxis.domain else (0, 1))
        y0, y1 = (yaxis.domain if yaxis is not None and yaxis.domain else (0, 1))
        ax = canvas.add_axes(((left + x0 * plot_w) / width, (bottom + y0 * plot_h) / height,
                              (x1 - x0) * plot_w / width, (y1 - y0) * plot_h / height))
        axes[(x, y)] = (ax, xaxis, yaxis)
    return axes


def _matched(layout, axis):
    """The axis whose range ``axis`` follows (``matches``: facets share one), else ``axis``."""
    seen = set()
    while axis is not None and axis.matches and axis.matches not in seen:
        seen.add(axis.matches)
        name = f"{axis.matches[0]}axis{axis.matches[1:]}"
        axis = layout[name] if name in layout else None
    return axis


def _prepare_axes(ax, xaxis, yaxis, layout):
    """Before drawing: the scales (a scale change resets an axis's ticks), the look, the titles."""
    ax.tick_params(labelsize=8, colors="#444444", length=3)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.grid(True, color="#e5e5e5", linewidth=0.8)
    ax.set_axisbelow(True)
    for axis, which in ((xaxis, "x"), (yaxis, "y")):
        if axis is None:
            continue
        leader = _matched(layout, axis) or axis
        (ax.set_xscale if which == "x" else ax.set_yscale)("log" if leader.type == "log" else "linear")
        if axis.title.text:
            (ax.set_xlabel if which == "x" else ax.set_ylabel)(_plain(axis.title.text), fontsize=9, color="#2a3f5f")


def _finish_axes(ax, xaxis, yaxis, has_image, layout):
    """After drawing: the layout's ranges and direction, its own ticks, hidden axes."""
    for axis, which in ((xaxis, "x"), (yaxis, "y")):
        if axis is None:
            continue
        leader = _matched(layout, axis) or axis
        if leader.range is not None and None not in leader.range:
            low, high = (10 ** float(v) for v in leader.range) if leader.type == "log" else leader.range
            (ax.set_xlim if which == "x" else ax.set_ylim)(low, high)
        if leader.autorange == "reversed":
            (ax.invert_xaxis if which == "x" else ax.invert_yaxis)()
        if axis.tickvals is not None:
            (ax.set_xticks if which == "x" else ax.set_yticks)(
                list(axis.tickvals), [_plain(t) for t in axis.ticktext] if axis.ticktext is not None else None)
        if axis.visible is False or axis.showticklabels is False:
            ax.tick_params(axis=which, labelbottom=False, labelleft=False, length=0)
        if axis.visible is False:
            ax.grid(False, axis=which)
    if has_image:
        ax.set_aspect("equal")
        ax.axis("off")


def _draw_scatter(ax, trace, color):
    x, y = _values(trace.x), _values(trace.y)
    if y is None:
        return None
    if x is None:
        x = np.arange(len(y))
    mode = trace.mode or ("lines+markers" if len(y) < 20 else "lines")
    line, marker = trace.line, trace.marker
    color = _rgba(line.color or (marker.color if isinstance(marker.color, str) else None), color)
    symbol = marker.symbol if isinstance(marker.symbol, str) else "circle"
    hollow = symbol.endswith("-open")
    style = dict(color=color, alpha=trace.opacity if trace.opacity is not None else 1.0)
    if "lines" in mode:
        style.update(linestyle=DASH_STYLES.get(line.dash or "solid", "-"),
                     linewidth=(line.width if line.width is not None else 2) * PX_TO_PT)
    else:
        style.update(linestyle="none")
    if "markers" in mode:
        step = max(1, len(y) // marker.maxdisplayed) if marker.maxdisplayed else 1
        style.update(marker=MARKERS.get(symbol.replace("-open", "").replace("-dot", ""), "o"),
                     markersize=(marker.size if isinstance(marker.size, (int, float)) else 6) * PX_TO_PT * 1.1,
                     markevery=step, markerfacecolor="none" if hollow else _rgba(
                         marker.color if isinstance(marker.color, str) else None, color),
                     markeredgecolor=_rgba(marker.line.color if isinstance(marker.line.color, str) else None, color),
                     markeredgewidth=(marker.line.width if isinstance(marker.line.width, (int, float)) else 0.8)
                     * PX_TO_PT + (0.8 if hollow else 0))
    (artist,) = ax.plot(list(x), list(y), **style)
    return artist


def _bar_positions(traces_on_axes):
    """Category -> position on an axis shared by several bar traces (categories in order of appearance)."""
    positions = {}
    for trace in traces_on_axes:
        values = _values(trace.x if (trace.orientation or "v") == "v" else trace.y)
        if values is not None and values.dtype == object:
            for value in values:
                positions.setdefault(value, len(positions))
    return positions


def _draw_bars(ax, trace, color, index, count, mode, positions, bottoms):
    vertical = (trace.orientation or "v") == "v"
    where, length = (_values(trace.x), _values(trace.y)) if vertical else (_values(trace.y), _values(trace.x))
    if length is None:
        return None
    if where is None:
        where = np.arange(len(length), dtype=float)
    categorical = where.dtype == object
    centres = np.array([positions[v] for v in where], dtype=float) if categorical else where.astype(float)
    if trace.width is not None and np.ndim(trace.width) == 0:
        full = float(trace.width)
    else:
        spacing = np.diff(np.unique(centres))
        full = 0.8 * (float(spacing.min()) if spacing.size else 1.0)
    size = full / count if mode == "group" else full
    shift = (index - (count - 1) / 2) * size if mode == "group" else 0.0
    length = np.nan_to_num(length.astype(float))
    base = np.zeros_like(length)
    if mode in ("stack", "relative"):
        base = np.array([bottoms.get(c, 0.0) for c in centres])
        for c, value in zip(centres, length):
            bottoms[c] = bottoms.get(c, 0.0) + value
    marker_color = trace.marker.color
    colours = [_rgba(c, color) for c in marker_color] if isinstance(marker_color, (list, tuple, np.ndarray)) \
        else _rgba(marker_color, color)
    alpha = trace.opacity if trace.opacity is not None else (0.75 if mode == "overlay" else 1.0)
    draw = ax.bar if vertical else ax.barh
    kwargs = dict(width=size) if vertical else dict(height=size)
    artist = draw(centres + shift, length, color=colours, alpha=alpha,
                  **({"bottom": base} if vertical else {"left": base}), **kwargs)
    if categorical:
        ticks = sorted(positions.items(), key=lambda item: item[1])
        (ax.set_xticks if vertical else ax.set_yticks)([p for _, p in ticks], [str(v) for v, _ in ticks])
    return artist


def _draw_histogram(ax, trace, color, mode):
    values = _values(trace.x)
    if values is None:
        return None
    values = values[np.isfinite(values)]
    bins = trace.xbins
    if bins.start is not None and bins.end is not None and bins.size:
        edges = np.arange(float(bins.start), float(bins.end) + float(bins.size) / 2, float(bins.size))
    else:
        edges = np.histogram_bin_edges(values, bins=trace.nbinsx or "auto")
    counts, edges = np.histogram(values, bins=edges)
    alpha = trace.opacity if trace.opacity is not None else 1.0
    return ax.bar(edges[:-1], counts, width=np.diff(edges), align="edge", alpha=alpha,
                  color=_rgba(trace.marker.color if isinstance(trace.marker.color, str) else None, color),
                  linewidth=0)


def _draw_heatmap(ax, trace, layout):
    from matplotlib.colors import Normalize

    z = _values(trace.z)
    if z is None or z.ndim != 2:
        return None
    z = z.astype(float)
    coloraxis = layout[trace.coloraxis] if trace.coloraxis and trace.coloraxis in layout else None
    scale = trace.colorscale or (coloraxis.colorscale if coloraxis is not None else None) \
        or layout.template.layout.colorscale.sequential or "Viridis"
    low = trace.zmin if trace.zmin is not None else (coloraxis.cmin if coloraxis is not None else None)
    high = trace.zmax if trace.zmax is not None else (coloraxis.cmax if coloraxis is not None else None)
    finite = z[np.isfinite(z)]
    low = float(finite.min()) if low is None and finite.size else (0.0 if low is None else float(low))
    high = float(finite.max()) if high is None and finite.size else (1.0 if high is None else float(high))
    norm = Normalize(low, high if high > low else low + 1)
    cmap = _colormap(scale)
    labels = {}
    edges = []
    for which, values, n in (("x", _values(trace.x), z.shape[1]), ("y", _values(trace.y), z.shape[0])):
        if values is None or values.dtype == object or len(values) != n:
            labels[which] = [str(v) for v in values] if values is not None and len(values) == n else None
            edges.append(np.arange(n + 1) - 0.5)
        else:
            centres = values.astype(float)
            inner = (centres[1:] + centres[:-1]) / 2
            first = centres[0] - (inner[0] - centres[0]) if n > 1 else centres[0] - 0.5
            last = centres[-1] + (centres[-1] - inner[-1]) if n > 1 else centres[-1] + 0.5
            edges.append(np.concatenate([[first], inner, [last]]))
    mesh = ax.pcolormesh(edges[0], edges[1], np.ma.masked_invalid(z), cmap=cmap, norm=norm, shading="flat")
    for which in ("x", "y"):
        if labels.get(which) is not None:
            positions = range(len(labels[which]))
            (ax.set_xticks if which == "x" else ax.set_yticks)(list(positions), labels[which])
    template = trace.texttemplate
    if template:
        match = re.search(r"%\{z(?::([^}]*))?\}", template)
        spec = (match.group(1) or "") if match else ""
        centres_x = (edges[0][1:] + edges[0][:-1]) / 2
        centres_y = (edges[1][1:] + edges[1][:-1]) / 2
        for i, cy in enumerate(centres_y):
            for j, cx in enumerate(centres_x):
                if np.isfinite(z[i, j]):
                    r, g, b, _ = cmap(norm(z[i, j]))
                    ax.text(cx, cy, format(z[i, j], spec.lstrip("%")) if spec else f"{z[i, j]:g}", ha="center",
                            va="center", fontsize=7, color="black" if 0.3 * r + 0.59 * g + 0.11 * b > 0.5 else "white")
    shows = trace.showscale is not False and (coloraxis is None or coloraxis.showscale is not False)
    title = None
    if coloraxis is not None and coloraxis.colorbar.title.text:
        title = coloraxis.colorbar.title.text
    elif trace.colorbar.title.text:
        title = trace.colorbar.title.text
    return mesh, shows, title


def _draw_image(ax, trace):
    from PIL import Image as PILImage

    if trace.source:
        data = base64.b64decode(trace.source.split(",", 1)[1])
        picture = np.asarray(PILImage.open(io.BytesIO(data)).convert("RGB"))
    elif trace.z is not None:
        picture = np.asarray(trace.z, dtype=np.uint8)
    else:
        return None
    x0, y0 = trace.x0 or 0, trace.y0 or 0
    dx, dy = trace.dx or 1, trace.dy or 1
    height, width = picture.shape[:2]
    ax.imshow(picture, extent=(x0 - dx / 2, x0 + (width - 0.5) * dx, y0 + (height - 0.5) * dy, y0 - dy / 2),
              interpolation="nearest")
    return None


def _target(axes, ref: str | None, which: str):
    """The Axes and the kind of coordinate ('data', 'domain', 'paper') of an annotation's or a
    shape's xref / yref ('x2', 'x2 domain', 'paper')."""
    ref = ref or "paper"
    if ref == "paper":
        return None, "paper"
    name, _, domain = ref.partition(" ")
    for (x, y), (ax, _, _) in axes.items():
        if (x if which == "x" else y) == name:
            return ax, "domain" if domain else "data"
    return None, "paper"


def _transform(canvas, axes, xref, yref, margins, size):
    """A matplotlib transform from plotly (x, y) in their refs to the figure."""
    from matplotlib.transforms import Affine2D, blended_transform_factory

    width, height = size
    left, right, top, bottom = margins
    paper = Affine2D().scale((width - left - right) / width, (height - top - bottom) / height) \
        .translate(left / width, bottom / height) + canvas.transFigure
    parts = []
    for ref, which in ((xref, "x"), (yref, "y")):
        ax, kind = _target(axes, ref, which)
        if ax is None:
            parts.append(paper)
        elif kind == "domain":
            parts.append(ax.transAxes)
        else:
            parts.append(ax.transData)
    return blended_transform_factory(parts[0], parts[1])


def _draw_shapes(canvas, axes, fig, margins, size):
    for shape in fig.layout.shapes:
        if shape.type not in ("line", "rect") or None in (shape.x0, shape.x1, shape.y0, shape.y1):
            continue
        transform = _transform(canvas, axes, shape.xref, shape.yref, margins, size)
        color = _rgba(shape.line.color, "#444444")
        style = dict(transform=transform, color=color, clip_on=False,
                     linewidth=(shape.line.width if shape.line.width is not None else 2) * PX_TO_PT,
                     linestyle=DASH_STYLES.get(shape.line.dash or "solid", "-"))
        target = next((ax for ref, which in ((shape.xref, "x"), (shape.yref, "y"))
                       for ax in [_target(axes, ref, which)[0]] if ax is not None), None)
        artist_parent = target if target is not None else canvas
        if shape.type == "line":
            from matplotlib.lines import Line2D

            artist_parent.add_artist(Line2D([shape.x0, shape.x1], [shape.y0, shape.y1], **style))
        else:
            from matplotlib.patches import Rectangle

            fill = _rgba(shape.fillcolor, "none") if shape.fillcolor else "none"
            artist_parent.add_artist(Rectangle((shape.x0, shape.y0), shape.x1 - shape.x0, shape.y1 - shape.y0,
                                               transform=transform, facecolor=fill, edgecolor=color,
                                               alpha=shape.opacity if shape.opacity is not None else 1.0,
                                               linewidth=style["linewidth"], clip_on=False))


def _draw_annotations(canvas, axes, fig, margins, size):
    for annotation in fig.layout.annotations:
        if not annotation.text or annotation.x is None or annotation.y is None:
            continue
        transform = _transform(canvas, axes, annotation.xref, annotation.yref, margins, size)
        ha = {"left": "left", "right": "right"}.get(annotation.xanchor, "center")
        va = {"top": "top", "bottom": "bottom", "middle": "center"}.get(annotation.yanchor, "center")
        # plotly.js keeps a few pixels between a left- or right-anchored label and its point.
        nudge = {"left": 3, "right": -3}.get(annotation.xanchor, 0) if annotation.xref not in (None, "paper") else 0
        shift = ((annotation.xshift or 0) + nudge, annotation.yshift or 0)
        if annotation.xref not in (None, "paper") and annotation.yref not in (None, "paper") \
                and (annotation.yref or "").endswith("domain"):  # a vline's label: just inside the top
            va = "top" if annotation.y >= 1 else va
        from matplotlib.transforms import offset_copy

        transform = offset_copy(transform, fig=canvas, x=shift[0] * PX_TO_PT, y=shift[1] * PX_TO_PT, units="points")
        canvas.text(annotation.x, annotation.y, _plain(annotation.text), transform=transform, ha=ha, va=va,
                    fontsize=(annotation.font.size or 12) * PX_TO_PT, color=_rgba(annotation.font.color, "#2a3f5f"),
                    multialignment="center", clip_on=False)


def _decoded(value):
    """A figure dict with plotly's base64 typed arrays ({"dtype": "f8", "bdata": …, "shape": "5, 5"},
    how plotly ≥ 6 writes a numpy array) turned back into numpy arrays."""
    if isinstance(value, dict):
        if "bdata" in value and "dtype" in value:
            array = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
            shape = value.get("shape")
            if shape:
                array = array.reshape([int(v) for v in str(shape).split(",")])
            return array
        return {key: _decoded(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_decoded(item) for item in value]
    return value


def _draw_legend(canvas, legend, handles, labels, margins, size):
    """The legend where plotly puts it: vertical at the plot's top right by default, horizontal
    under the plot; ``x`` / ``y`` in the plot's (paper) or the figure's (container) fractions."""
    width, height = size
    left, right, top, bottom = margins
    horizontal = legend.orientation == "h"
    x = legend.x if legend.x is not None else (0.0 if horizontal else 1.02)
    y = legend.y if legend.y is not None else (-0.1 if horizontal else 1.0)
    fx = x if legend.xref == "container" else (left + x * (width - left - right)) / width
    fy = y if legend.yref == "container" else (bottom + y * (height - top - bottom)) / height
    xanchor = legend.xanchor if legend.xanchor in ("left", "center", "right") else "left"
    yanchor = legend.yanchor if legend.yanchor in ("top", "middle", "bottom") else ("bottom" if 0 <= y <= 1 / 3
                                                                                     else "top")
    loc = {"top": "upper", "middle": "center", "bottom": "lower"}[yanchor] + " " + xanchor
    columns = 1
    if horizontal:  # as many entries a row as fit the figure's width
        longest = max(len(label) for label in labels) * 6 + 40
        columns = max(1, min(len(labels), int((width - 20) // longest)))
    title = _plain(legend.title.text) if legend.title.text else None
    canvas.legend(handles, labels, loc="center" if loc == "center center" else loc.replace("center ", ""),
                  bbox_to_anchor=(fx, fy), ncols=columns, frameon=False, fontsize=8, title=title, title_fontsize=8)


def static_png(fig, width: int | None = None, height: int | None = None) -> bytes:
    """A PNG of plotly figure ``fig`` (a ``go.Figure`` or its dict) drawn with matplotlib — no
    browser, no kaleido — at the figure's size (``width`` / ``height`` px, else the layout's, else
    :data:`STATIC_WIDTH` × :data:`STATIC_HEIGHT`). The course's trace types and layouts are drawn
    (scatter, bar, histogram, heatmap, image; subplots, titles, lines, annotations, legends, colour
    bars); what else a figure holds is left out of the copy, never an error."""
    import plotly.graph_objects as go
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not isinstance(fig, go.Figure):
        fig = go.Figure(_decoded(fig), skip_invalid=True)
    layout = fig.layout
    width = int(width or layout.width or STATIC_WIDTH)
    height = int(height or layout.height or STATIC_HEIGHT)
    margin = layout.margin
    margins = tuple(80 if getattr(margin, side) is None else getattr(margin, side) for side in ("l", "r"))
    margins = (*margins, 100 if margin.t is None else margin.t, 80 if margin.b is None else margin.b)
    canvas = Figure(figsize=(width / STATIC_DPI, height / STATIC_DPI), dpi=STATIC_DPI, facecolor="white")
    FigureCanvasAgg(canvas)
    axes = _subplot_axes(fig, canvas, width, height, margins)
    colorway = list(layout.colorway or layout.template.layout.colorway or PLOTLY_COLORWAY)
    barmode = layout.barmode or "group"
    handles, labels, colorbar = [], [], None
    by_axes, stacked = {}, {}  # traces on each pair of axes; a stacked bar chart's tops
    for trace in fig.data:
        by_axes.setdefault((getattr(trace, "xaxis", None) or "x", getattr(trace, "yaxis", None) or "y"),
                           []).append(trace)
    for ax, xaxis, yaxis in axes.values():
        _prepare_axes(ax, xaxis, yaxis, layout)
    for number, trace in enumerate(fig.data):
        key = (getattr(trace, "xaxis", None) or "x", getattr(trace, "yaxis", None) or "y")
        ax = axes[key][0]
        color = colorway[number % len(colorway)]
        artist = None
        if trace.type in ("scatter", "scattergl"):
            artist = _draw_scatter(ax, trace, color)
        elif trace.type == "bar":
            bars = [t for t in by_axes[key] if t.type == "bar"]
            positions = _bar_positions(bars)
            artist = _draw_bars(ax, trace, color, bars.index(trace), len(bars), barmode, positions,
                                stacked.setdefault(key, {}))
        elif trace.type == "histogram":
            artist = _draw_histogram(ax, trace, color, layout.barmode or "stack")
        elif trace.type == "heatmap":
            drawn = _draw_heatmap(ax, trace, layout)
            if drawn is not None and drawn[1] and colorbar is None:
                colorbar = drawn[0], drawn[2]
        elif trace.type == "image":
            _draw_image(ax, trace)
        # plotly.js lists a named trace when the figure has several (or the trace asks to be listed).
        shown = getattr(trace, "showlegend", False)
        listed = shown or (shown is not False and len(fig.data) > 1)
        if artist is not None and trace.name and listed and layout.showlegend is not False \
                and _plain(trace.name) not in labels:
            handles.append(artist)
            labels.append(_plain(trace.name))
    for key, (ax, xaxis, yaxis) in axes.items():
        _finish_axes(ax, xaxis, yaxis, any(t.type == "image" for t in by_axes.get(key, ())), layout)
    _draw_shapes(canvas, axes, fig, margins, (width, height))
    _draw_annotations(canvas, axes, fig, margins, (width, height))
    left, right, top, bottom = margins
    if layout.title.text:
        x = 0.05 if layout.title.x is None else layout.title.x
        canvas.text(x, 1 - 8 / height, _plain(layout.title.text), ha="left", va="top",
                    fontsize=(layout.title.font.size or 17) * PX_TO_PT, color=_rgba(layout.title.font.color, "#2a3f5f"))
    if colorbar is not None:
        cax = canvas.add_axes(((width - right + 10) / width, bottom / height, 12 / width,
                               (height - top - bottom) / height))
        bar = canvas.colorbar(colorbar[0], cax=cax)
        bar.ax.tick_params(labelsize=8)
        if colorbar[1]:
            bar.ax.set_title(_plain(colorbar[1]), fontsize=8, loc="left")
    if handles:
        _draw_legend(canvas, layout.legend, handles, labels, margins, (width, height))
    buffer = io.BytesIO()
    canvas.savefig(buffer, format="png", dpi=STATIC_DPI, bbox_inches="tight", pad_inches=0.1, facecolor="white")
    from PIL import Image as PILImage

    opaque = io.BytesIO()  # RGB: the canvas is opaque, an alpha channel would only add bytes
    PILImage.open(io.BytesIO(buffer.getvalue())).convert("RGB").save(opaque, format="PNG", optimize=True)
    return opaque.getvalue()


def static_bundle(fig_dict) -> dict:
    """The ``image/png`` entry of a notebook output: :func:`static_png` base64-encoded."""
    return {"image/png": base64.b64encode(static_png(fig_dict)).decode("ascii")}


def use_static_copies(interactive: str = "plotly_mimetype") -> None:
    """Make every ``fig.show()`` of this kernel display one output with two copies of the figure:
    plotly's JSON (``interactive``, a plotly renderer name: JupyterLab and VS Code draw it) and a
    static PNG (:func:`static_png`) that a code host's notebook view, nbconvert's HTML export and
    any other viewer show. The notebooks of the course call it in their first cell."""
    import plotly.io as pio

    class StaticCopy(pio.base_renderers.MimetypeRenderer):
        def to_mimebundle(self, fig_dict):
            try:
                return static_bundle(fig_dict)
            except Exception as error:  # a figure this copier cannot draw still shows, interactive
                warnings.warn(f"no static copy of this figure ({type(error).__name__}: {error})", stacklevel=2)
                return {}

    pio.renderers[STATIC_RENDERER] = StaticCopy()
    pio.renderers.default = f"{interactive}+{STATIC_RENDERER}"
