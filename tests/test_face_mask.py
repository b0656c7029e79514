"""The mouth mask: the official mask.png geometry pixel for pixel (checked against an independent
column-wise description of the image), its official Lanczos resizing and latent cells, shape options,
feathering. Set LATENTSYNC_OFFICIAL_MASK to the official mask.png to compare with the file itself."""
from __future__ import annotations

import os

import cv2
import numpy as np
import pytest
import torch

from latentsync_core.errors import FaceError
from latentsync_core.face import mouth_mask


@pytest.mark.parametrize("resolution", [256, 512, 333])
def test_bowl_has_the_official_extent_and_area(resolution):
    m = mouth_mask(resolution).numpy()
    assert m.shape == (resolution, resolution) and m.dtype == np.float32
    hard = m > 0.5
    assert abs(hard.mean() - 0.407) < 0.005  # the official mask regenerates 40.7 % of the crop
    rows, cols = np.nonzero(hard)
    s = resolution / 256
    assert abs(rows.min() - 95 * s) <= 1.5 and abs(rows.max() - 242 * s) <= 1.5
    assert abs(cols.min() - 9 * s) <= 1.5 and abs(cols.max() - 247 * s) <= 1.5


def test_bowl_keeps_the_nose_and_eyes():
    m = mouth_mask(256).numpy() > 0.5
    assert not m[:95].any()  # eyes and above are kept
    assert not m[100:127, 80:176].any()  # the nose notch
    assert m[100:127, 10:76].all() and m[100:127, 180:245].all()  # cheeks beside the nose
    assert m[130:200, 40:216].all()  # mouth and chin


def test_jaw_starts_below_the_nose():
    bowl, jaw = mouth_mask(256).numpy() > 0.5, mouth_mask(256, "jaw").numpy() > 0.5
    assert not jaw[:128].any() and (jaw <= bowl).all()
    np.testing.assert_array_equal(jaw[128:], bowl[128:])


def test_feather_softens_only_the_edge():
    hard, soft = mouth_mask(256).numpy(), mouth_mask(256, feather=8).numpy()
    assert soft.min() >= 0 and soft.max() <= 1
    assert ((soft > 0.02) & (soft < 0.98)).sum() > 10 * ((hard > 0.02) & (hard < 0.98)).sum()
    assert soft[170, 128] > 0.99 and soft[30, 128] < 0.01
    assert abs(soft.mean() - hard.mean()) < 0.01


def test_bad_mask_arguments():
    with pytest.raises(FaceError, match="shape"):
        mouth_mask(256, "oval")
    with pytest.raises(FaceError, match="feather"):
        mouth_mask(256, feather=-1)


# The official mask.png described column by column (a different parametrisation from the row steps the
# generator uses): a band over rows 95..127 at columns 9..246 except the nose notch 78..177, and for each
# column 9..247 the bowl running from row 128 down to this last row.
_BOTTOMS = [int(v) for v in """
135 149 163 170 172 174 176 178 179 181 183 184 186 188 189 190 191 193 194 195 196 197 198 199 200 202 203 204
205 206 207 208 208 209 210 211 212 212 213 214 215 215 216 217 217 218 218 219 220 220 221 222 222 223 223 224
224 225 225 226 226 227 227 228 228 229 229 230 230 231 231 232 232 233 233 233 234 234 235 235 235 236 236 236
237 237 238 238 238 238 239 239 239 239 239 240 240 240 240 241 241 241 241 241 241 241 241 241 241 241 241 241
241 241 241 241 241 241 241 241 241 241 242 242 242 242 242 242 242 242 242 242 242 242 242 242 242 242 242 242
242 242 242 242 241 241 241 241 240 240 240 240 239 239 239 239 238 238 237 237 236 236 236 235 235 234 234 233
233 233 232 232 231 231 231 230 230 229 229 228 228 227 227 226 225 225 224 224 223 222 222 221 220 220 219 218
217 217 216 215 214 214 213 212 211 210 209 208 207 206 205 204 203 202 201 199 198 197 196 195 193 192 190 189
187 186 184 183 181 180 178 177 175 173 171 169 162 148 134""".split()]


def _reference_official_image() -> np.ndarray:
    keep = np.full((256, 256), 255, np.uint8)
    keep[95:128, 9:247] = 0
    keep[95:128, 78:178] = 255
    for column, bottom in zip(range(9, 248), _BOTTOMS):
        keep[128:bottom + 1, column] = 0
    return keep


def _official_style(keep: np.ndarray, resolution: int) -> np.ndarray:
    """What the official load_fixed_mask does: 3-channel image, Lanczos-4 resize, / 255."""
    rgb = np.repeat(keep[..., None], 3, axis=-1)
    return cv2.resize(rgb, (resolution, resolution), interpolation=cv2.INTER_LANCZOS4)[..., 0] / 255.0


def _official_source() -> np.ndarray:
    path = os.environ.get("LATENTSYNC_OFFICIAL_MASK")
    if path:
        return cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB)[..., 0]
    return _reference_official_image()


def test_reference_description_is_self_consistent():
    assert len(_BOTTOMS) == 247 - 9 + 1
    assert (_reference_official_image() == 0).sum() == 26673  # pixels regenerated in mask.png (40.7 %)


@pytest.mark.parametrize("resolution", [256, 512])
def test_bowl_equals_the_official_mask(resolution):
    official = _official_style(_official_source(), resolution)
    ours = mouth_mask(resolution).double().numpy()
    assert np.abs((1.0 - official) - ours).max() <= 1 / 255
    if resolution == 256:
        np.testing.assert_array_equal(ours, 1.0 - official)
    # The latent mask: nearest downsampling to R / 8 as the official's F.interpolate does.
    size = (resolution // 8,) * 2
    latent_official = torch.nn.functional.interpolate(torch.from_numpy(official)[None, None], size=size)
    latent_ours = torch.nn.functional.interpolate(1.0 - mouth_mask(resolution)[None, None].double(), size=size)
    assert torch.equal(latent_official, latent_ours) or torch.allclose(latent_official, latent_ours, atol=1e-6)
    assert (latent_official > 0.5).float().mean() < 1  # not degenerate
