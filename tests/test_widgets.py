"""Kernel-side tests of unet_tutorial.widgets: helpers, live viewers, static (jslinked) viewers."""

import json
import pathlib

import ipywidgets
import numpy as np
import pytest

from ipywidgets.widgets.widget import _instances
from ipywidgets.widgets.widget_link import Link

from unet_tutorial import metrics, predictions, widgets


def _cells(size=64, seed=0):
    """Synthetic ISBI-like slice: a grid of cells separated by 2-pixel membranes, an image and a membrane probability."""
    labels = np.ones((size, size), dtype=np.uint8)
    for k in range(0, size, 16):
        labels[k:k + 2, :] = 0
        labels[:, k:k + 2] = 0
    rng = np.random.default_rng(seed)
    image = np.clip(labels * 180 + rng.normal(40, 10, labels.shape), 0, 255).astype(np.uint8)
    membrane = np.clip(1.0 - labels + rng.normal(0, 0.15, labels.shape), 0, 1).astype(np.float32)
    return image, labels, membrane


def _stack(n=3):
    triples = [_cells(seed=i) for i in range(n)]
    return tuple(np.stack(parts) for parts in zip(*triples))


# ----------------------------------------------------------------------------- helpers
def test_membrane_to_labels_uses_strict_less_than():
    membrane = np.array([[0.2, 0.5], [0.7, 0.49]])
    assert widgets.membrane_to_labels(membrane, 0.5).tolist() == [[1, 0], [0, 1]]
    with pytest.raises(ValueError, match="threshold"):
        widgets.membrane_to_labels(membrane, 1.5)


def test_error_overlay_colours_false_and_missed_membrane():
    image = np.full((2, 2), 100, dtype=np.uint8)
    labels = np.array([[1, 0], [1, 0]], dtype=np.uint8)
    predicted = np.array([[0, 1], [1, 0]], dtype=np.uint8)  # false membrane at (0,0), missed at (0,1)
    rgb = widgets.error_overlay(image, predicted, labels, opacity=1.0)
    assert tuple(rgb[0, 0]) == widgets.FALSE_MEMBRANE_RGB
    assert tuple(rgb[0, 1]) == widgets.MISSED_MEMBRANE_RGB
    assert tuple(rgb[1, 0]) == (100, 100, 100) and tuple(rgb[1, 1]) == (100, 100, 100)
    half = widgets.error_overlay(image, predicted, labels, opacity=0.5)
    assert tuple(half[0, 0]) == tuple(round((100 + c) / 2) for c in widgets.FALSE_MEMBRANE_RGB)
    assert (widgets.error_overlay(image, predicted, labels, opacity=0.0) == 100).all()


def test_threshold_curve_matches_metrics():
    _, labels, membrane = _cells()
    curve = widgets.threshold_curve(membrane, labels, [0.3, 0.5, 0.9])
    for t, pixel, rand in zip(curve["thresholds"], curve["pixel_error"], curve["rand_error"]):
        predicted = (membrane < t).astype(np.uint8)
        assert pixel == pytest.approx(metrics.pixel_error(predicted, labels))
        assert rand == pytest.approx(metrics.rand_error(predicted, labels))
    assert len(set(curve["pixel_error"])) > 1  # the threshold matters


def test_encode_image_downscales_and_round_trips():
    from PIL import Image
    import io

    array = (np.arange(64 * 32).reshape(64, 32) % 256).astype(np.uint8)
    picture = Image.open(io.BytesIO(widgets.encode_image(array)))
    assert picture.size == (32, 64) and (np.asarray(picture) == array).all()
    small = Image.open(io.BytesIO(widgets.encode_image(array, size=16, fmt="jpeg")))
    assert small.format == "JPEG" and small.size == (8, 16)


