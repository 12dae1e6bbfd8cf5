"""The one source of truth for a browser session: ``AppState``, kept under one session-state key.

The state is a thin, in-memory view of the user's ``Workspace`` (a folder named by an unguessable
token in the URL's ``ws`` parameter). Everything worth keeping is written through to the workspace
as soon as it changes, so a refresh or a new browser tab with the same URL rebuilds the same state.
Process-wide resources (the job registry, the table and image caches) are ``st.cache_resource``
singletons, scoped by token.

The data is one file at a time: a table (``df``; also the source of text and time-series data) or
an image zip (``images``, read from ``image_zip``). ``data_spec`` says how it is used (its ``kind``:
table, images, text or series, and the kind's options); ``data_source()`` is what ``train_model``
and ``prepare_data`` take.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import streamlit as st
from streamlit.runtime.pages_manager import PagesManager

from builder.data import DataSpec, read_table
from builder.data.images import ImageSet, read_image_zip
from builder.data.sources import class_counts
from builder.defaults import suggested_config, training_rows
from builder.editor import DesignHistory
from builder.errors import BuilderError
from builder.jobs import JobRegistry
from builder.spec import ModelSpec
from builder.train import TrainConfig
from builder.trained import TrainedModel
from builder.workers import WorkerPool, configured_workers
from builder.workspace import Workspace

log = logging.getLogger(__name__)

STATE_KEY = "app"
TOKEN_PARAM = "ws"
SHARE_PARAM = "view"  # a view-only link: ?view=<share token> (builder.workspace.Workspace.open_shared)
ROUTED_KEY = "routed"  # set once a session has been sent through app.py's router
PREDICTED_STATE = "predicted"  # workspace state: {"run_id": the run predictions were made with, or None: a bundle}


@st.cache_resource(show_spinner=False)
def job_registry() -> JobRegistry:
    """The process-wide registry of training jobs (each job visible only to its workspace).

    Trainings run in worker processes started here, with the app (``BUILDER_TRAINING_WORKERS``,
    default 2; 0 trains in the server's own threads, as the page tests do).
    """
    workers = configured_workers()
    return JobRegistry(pool=WorkerPool(workers) if workers else None)


@st.cache_resource(show_spinner=False, max_entries=8)
def _read_table_cached(path: str, mtime: float, size: int) -> pd.DataFrame:
    # Keyed by path + mtime + size: a pure function of the file's content. Callers treat the frame
    # as read-only (pandas copy-on-write makes accidental edits copies).
    return read_table(Path(path))


def read_saved_table(path: Path) -> pd.DataFrame:
    stat = path.stat()
    return _read_table_cached(str(path), stat.st_mtime, stat.st_size)


@st.cache_resource(show_spinner="Reading the images...", max_entries=4)
def _read_images_cached(path: str, mtime: float, size: int) -> ImageSet:
    # Like tables: keyed by path + mtime + size, shared read-only. A resource, not cache_data: an
    # ImageSet holds every image file's bytes, and cache_data would copy them all on every rerun.
    return read_image_zip(Path(path))


def read_saved_images(path: Path) -> ImageSet:
    stat = path.stat()
    return _read_images_cached(str(path), stat.st_mtime, stat.st_size)


@dataclass
class AppState:
    """What every page reads and writes. Change it through the ``set_*`` methods (they persist)."""

    workspace: Workspace
    table_name: str | None = None  # the name shown for the data (a table or an image zip)
    df: pd.DataFrame | None = None  # the table, when the data is a table (or text, or a series)
    images: ImageSet | None = None  # the images, when the data is an image zip ...
    image_zip: Path | None = None  # ... saved here in the workspace
    data_spec: DataSpec | None = None
    design: ModelSpec | None = None
    design_history: DesignHistory = field(default_factory=DesignHistory)
    config: TrainConfig = field(default_factory=TrainConfig)
    job_id: str | None = None
    run_id: str | None = None
    trained: TrainedModel | None = None
    editor_version: int = 0  # bumped when the design changes, so the editor rebuilds its frame
    exported: bool = False
    predicted: bool = False  # predictions were shown for the current model (or with a bundle)

    # --- restore from the workspace ---------------------------------------------------------------

    @classmethod
    def restore(cls, workspace: Workspace) -> AppState:
        """Rebuild the state of ``workspace`` after a refresh or a server restart."""
        state = cls(workspace=workspace)
        data = workspace.data_file()
        if data is not None:
            try:
                if data.kind == "images":
                    state.images, state.image_zip = read_saved_images(data.path), data.path
                else:
                    state.df = read_saved_table(data.path)
                state.table_name = data.name
            except BuilderError as exc:
                log.warning("saved data could not be read again: %s", exc)
        if (data_spec := workspace.load_state("data_spec")) is not None:
            state.data_spec = DataSpec.from_dict(data_spec)
        if (design := workspace.load_state("design")) is not None:
            try:
                state.design = ModelSpec.from_dict(design, strict=False)
            except BuilderError:
                state.design = None
        if (config := workspace.load_state("train_config")) is not None:
            try:
                state.config = TrainConfig.from_dict(config)
            except BuilderError:
                state.config = TrainConfig()
        state.job_id = workspace.load_state("job_id")
        state.run_id = workspace.load_state("run_id")
        if state.run_id:
            try:
                state.trained = workspace.load_run(state.run_id)
            except BuilderError as exc:
                log.warning("saved run could not be loaded: %s", exc)
                state.run_id = None
        bundle = workspace.load_state("bundle") or {}
        state.exported = bool(state.run_id) and bundle.get("run_id") == state.run_id
        predicted = workspace.load_state(PREDICTED_STATE) or {}
        state.predicted = bool(predicted) and predicted.get("run_id") in (None, state.run_id)
        return state

    # --- changes (each one written through) ---------------------------------------------------------

    def set_table(self, name: str, content: bytes) -> None:
        """Keep a new upload: read it first, so a bad file never replaces good data."""
        df = read_table(content, name=name)
        self.workspace.save_table(name, content)
        self._use(name, df=df)

    def set_images(self, name: str, content: bytes, title: str | None = None) -> None:
        """Keep a new image zip: read and check every image first, so a bad zip never replaces good data.

        Raises:
            DataError: not a zip, one class only, a damaged image...: the message says which and why.
        """
        images = read_image_zip(content)
        path = self.workspace.save_images(name, content, title=title)
        self._use(title or name, images=images, image_zip=path)

    def set_sample(self, name: str, title: str, df: pd.DataFrame) -> None:
        content = df.to_csv(index=False).encode("utf-8")
        self.workspace.save_table(f"{name}.csv", content, title=f"{title} (sample)")
        self._use(f"{title} (sample)", df=df)

    def _use(self, name: str, df: pd.DataFrame | None = None, images: ImageSet | None = None,
             image_zip: Path | None = None) -> None:
        self.table_name, self.df, self.images, self.image_zip = name, df, images, image_zip
        self.set_data_spec(None)

    def set_data_spec(self, data_spec: DataSpec | None) -> None:
        changed = data_spec != self.data_spec
        self.data_spec = data_spec
        self.workspace.save_state("data_spec", data_spec.to_dict() if data_spec else None)
        if changed and data_spec is not None:
            self.suggest_config()

    def suggest_config(self) -> None:
        """Start the Train page from the settings suggested for this data (``builder.defaults``),
        keeping the user's seed, device and held-out shares."""
        source = self.loaded_data
        if source is None or self.data_spec is None:
            return
        kept = {name: getattr(self.config, name) for name in ("seed", "device", "val_fraction", "test_fraction")}
        n_rows = training_rows(len(source), kept["val_fraction"], kept["test_fraction"])
        self.set_config(suggested_config(self.data_spec.kind, self.data_spec.task, n_rows, **kept))

    def set_design(self, design: ModelSpec | None, record_undo: bool = True) -> None:
        if design == self.design:
            return  # unchanged: keep the editor's frame (and any edit in progress) as it is
        if record_undo and self.design is not None and design != self.design:
            self.design_history.record(self.design)
        self.design = design
        self.editor_version += 1
        self.workspace.save_state("design", design.to_dict() if design else None)

    def set_config(self, config: TrainConfig) -> None:
        self.config = config
        self.workspace.save_state("train_config", config.to_dict())

    def set_job(self, job_id: str | None) -> None:
        self.job_id = job_id
        self.workspace.save_state("job_id", job_id)

    def set_trained(self, trained: TrainedModel | None, run_id: str | None) -> None:
        self.trained, self.run_id, self.exported, self.predicted = trained, run_id, False, False
        self.workspace.save_state("run_id", run_id)

    def set_predicted(self, run_id: str | None) -> None:
        """Predictions were shown: with the run ``run_id``, or (``None``) with an uploaded bundle."""
        if not self.predicted:
            self.predicted = True
            self.workspace.save_state(PREDICTED_STATE, {"run_id": run_id})

    # --- the data, as training takes it ---------------------------------------------------------------

    @property
    def data_kind(self) -> str | None:
        """What the loaded file is: ``"images"`` (a zip), ``"table"`` (any table file) or ``None``."""
        if self.images is not None:
            return "images"
        return "table" if self.df is not None else None

    @property
    def loaded_data(self) -> pd.DataFrame | ImageSet | None:
        """The data in memory: the images when an image zip is loaded, else the table."""
        return self.images if self.images is not None else self.df

    def data_source(self) -> pd.DataFrame | Path | None:
        """What ``train_model`` and ``prepare_data`` take with ``data_spec``: the table (tables,
        text, time series) or the saved image zip's path (images); ``None`` when nothing is loaded."""
        if self.images is not None:
            return self.image_zip
        return self.df

    def class_counts(self) -> dict[str, int] | None:
        """Rows (or images) per class when the task is classification, else ``None``."""
        if self.data_spec is None:
            return None
        return class_counts(self.loaded_data, self.data_spec)

    # --- journey ---------------------------------------------------------------------------------

    @property
    def has_data(self) -> bool:
        """Something trainable is loaded: data, and a data spec that fits it."""
        if self.data_source() is None or self.data_spec is None:
            return False
        return (self.data_spec.kind == "images") == (self.data_kind == "images")

    @property
    def has_design(self) -> bool:
        return self.design is not None

    @property
    def has_model(self) -> bool:
        return self.trained is not None


def ensure_router() -> None:
    """Make sure the page runs under app.py's ``st.navigation``, never on its own.

    Streamlit flags an app with a ``pages/`` folder as a legacy multipage app when the server
    starts, until the first run of ``st.navigation``. So the first visit after a restart through a
    bookmarked page address (``/train?ws=...``) would run that page without app.py: no journey,
    no engine start-up. Clearing the flag and rerunning sends that run through app.py, which then
    opens the intended page.
    """
    if PagesManager.uses_pages_directory and not st.session_state.get(ROUTED_KEY):
        # Once per session: Streamlit's test harness resets the flag before every run, and a
        # rerun on every run would swallow button clicks.
        st.session_state[ROUTED_KEY] = True
        PagesManager.uses_pages_directory = False
        st.rerun()


def view_only_link() -> str | None:
    """The share token of a view-only link (``?view=...``) this session was opened with, if any."""
    state = st.session_state.get(STATE_KEY)
    if state is not None:
        return state.workspace.token if state.workspace.read_only else None
    return st.query_params.get(SHARE_PARAM) or None


def app_state() -> AppState:
    """Return this session's state, restoring it from the URL's token on first use.

    A view-only link (``?view=<share token>``) opens the owner's workspace read-only: the workspace
    itself refuses every change (``ReadOnlyError``), whatever a page tries.

    Raises:
        ReadOnlyError: the view-only link does not work (revoked, or never made).
        WorkspaceLimitError: a new workspace is needed and this machine keeps as many as it may.
    """
    ensure_router()
    state = st.session_state.get(STATE_KEY)
    if state is None:
        shared = st.query_params.get(SHARE_PARAM)
        if shared:
            workspace = Workspace.open_shared(shared)
        else:
            workspace = Workspace.open(st.query_params.get(TOKEN_PARAM))
        state = AppState.restore(workspace)
        st.session_state[STATE_KEY] = state
    # Page switches can drop query parameters: put the token back on every run.
    param = SHARE_PARAM if state.workspace.read_only else TOKEN_PARAM
    if st.query_params.get(param) != state.workspace.token:
        st.query_params[param] = state.workspace.token
    return state
