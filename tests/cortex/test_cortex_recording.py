import numpy as np
import pytest

from tunelab.cortex.images import ImageBank
from tunelab.cortex.recording import Recording, load_recording, save_recording
from tunelab.errors import UserError


def _recording(n_images=6, repeats=2, pixels=16):
    rng = np.random.default_rng(0)
    images = ImageBank(rng.random((n_images, 3, 32, 32)).astype(np.float32), [f"i{i}" for i in range(n_images)])
    return Recording(rng.normal(size=(n_images, repeats, pixels)).astype(np.float32), images, (4, 4))


def test_npz_and_hdf5_round_trip(tmp_path):
    import h5py

    rec = _recording()
    rec.responses[:, :, 3] = np.nan
    save_recording(rec, tmp_path / "rec.npz")
    back = load_recording(tmp_path / "rec.npz")
    np.testing.assert_array_equal(back.responses, rec.responses)
    assert back.sheet_shape == (4, 4) and back.masked_report().startswith("1 of 16 pixels")
    assert not back.pixel_mask[3] and back.pixel_mask.sum() == 15
    with h5py.File(tmp_path / "rec.h5", "w") as handle:
        handle["responses"] = rec.responses
        handle["images"] = rec.images.to_uint8()
    assert load_recording(tmp_path / "rec.h5").responses.shape == (6, 2, 16)


def test_image_folder_supplies_images(tmp_path):
    import skimage.io

    (tmp_path / "imgs").mkdir()
    for i in range(3):
        skimage.io.imsave(tmp_path / "imgs" / f"{i}.png", np.full((40, 40, 3), 30 * i, np.uint8), check_contrast=False)
    np.savez(tmp_path / "r.npz", responses=np.zeros((3, 2, 4), np.float32))
    assert len(load_recording(tmp_path / "r.npz", tmp_path / "imgs").images) == 3
    np.savez(tmp_path / "bad.npz", responses=np.zeros((5, 2, 4), np.float32))
    with pytest.raises(UserError, match="5 images but 3 images"):
        load_recording(tmp_path / "bad.npz", tmp_path / "imgs")


@pytest.mark.parametrize("responses, message", [
    (np.zeros((6, 1, 16)), "at least 2 are needed"),
    (np.zeros((6, 16)), "must be \\[image, repeat, pixel\\]"),
    (np.full((6, 2, 16), np.nan), "every pixel contains NaN"),
    (np.zeros((6, 2, 15)), "sheet shape"),
])
def test_bad_arrays_are_one_line_errors(responses, message):
    images = _recording().images
    with pytest.raises(UserError, match=message) as info:
        Recording(responses.astype(np.float32), images, (4, 4))
    assert "\n" not in str(info.value)


def test_missing_files_and_keys(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_recording(tmp_path / "none.npz")
    np.savez(tmp_path / "x.npz", other=np.zeros(3))
    with pytest.raises(UserError, match="no 'responses'"):
        load_recording(tmp_path / "x.npz")
    np.savez(tmp_path / "y.npz", responses=np.zeros((2, 2, 4)))
    with pytest.raises(UserError, match="no 'images'"):
        load_recording(tmp_path / "y.npz")