@pytest.mark.parametrize("layout", ["keras", "nested", "rows", "epochs"])
def test_read_history_layouts(tmp_path, layout):
    keras_layout = {"loss": [1.0, 0.5], "val_loss": [1.2, 0.7], "accuracy": [0.6, 0.8]}
    rows = [{"epoch": e, **{k: v[e] for k, v in keras_layout.items()}} for e in range(2)]
    data = {"keras": keras_layout, "nested": {"history": keras_layout}, "rows": rows, "epochs": {"epochs": rows}}[layout]
    path = tmp_path / "history.json"
    path.write_text(json.dumps(data))
    assert widgets.read_history(path) == keras_layout


def test_read_history_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        widgets.read_history(tmp_path / "missing.json")
    with pytest.raises(ValueError):
        widgets.read_history({"name": "run"})


def test_check_shapes_raise_value_error():
    image, labels, membrane = _cells()
    with pytest.raises(ValueError, match="same"):
        widgets.StackBrowser(image, labels, membrane[:32])


# ----------------------------------------------------------------------------- live viewers
def test_stack_browser_updates_when_controls_change():
    images, labels, membrane = _stack()
    viewer = widgets.StackBrowser(images, labels, membrane, size=32)
    first = {k: v.value for k, v in viewer.panels.items()}
    first_scores = viewer.scores.value
    viewer.slice_slider.value = 2
    assert viewer.panels["image"].value != first["image"]
    assert viewer.panels["errors"].value != first["errors"]
    assert "slice 2" in viewer.scores.value and viewer.scores.value != first_scores
    errors_before = viewer.panels["errors"].value
    viewer.opacity_slider.value = 0.0
    assert viewer.panels["errors"].value != errors_before
    scores_before = viewer.scores.value
    viewer.threshold_slider.value = 0.95
    expected = widgets.slice_scores(widgets.membrane_to_labels(membrane[2], 0.95), labels[2])
    assert viewer.scores.value != scores_before
    assert f"{expected['rand_error']:.3f}" in viewer.scores.value


def test_threshold_explorer_updates_binary_map_and_curve():
    images, labels, membrane = _stack(2)
    viewer = widgets.ThresholdExplorer(membrane, labels, images, thresholds=[0.2, 0.5, 0.8], size=32)
    binary, curve = viewer.binary.value, viewer.curve.value
    viewer.threshold_slider.value = 0.1
    assert viewer.binary.value != binary and viewer.curve.value != curve
    assert "threshold 0.10" in viewer.scores.value
    viewer.slice_slider.value = 1
    assert 1 in viewer._curves and viewer.curve_of(1)["thresholds"] == [0.2, 0.5, 0.8]


def test_weight_map_explorer_updates():
    _, labels, _ = _cells()
    viewer = widgets.WeightMapExplorer(labels, size=32)
    picture, info = viewer.picture.value, viewer.info.value
    viewer.w0_slider.value = 0.0
    assert viewer.picture.value != picture and viewer.info.value != info
    viewer.w0_slider.value = 10.0
    viewer.sigma_slider.value = 12.0
    assert viewer.picture.value != picture


def test_elastic_explorer_updates_and_sigma_zero_is_identity():
    image, labels, _ = _cells()
    viewer = widgets.ElasticExplorer(image, labels, sigma=0.0, size=64)
    assert viewer.image_panel.value == widgets.encode_image(image, 64)
    viewer.sigma_slider.value = 10.0
    deformed = viewer.image_panel.value
    assert deformed != widgets.encode_image(image, 64)
    viewer.seed_slider.value = 3
    assert viewer.image_panel.value != deformed


def test_training_curves_switch_metric():
    viewer = widgets.TrainingCurves({"loss": [1.0, 0.5, 0.4], "val_loss": [1.1, 0.8, 0.9], "accuracy": [0.5, 0.7, 0.8]})
    assert list(viewer.metric.options) == ["loss", "accuracy"]
    plot = viewer.plot.value
    viewer.metric.value = "accuracy"
    assert viewer.plot.value != plot
    viewer.log_scale.value = True
    assert viewer.plot.value != plot


# ----------------------------------------------------------------------------- static viewers
def _links(widget):
    """All jslink models in the current widget registry that point at ``widget``."""
    found = []
    for model in list(_instances.values()):
        if isinstance(model, Link) and widget in (model.source[0], model.target[0]):
            found.append(model)
    return found


