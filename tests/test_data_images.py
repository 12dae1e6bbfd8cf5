"""Image zips: reading class folders, refusing bad zips, preprocessing, augmentation, preparation."""

from __future__ import annotations

import ast
import functools
import io
import json
import logging
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.linear_model import LogisticRegression

from builder.data.images import (
    ImagePreprocessor,
    ImageSet,
    choose_size,
    prepare_images,
    read_image_zip,
    sort_classes,
)
from builder.errors import DataError
from tests.image_fixtures import image_bytes, make_digits_zip, make_zip, solid

ROOT = Path(__file__).resolve().parents[1]
MODULE = ROOT / "builder" / "data" / "images.py"


@functools.cache
def digits_zip() -> bytes:
    return make_digits_zip(n_per_class=50)


@functools.cache
def digits() -> ImageSet:
    return read_image_zip(digits_zip())


@functools.cache
def prepared():
    return prepare_images(digits_zip(), val_fraction=0.15, test_fraction=0.2, seed=0)


# -- reading --------------------------------------------------------------------------------------


def test_classes_are_found_at_any_depth_and_junk_is_skipped(tmp_path, caplog):
    path = make_digits_zip(tmp_path / "digits.zip", n_per_class=5)
    with caplog.at_level(logging.INFO, logger="builder.data.images"):
        images = read_image_zip(path)
    assert images.classes == [str(d) for d in range(10)]
    assert images.counts == {str(d): 5 for d in range(10)}
    depths = {p.count("/") for p in images.paths}
    assert depths == {2, 3, 5}  # digits/0/x, digits/set/1/x, digits/set/set/more/2/x
    assert all(Path(p).parent.name == label for p, label in zip(images.paths, images.labels, strict=True))
    assert not any("MACOSX" in p or "Thumbs" in p or p.endswith((".txt", ".DS_Store")) for p in images.paths)
    assert "Skipped" in caplog.text and "hidden" in caplog.text
    assert images.paths == sorted(images.paths)
    assert images.images[0].size == (16, 16) and len(images.images) == 50


def test_reads_bytes_paths_and_file_objects_alike(tmp_path):
    data = make_digits_zip(n_per_class=3, classes=(1, 7))
    path = tmp_path / "d.zip"
    path.write_bytes(data)
    a, b, c = read_image_zip(data), read_image_zip(path), read_image_zip(io.BytesIO(data))
    assert a.paths == b.paths == c.paths and a.data == b.data == c.data


def test_class_names_sort_naturally():
    assert sort_classes(["img10", "img2", "b", "a", "img1"]) == ["a", "b", "img1", "img2", "img10"]


@pytest.mark.parametrize(
    "source, words",
    [
        (b"this is not a zip", ["not a zip archive", "one folder of images"]),
        (make_zip({"a/notes.txt": "hello", "b/data.csv": "x,y"}), ["no images", "2 other file(s)"]),
        (make_zip({"one.png": solid("red"), "two.png": solid("blue")}), ["none inside a folder"]),
        (make_zip({"cats/1.png": solid("red"), "cats/2.png": solid("red")}), ["one class ('cats')"]),
        (
            make_zip({"cats/1.png": solid("red"), "cats/2.png": solid("red"), "dogs/1.png": solid("blue")}),
            ["'dogs' (1)", "fewer than 2 images"],
        ),
        (
            make_zip({"a/1.png": solid("red"), "a/2.png": solid("red"), "b/1.png": solid("blue"),
                      "b/broken.png": b"\x89PNG\r\n\x1a\n garbage"}),
            ["'b/broken.png'", "damaged"],
        ),
        (
            make_zip({"a/1.png": solid("red"), "a/2.png": solid("red"), "b/1.png": solid("blue"),
                      "b/cut.jpg": image_bytes(Image.new("RGB", (40, 40), "blue"), "JPEG")[:60]}),
            ["'b/cut.jpg'", "damaged"],
        ),
        (
            make_zip({"a/1.png": solid("red"), "a/2.png": solid("red"), "b/1.png": solid("blue"),
                      "../b/evil.png": solid("blue")}),
            ["'../b/evil.png'", "outside the folder", "refused"],
        ),
        (
            make_zip({"a/1.png": solid("red"), "a/2.png": solid("red"), "b/1.png": solid("blue"),
                      "b/bomb.png": b"\x00" * (3 * 1024 * 1024)}),
            ["'b/bomb.png'", "zip bomb"],
        ),
    ],
    ids=["not-zip", "no-images", "no-folders", "one-class", "small-class", "damaged", "truncated",
         "traversal", "bomb"],
)
def test_bad_zips_are_refused_with_a_clear_message(source, words):
    with pytest.raises(DataError) as caught:
        read_image_zip(source)
    message = str(caught.value)
    for word in words:
        assert word in message, message
    assert "Export the model" not in message  # safezip's bundle advice is reworded for images


