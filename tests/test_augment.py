"""The till augmentation, one transform at a time, on a real UTKFace chip: each test shows the effect
the transform is named for (and that it is a pure function of its seed)."""
import cv2
import numpy as np
import pytest

from agegate.edge.preprocess import decode_image
from agegate.train import augment as aug

from .conftest import UTK, pick

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def tf():
    from agegate.train.tfenv import import_tf

    return import_tf()[0]


@pytest.fixture(scope="module")
def chip(tf):
    img = decode_image(UTK / "images" / pick("val", 1, seed=3)[0])
    return tf.constant(cv2.resize(img, (112, 112), interpolation=cv2.INTER_AREA).astype(np.float32))


def seed(tf, k=0):
    return tf.constant([1234 + k, 7], tf.int64)


def sharpness(x) -> float:
    grey = cv2.cvtColor(np.asarray(x).astype(np.uint8), cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def test_same_seed_same_image_other_seed_other_image(tf, chip):
    a, b, c = (aug.apply_till(chip, seed(tf, k)).numpy() for k in (0, 0, 1))
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).mean() > 1.0
    assert a.shape == chip.shape and a.min() >= 0 and a.max() <= 255


def test_jitter_box_moves_and_scales_the_crop_and_centre_box_is_the_unjittered_case(tf, chip):
    ctx = tf.image.resize(chip, (146, 146))  # a context crop: the face box is its centre 1/1.3
    centre = aug.centre_box(ctx, 112, 1.3).numpy()
    still = aug.jitter_box(ctx, seed(tf), 112, 1.3, scale=0.0, shift=0.0).numpy()
    np.testing.assert_allclose(still, centre, atol=1e-3)
    moved = [aug.jitter_box(ctx, seed(tf, k), 112, 1.3).numpy() for k in range(4)]
    assert all(np.abs(m - centre).mean() > 2.0 for m in moved)


def test_rotate_tilts_the_face_and_zero_degrees_is_identity(tf, chip):
    np.testing.assert_allclose(aug.rotate(chip, seed(tf), max_degrees=0.0).numpy(), chip.numpy(), atol=1e-3)
    out = aug.rotate(chip, seed(tf), max_degrees=12.0).numpy()
    # a real rotation: not the same picture, but still highly correlated with it (a tilt, not noise)
    r = np.corrcoef(out.ravel(), chip.numpy().ravel())[0, 1]
    assert 0.5 < r < 0.995


@pytest.mark.parametrize("name", ["motion_blur", "defocus_blur", "down_up"])
def test_blurs_and_small_faces_remove_detail(tf, chip, name):
    before = sharpness(chip.numpy())
    after = sharpness(getattr(aug, name)(chip, seed(tf)).numpy())
    assert after < 0.7 * before, (before, after)


def test_sensor_noise_adds_bounded_grain(tf, chip):
    out = aug.sensor_noise(chip, seed(tf), max_sigma=12.0).numpy()
    resid = out - chip.numpy()
    assert 0.5 < resid.std() < 13.0
    assert sharpness(out) > sharpness(chip.numpy())


def test_jpeg_leaves_compression_artefacts(tf, chip):
    out = aug.jpeg(chip, seed(tf), 30, 31).numpy()
    diff = np.abs(out - chip.numpy())
    assert 0.5 < diff.mean() < 20.0  # the same picture, with JPEG's losses


def test_low_light_is_a_monotone_exposure_change(tf, chip):
    x = chip.numpy()[..., 0].ravel()
    out = aug.low_light(chip, seed(tf)).numpy()[..., 0].ravel()
    order = np.argsort(x, kind="stable")
    assert np.all(np.diff(out[order]) >= -1e-3)  # brighter stays brighter
    assert abs(out.mean() - x.mean()) > 3.0


def test_colour_cast_scales_each_channel(tf, chip):
    x = chip.numpy()
    out = aug.colour_cast(chip, seed(tf)).numpy()
    ok = (x > 20) & (out < 254)
    gains = [np.median(out[..., c][ok[..., c]] / x[..., c][ok[..., c]]) for c in range(3)]
    assert max(gains) - min(gains) > 0.02 and all(0.79 < g < 1.21 for g in gains)


def test_greyscale_has_equal_channels(tf, chip):
    out = aug.greyscale(chip).numpy()
    np.testing.assert_allclose(out[..., 0], out[..., 1], atol=1e-3)
    np.testing.assert_allclose(out[..., 1], out[..., 2], atol=1e-3)
