"""load_rgb's conversions to 8-bit RGB, each against values computed here from the pixels written."""
import warnings

import numpy as np
import pytest
from PIL import Image

from pimm.data.image_io import load_rgb


def _gradient16():
    return (np.arange(64 * 32, dtype=np.uint32).reshape(32, 64) * 32).astype(np.uint16)   # 0 .. 65504


def test_16bit_grayscale_png_is_scaled_not_clipped(tmp_path):
    values = _gradient16()
    path = tmp_path / 'g16.png'
    Image.fromarray(values).save(path)   # a 16-bit grayscale PNG
    with Image.open(path) as raw:
        assert raw.mode.startswith('I')   # what PIL opens it as ('I;16' or 'I')
        clipped = np.asarray(raw.convert('RGB'))
    assert (clipped[values > 255] == 255).all()   # timm's convert('RGB'): white wherever the value exceeds 255
    got = np.asarray(load_rgb(path))
    expected = np.rint(values / 257.).astype(np.uint8)
    assert got.shape == (32, 64, 3) and got.dtype == np.uint8
    for channel in range(3):
        np.testing.assert_array_equal(got[..., channel], expected)


def test_32bit_integer_and_float_images(tmp_path):
    values = _gradient16().astype(np.int32)
    Image.fromarray(values, 'I').save(tmp_path / 'i.tiff')
    np.testing.assert_array_equal(np.asarray(load_rgb(tmp_path / 'i.tiff'))[..., 0], np.rint(values / 257.))
    unit = np.linspace(0, 1, 64 * 32, dtype=np.float32).reshape(32, 64)
    Image.fromarray(unit, 'F').save(tmp_path / 'f.tiff')
    np.testing.assert_array_equal(np.asarray(load_rgb(tmp_path / 'f.tiff'))[..., 1],
                                  np.rint(unit.astype(np.float64) * 255.))


def test_palette_with_transparency_gives_its_colours_without_a_warning(tmp_path):
    rng = np.random.RandomState(0)
    palette = rng.randint(0, 256, size=(256, 3)).astype(np.uint8)
    index = rng.randint(0, 256, size=(16, 16)).astype(np.uint8)
    img = Image.fromarray(index, 'P')
    img.putpalette(palette.ravel().tolist())
    img.info['transparency'] = bytes([0] + [255] * 255)   # transparency given in bytes
    img.save(tmp_path / 'p.png', transparency=img.info['transparency'])
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        got = np.asarray(load_rgb(tmp_path / 'p.png'))
    np.testing.assert_array_equal(got, palette[index])


@pytest.mark.parametrize('mode', ['CMYK', 'L', 'LA', 'RGBA'])
def test_other_modes_are_pils_own_conversion(tmp_path, mode):
    rng = np.random.RandomState(1)
    channels = len(Image.new(mode, (1, 1)).getbands())
    pixels = rng.randint(0, 256, size=(8, 8, channels)).astype(np.uint8)
    img = Image.fromarray(pixels if channels > 1 else pixels[..., 0], mode)
    path = tmp_path / ('x.jpg' if mode == 'CMYK' else 'x.png')
    img.save(path, quality=100) if mode == 'CMYK' else img.save(path)
    with Image.open(path) as reference:
        expected = np.asarray(reference.convert('RGB'))
    np.testing.assert_array_equal(np.asarray(load_rgb(path)), expected)