def _walk(widget):
    yield widget
    for child in getattr(widget, "children", ()):
        yield from _walk(child)


def test_static_stack_browser_links_controls_to_stacks():
    images, labels, membrane = _stack(4)
    view = widgets.static_stack_browser(images, labels, membrane, slice_numbers=[20, 21, 22, 23], max_slices=3,
                                        opacities=(0.0, 1.0), size=32)
    position, opacity = view.children[0].children
    assert isinstance(position, ipywidgets.SelectionSlider) and list(position.options) == ["20", "22", "23"]
    stacks = [w for w in _walk(view) if isinstance(w, ipywidgets.Stack)]
    slice_stacks = [s for s in stacks if any(link.target[0] is s for link in _links(position))]
    # image, truth, prediction, error overlay (outer) and the score line follow the slice slider
    assert len(slice_stacks) == 5
    assert all(len(s.children) == 3 for s in slice_stacks)
    for link in _links(position):
        assert link.source == (position, "index") and link.target[1] == "selected_index"
    inner = [s for s in stacks if any(link.target[0] is s for link in _links(opacity))]
    assert len(inner) == 3 and all(len(s.children) == 2 for s in inner)
    # the views differ from slice to slice (otherwise moving the slider shows nothing new)
    image_stack = slice_stacks[0]
    values = [child.value for child in image_stack.children]
    assert len(set(values)) == 3


def test_static_threshold_explorer_has_one_view_per_threshold():
    images, labels, membrane = _stack(1)
    view = widgets.static_threshold_explorer(membrane, labels, images, thresholds=[0.2, 0.5, 0.8], size=32)
    control, stack = view.children
    assert list(control.options) == ["0.20", "0.50", "0.80"] and len(stack.children) == 3
    assert _links(control)[0].target == (stack, "selected_index")
    binaries = [v.children[1].children[0].children[1].value for v in stack.children]
    assert len(set(binaries)) == 3


def test_static_weight_map_and_elastic_and_curves_build_grids():
    image, labels, _ = _cells()
    view = widgets.static_weight_map_explorer(labels, w0_values=(0.0, 10.0), sigma_values=(2.0, 5.0), size=32)
    outer = view.children[1]
    assert len(outer.children) == 2 and all(len(row.children) == 2 for row in outer.children)
    view = widgets.static_elastic_explorer(image, labels, sigma_values=(0.0, 10.0), seeds=(0, 1), size=32)
    outer = view.children[1]
    pictures = [row.children[j].children[0].children[1].value for row in outer.children for j in range(2)]
    assert pictures[0] == pictures[1]  # sigma 0: both seeds give the identity
    assert len(set(pictures[2:])) == 2  # sigma 10: the seed changes the deformation
    view = widgets.static_training_curves({"loss": [1.0, 0.5], "val_loss": [1.1, 0.9]})
    assert len(view.children[1].children) == 1 and len(view.children[1].children[0].children) == 2


def test_load_predictions_round_trip(tmp_path):
    membrane = (np.arange(2 * 4 * 4).reshape(2, 4, 4) * 8).astype(np.uint8)
    predictions.save_predictions(tmp_path / "p.npz", membrane / 255, [5, 9], compact=True)
    loaded, slices = widgets.load_predictions(tmp_path / "p.npz")
    assert loaded.dtype == np.float32 and np.allclose(loaded * 255, membrane) and slices.tolist() == [5, 9]
    with pytest.raises(FileNotFoundError):
        widgets.load_predictions(tmp_path / "none.npz")


# ----------------------------------------------------------------------------- one home for each rule
def test_membrane_to_labels_is_the_sweeps_rule():
    _, _, membrane = _cells()
    for t in metrics.CHALLENGE_THRESHOLDS:
        assert (widgets.membrane_to_labels(membrane, t) == metrics.cells_at_threshold(membrane, t)).all()
    with pytest.raises(ValueError, match="threshold"):
        widgets.threshold_curve(membrane, membrane < 0.5, [0.5, 1.2])


