"""The image panel of the Data page: classes with counts, example pictures, size and augmentation.

The zip was read and every image checked when it was loaded (``AppState.set_images``); this panel
only shows it and takes the two choices training needs: the size the model sees and whether the
training pictures are varied a little each epoch.
"""

from __future__ import annotations

import io
from collections import Counter

import numpy as np
import plotly.graph_objects as go
import streamlit as st
from PIL import Image

from builder.data import DataSpec
from builder.data.images import MAX_SIDE, ImageSet, choose_size
from pages.components.data_view import data_key, table_title
from pages.components.i18n import t, tm
from pages.components.state import AppState
from pages.components.ui import COLOURS

PER_CLASS = 8  # example pictures per class
SHOWN_CLASSES = 12  # classes with examples shown at once; the rest in an expander
THUMB_SIDE = 64
FEW_IMAGES = 20  # fewer per class than this and a network mostly memorises
SQUARE_SIDES = (8, 16, 24, 28, 32, 48, 64)
AUGMENT = {False: "No changes", True: "Shift a little (recommended)", "flip": "Shift and mirror (photos)"}


# --- pure helpers (unit-tested) -------------------------------------------------------------------


def size_choices(sizes: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """``(height, width)`` choices: the suggested size (from the images) first, then squares."""
    suggested = choose_size(sizes)
    return [suggested, *[(s, s) for s in SQUARE_SIDES if (s, s) != suggested]]


def class_examples(labels: list[str], classes: list[str], per_class: int = PER_CLASS) -> dict[str, list[int]]:
    """The positions of the first ``per_class`` images of each class, in class order."""
    found: dict[str, list[int]] = {name: [] for name in classes}
    for i, label in enumerate(labels):
        if len(found[label]) < per_class:
            found[label].append(i)
    return found


def thumbnail(data: bytes, side: int = THUMB_SIDE) -> bytes:
    """A PNG no larger than ``side``: small pictures are enlarged with crisp pixels, large ones shrunk."""
    image = Image.open(io.BytesIO(data))
    image.seek(0)
    image = image.convert("RGBA" if "A" in image.getbands() or "transparency" in image.info else "RGB")
    scale = side / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    image = image.resize(size, Image.Resampling.NEAREST if scale > 1 else Image.Resampling.LANCZOS)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def typical_size(images: ImageSet) -> tuple[str, tuple[str, str] | None]:
    """The median width x height of the images, and the smallest and largest when they differ."""
    widths, heights = [s[0] for s in images.sizes], [s[1] for s in images.sizes]
    typical = f"{int(np.median(widths))}x{int(np.median(heights))}"
    if len(set(images.sizes)) == 1:
        return typical, None
    return typical, (f"{min(widths)}x{min(heights)}", f"{max(widths)}x{max(heights)}")


def _size_help(images: ImageSet) -> str:
    typical, spread = typical_size(images)
    if spread is None:
        return t("Width x height in pixels: {size}. All are resized to one size.", size=typical)
    return t("Width x height in pixels: {size} (from {smallest} to {largest}). All are resized to one size.",
             size=typical, smallest=spread[0], largest=spread[1])


def _size_label(size: tuple[int, int], suggested: tuple[int, int]) -> str:
    if size == suggested:
        return t("{width} x {height} pixels (suggested: typical of your pictures)", width=size[1], height=size[0])
    return t("{width} x {height} pixels", width=size[1], height=size[0])


@st.cache_data(show_spinner=False, max_entries=4)
def _thumbnails(key: str, _images: ImageSet) -> dict[str, list[bytes]]:
    picked = class_examples(_images.labels, _images.classes)
    return {name: [thumbnail(_images.data[i]) for i in idx] for name, idx in picked.items()}


# --- drawing ----------------------------------------------------------------------------------------


def _counts_figure(counts: dict[str, int]) -> go.Figure:
    hover = t("{label}: {count} images", label="%{y}", count="%{x}") + "<extra></extra>"
    fig = go.Figure(go.Bar(x=list(counts.values()), y=[str(c) for c in counts], orientation="h",
                           marker_color=COLOURS["model"], hovertemplate=hover))
    fig.update_layout(template="plotly_white", height=max(160, 22 * len(counts) + 60),
                      margin=dict(l=10, r=10, t=10, b=10), yaxis=dict(autorange="reversed", type="category"))
    fig.update_xaxes(title_text=t("Images"))
    return fig


def _class_rows(names: list[str], thumbs: dict[str, list[bytes]], counts: dict[str, int]) -> None:
    for name in names:
        label, pictures = st.columns([1, 6], vertical_alignment="center")
        label.markdown(f"**{name}**  \n" + t("{n:,} images", n=counts[name]))
        pictures.image(thumbs[name], width=THUMB_SIDE)


def _examples(state: AppState, images: ImageSet) -> None:
    with st.spinner(t("Drawing example pictures...")):
        thumbs = _thumbnails(data_key(state), images)
    names = list(thumbs)
    _class_rows(names[:SHOWN_CLASSES], thumbs, images.counts)
    if len(names) > SHOWN_CLASSES:
        with st.expander(t("Examples of the other {n} classes", n=len(names) - SHOWN_CLASSES)):
            _class_rows(names[SHOWN_CLASSES:], thumbs, images.counts)


def image_panel(state: AppState, suffix: str) -> DataSpec:
    """What is in the zip and the two choices; returns the data spec (always usable: the zip was checked)."""
    images = state.images
    counts, classes = images.counts, images.classes
    gray = Counter(images.gray)[True] * 2 > len(images)
    st.subheader(table_title(state), anchor=False)
    cards = st.columns(4)
    cards[0].metric(t("Images"), f"{len(images):,}", help=t("Pictures the model can learn from."), border=True)
    cards[1].metric(t("Classes"), len(classes), help=t("One per folder: the answers the model can give."),
                    border=True)
    cards[2].metric(t("Typical size"), typical_size(images)[0], border=True, help=_size_help(images))
    cards[3].metric(t("Colour"), t("Grayscale") if gray else t("Colour"), border=True,
                    help=t("Most pictures decide; the others are converted."))

    saved = state.data_spec if state.data_spec is not None and state.data_spec.kind == "images" else None
    options = saved.options if saved else {}
    chart, settings = st.columns([2, 3], gap="large")
    with chart:
        st.markdown(f"**{t('Images per class')}**")
        st.plotly_chart(_counts_figure(counts), key="data_class_counts")
    with settings:
        choices = size_choices(images.sizes)
        start = tuple(options["size"]) if options.get("size") else choices[0]
        choices = choices if start in choices else [*choices, start]
        labels = {s: _size_label(s, choices[0]) for s in choices}
        size = st.selectbox(
            t("Size the model sees"), choices, index=choices.index(start), key=f"data_image_size_{suffix}",
            format_func=lambda s: labels[tuple(s)],
            help=t("Every picture is resized to this. Larger keeps more detail but trains slower; "
                   "the suggestion is at most {side} pixels a side.", side=MAX_SIDE))
        augment = st.radio(t("Vary the training pictures"), list(AUGMENT),
                           format_func={a: t(label) for a, label in AUGMENT.items()}.get,
                           index=list(AUGMENT).index(options.get("augment", True)), key=f"data_augment_{suffix}",
                           help=t("Each epoch, training pictures change a little, so the model learns the "
                                  "shapes rather than exact pixels. Validation and test pictures never change."))
        st.caption(":material/lightbulb: " + t(
            "Shifting moves each picture by a pixel or two. Mirroring also flips half of them left to right: "
            "right for photos of things (a mirrored cat is still a cat), wrong for digits and letters (a "
            "mirrored 2 is not a 2, and a 7 could look like nothing)."))
    if images.empty_note:  # a class folder with no picture: the model would not know that class
        st.warning(tm(images.empty_note), icon=":material/folder_off:")
    small = [name for name in classes if counts[name] < FEW_IMAGES]
    if small:
        st.warning(t("{n} class(es) have fewer than {few} images ({names}). A network needs a few dozen per "
                     "class to learn well; add pictures if you can.", n=len(small), few=FEW_IMAGES,
                     names=", ".join(small[:5])), icon=":material/warning:")
    if max(counts.values()) > 5 * min(counts.values()):
        st.warning(t("Some classes have over 5 times as many images as others; the model will favour them. "
                     "Accuracy alone can mislead: look at the per-class results on the Evaluate page."),
                   icon=":material/warning:")
    st.markdown(f"**{t('Examples per class')}**")
    _examples(state, images)
    task = "binary" if len(classes) == 2 else "multiclass"
    return DataSpec(None, task, [], kind="images", options={"augment": augment, "size": [int(size[0]), int(size[1])]})