def test_too_many_images_is_refused():
    with pytest.raises(DataError, match="holds 30 images, more than the 20 allowed"):
        read_image_zip(make_digits_zip(n_per_class=10, classes=(0, 1, 2)), max_images=20)


# -- pixels ---------------------------------------------------------------------------------------


def test_colour_pixels_keep_their_channel_order():
    images = [solid((255, 0, 0)), solid((0, 0, 255)), solid((0, 255, 0))]
    pre = ImagePreprocessor().fit(images, labels=["red", "blue", "green"])
    X = pre.transform(images)  # (3, 3, H, W)
    assert X.shape == (3, 3, 8, 8) and X.dtype == np.float32
    raw = X * np.array(pre.std)[None, :, None, None] + np.array(pre.mean)[None, :, None, None]
    np.testing.assert_allclose(raw[:, :, 0, 0], np.eye(3)[[0, 2, 1]], atol=1e-6)
    np.testing.assert_allclose(pre.mean, [1 / 3] * 3, atol=1e-9)


def test_gif_first_frame_transparency_and_16_bit_grayscale():
    frames = [Image.new("L", (8, 8), 0), Image.new("L", (8, 8), 255)]
    gif = io.BytesIO()
    frames[0].save(gif, format="GIF", save_all=True, append_images=frames[1:])
    clear = image_bytes(Image.new("RGBA", (8, 8), (0, 0, 0, 0)))
    deep = image_bytes(Image.fromarray(np.full((8, 8), 65535, dtype=np.uint16)))
    pre = ImagePreprocessor().fit([gif.getvalue(), clear, deep], channels=1)
    raw = pre.transform([gif.getvalue(), clear, deep]) * pre.std[0] + pre.mean[0]
    np.testing.assert_allclose(raw[:, 0, 0, 0], [0.0, 1.0, 1.0], atol=1e-6)  # black, white, white


def test_mixed_modes_take_the_majority_and_size_follows_the_median():
    images = digits()
    assert sum(images.gray) > len(images) / 2  # 4 of every 6 fixture images are grayscale
    pre = ImagePreprocessor().fit(images)
    assert pre.input_shape == (1, 16, 16)
    colour = read_image_zip(make_digits_zip(n_per_class=3, classes=(0, 1), mixed_modes=False))
    rgb = [Image.open(io.BytesIO(b)).convert("RGB") for b in colour.data]
    assert ImagePreprocessor().fit(rgb[:4] + list(colour.data[4:5])).input_shape[0] == 3
    assert choose_size([(300, 200), (320, 240), (640, 480)]) == (48, 64)  # aspect kept, capped
    assert choose_size([(5, 5), (6, 6)]) == (8, 8)
    assert ImagePreprocessor().fit(images, size=(10, 12)).transform(images.data[:2]).shape == (2, 1, 10, 12)


def test_transform_names_a_damaged_file(tmp_path):
    pre = ImagePreprocessor().fit([solid("red"), solid("blue")])
    bad = tmp_path / "scan.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(DataError, match="scan.png"):
        pre.transform([bad])
    with pytest.raises(DataError, match="does not exist"):
        pre.transform([tmp_path / "missing.png"])
    bare = ImageSet(paths=["a/1.png", "b/1.png"], labels=["a", "b"], data=[solid("red"), solid("blue")])
    assert ImagePreprocessor().fit(bare).classes == ["a", "b"]


# -- preparation ----------------------------------------------------------------------------------


def test_prepare_shapes_targets_and_a_stratified_split():
    data = prepared()
    n = len(digits())
    assert data.task == "multiclass" and data.n_outputs == 10 and data.input_shape == (1, 16, 16)
    assert data.X_train.shape[1:] == data.X_test.shape[1:] == (1, 16, 16)
    assert len(data.X_train) + len(data.X_val) + len(data.X_test) == n
    assert data.y_train.dtype == np.int64 and data.y_train.shape == (len(data.X_train),)
    paths = data.paths_train + data.paths_val + data.paths_test
    assert sorted(paths) == digits().paths  # disjoint and complete
    for labels in (data.labels_train, data.labels_val, data.labels_test):
        assert set(labels) == set(data.classes)  # every class in every set
    assert data.classes[data.y_test[0]] == data.true_targets("test")[0]


def test_mean_and_std_come_from_the_training_images_only():
    data, images = prepared(), digits()
    train_only = ImagePreprocessor().fit(images.subset(data.train_idx), classes=images.classes)
    everything = ImagePreprocessor().fit(images)
    assert data.preprocessor.to_dict() == train_only.to_dict()
    assert data.preprocessor.mean != everything.mean
    assert abs(float(data.X_train.mean())) < 1e-4 and abs(float(data.X_train.std()) - 1) < 1e-3
    assert abs(float(data.X_test.mean())) > 1e-4