# ----------------------------------------------------------------------------- the book's artifacts
def test_chapter9_predictions_are_in_the_one_format(repo_root):
    folder = repo_root / "book" / "artifacts" / "chapter9"
    provenance = json.loads((folder / "provenance.json").read_text())
    saved = predictions.load_predictions(folder / "isbi_heldout_membrane.npz")
    assert saved.slices.tolist() == provenance["heldout_slices"]
    assert saved.metadata["training_slices"] == provenance["training"]["slices"]
    membrane, slices = widgets.load_predictions(folder / "isbi_heldout_membrane.npz")
    assert membrane.shape == (len(slices), 512, 512) and membrane.dtype == np.float32
    assert slices.tolist() == provenance["heldout_slices"]
    assert np.allclose(membrane * 255, np.round(membrane * 255))  # uint8 steps of 1/255


def test_artifact_hashes_match_the_committed_files(repo_root):
    from unet_tutorial import book

    committed = book.artifact_hashes(repo_root / "book" / "artifacts")
    table = "ARTIFACT_SHA256 = {\n" + "".join(f'    "{k}": "{v}",\n' for k, v in committed.items()) + "}"
    assert book.ARTIFACT_SHA256 == committed, f"an artifact changed: paste this table into unet_tutorial/book.py\n{table}"
    assert any(key.startswith("chapter9/") for key in committed)


def test_book_artifact_downloads_with_the_known_hash(tmp_path, monkeypatch):
    import pooch

    from unet_tutorial import book

    asked = {}

    def retrieve(url, known_hash, fname, progressbar, path):
        asked.update(url=url, known_hash=known_hash, path=path)
        return str(tmp_path / fname)

    monkeypatch.setattr(pooch, "retrieve", retrieve)
    path = widgets.book_artifact("isbi_heldout_membrane.npz", folder=tmp_path / "chapter9")
    assert path == tmp_path / "isbi_heldout_membrane.npz"
    assert asked["url"] == book.raw_url("book/artifacts/chapter9/isbi_heldout_membrane.npz")
    assert asked["known_hash"] == "sha256:" + book.ARTIFACT_SHA256["chapter9/isbi_heldout_membrane.npz"]
    assert pathlib.Path(asked["path"]).name == "chapter9"
    with pytest.raises(ValueError, match="no committed artifact"):
        widgets.book_artifact("missing.npz", folder=tmp_path / "chapter9")


def test_the_package_names_the_repository_of_config_yml(repo_root):
    import re

    import yaml

    from unet_tutorial import book

    config = yaml.safe_load((repo_root / "_config.yml").read_text(encoding="utf-8"))["repository"]
    assert book.REPOSITORY_URL == config["url"].rstrip("/") and book.REPOSITORY_BRANCH == config["branch"]
    # Any raw download address a chapter names points into the same repository and branch.
    for chapter in sorted((repo_root / "book").glob("*/*.md")):
        for url in re.findall(r"https://raw\.githubusercontent\.com/[^\"'\s)]+", chapter.read_text(encoding="utf-8")):
            assert url.startswith(book.raw_url("")), f"{chapter.name}: {url} is not in {book.REPOSITORY_URL}"


def test_static_weight_map_colour_scale_is_the_largest_weight_shown():
    """The paper's w0=10, sigma=5 map is not drawn dark: the shared scale ends at the largest weight of any map."""
    import re

    from unet_tutorial.weights import instances_from_isbi, weight_map

    _, labels, _ = _cells()
    view = widgets.static_weight_map_explorer(labels, w0_values=(0.0, 10.0, 20.0), sigma_values=(2.0, 5.0), size=32)
    label = view.children[1].children[1].children[1].children[0].value  # w0=10, sigma=5
    shown, scale = map(float, re.search(r"weight max <b>([\d.]+)</b> \(colour scale 0 … ([\d.]+)\)", label).groups())
    largest = max(float(weight_map(instances_from_isbi(labels), w0=a, sigma=s).max()) for a in (0.0, 10.0, 20.0) for s in (2.0, 5.0))
    assert scale == pytest.approx(largest, abs=0.05)
    assert shown / scale > 0.4