def test_binary_targets_are_float_columns_and_decode_to_names():
    data = prepare_images(make_digits_zip(n_per_class=12, classes=(3, 8)), 0.2, 0.2, seed=1)
    assert data.task == "binary" and data.n_outputs == 1
    assert data.y_train.dtype == np.float32 and data.y_train.shape == (len(data.X_train), 1)
    frame = data.preprocessor.decode_outputs(np.array([[-800.0], [0.0], [800.0]]), files=["a", "b", "c"])
    assert list(frame.columns) == ["file", "prediction", "probability_3", "probability_8"]
    assert frame["prediction"].tolist() == ["3", "3", "8"]  # a tie goes to the first class (argmax)
    np.testing.assert_allclose(frame["probability_8"], [0.0, 0.5, 1.0])


def test_json_round_trip_is_bit_identical():
    data = prepared()
    state = json.loads(json.dumps(data.preprocessor.to_dict()))
    again = ImagePreprocessor.from_dict(state)
    assert again.to_dict() == data.preprocessor.to_dict()
    sample = digits().subset(data.test_idx[:40])
    np.testing.assert_array_equal(again.transform(sample), data.X_test[:40])
    assert again.transform(sample).tobytes() == data.X_test[:40].tobytes()
    with pytest.raises(DataError, match="not a saved image preprocessing"):
        ImagePreprocessor.from_dict({"format": "builder.tabular-preprocessor"})
    with pytest.raises(DataError, match="damaged"):
        ImagePreprocessor.from_dict({**state, "std": [0.0]})


def test_decode_outputs_gives_probabilities_that_sum_to_one():
    pre = prepared().preprocessor
    logits = np.random.default_rng(0).normal(scale=50, size=(25, 10))
    logits[0] = 1e308  # huge logits must not overflow
    frame = pre.decode_outputs(logits)
    probabilities = frame[[f"probability_{c}" for c in pre.classes]].to_numpy()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-12)
    assert not np.isnan(probabilities).any()
    assert frame["prediction"].tolist()[1:] == [pre.classes[i] for i in logits[1:].argmax(axis=1)]
    with pytest.raises(DataError, match="gave 3 output value"):
        pre.decode_outputs(np.zeros((2, 3)))
    with pytest.raises(DataError, match="did not appear"):
        pre.encode_target(["7", "eleven"])


def test_logistic_regression_on_the_pixels_beats_90_percent():
    data = prepared()
    model = LogisticRegression(max_iter=500).fit(data.X_train.reshape(len(data.X_train), -1), data.y_train)
    accuracy = model.score(data.X_test.reshape(len(data.X_test), -1), data.y_test)
    assert accuracy > 0.9, accuracy


# -- bundle safety --------------------------------------------------------------------------------


def test_module_imports_only_what_a_bundle_has():
    allowed = {"numpy", "pandas", "PIL", "__future__"} | set(sys.stdlib_module_names)
    tree = ast.parse(MODULE.read_text())
    for node in tree.body:  # top level only; builder.* is imported inside try or functions
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        for name in names:
            assert name.split(".")[0] in allowed, name


def test_module_works_when_copied_without_the_builder_package(tmp_path):
    shutil.copy(MODULE, tmp_path / "images.py")
    shutil.copy(MODULE.parent / "preprocess.py", tmp_path / "preprocess.py")  # beside it in a bundle
    state = prepared().preprocessor.to_dict()
    (tmp_path / "state.json").write_text(json.dumps(state))
    png = tmp_path / "x.png"
    png.write_bytes(digits().data[0])
    script = (
        "import json, sys; sys.modules['builder'] = None; sys.path.insert(0, sys.argv[1]); import images\n"
        "pre = images.ImagePreprocessor.from_dict(json.load(open(sys.argv[1] + '/state.json')))\n"
        "X = pre.transform([sys.argv[1] + '/x.png'])\n"
        "print(pre.decode_outputs(X.reshape(1, -1)[:, :10], files=['x.png']).columns[0], X.shape)\n"
        "try:\n    pre.transform([sys.argv[1] + '/state.json'])\n"
        "except ValueError as e:\n    print(type(e).__name__)\n"
    )
    result = subprocess.run([sys.executable, "-I", "-c", script, str(tmp_path)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["file", "(1,", "1,", "16,", "16)", "DataError"]


def test_an_empty_class_folder_is_said_not_silently_dropped():
    """Issue 11, item 4: a class folder with no image (or only other files) would train a model that
    does not know that class: the reader names the folders, the Data page warns."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(make_digits_zip(n_per_class=3, junk=False))) as source, \
            zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            target.writestr(info, source.read(info))
        target.writestr("digits/cats/", b"")
        target.writestr("digits/dogs/notes.txt", b"no pictures here")
    images = read_image_zip(out.getvalue())
    assert images.empty_classes == ["cats", "dogs"]
    assert "'cats', 'dogs' hold no image" in images.empty_note
    assert "cats" not in images.counts and read_image_zip(make_digits_zip(n_per_class=3)).empty_note is None
