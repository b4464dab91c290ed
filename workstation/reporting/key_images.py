"""Key images for the report, drawn with numpy and Pillow: no GL, no display, so servers can
make reports. Each finding gets an axial slice (whole, and a close-up) and a coronal slice at
lung window, with the outline of the heatmap above the operating threshold (an outline, so the
lesion itself stays visible), a marker, a scale bar and the patient-orientation letters at the
edges (radiological convention falls out of the affine).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

from workstation.imaging.volume import Volume
from workstation.imaging.windowing import apply_window
from workstation.paths import shipped

LUNG_WINDOW = (-600.0, 1500.0)
MARKER_RGB = (0, 230, 255)  # cyan: apart from the red-to-yellow heatmap
OUTLINE_RGB = (255, 200, 0)  # the heatmap's outline at the operating threshold
OUTLINE_PX = 2
LETTERS = (("R", "L"), ("A", "P"), ("I", "S"))  # LPS axis: (negative, positive)
FONT_FILE = shipped("resources") / "fonts" / "DejaVuSans-Bold.ttf"


@dataclass(frozen=True)
class KeyImage:
    caption: str
    image: Image.Image  # RGB


def finding_key_images(volume: Volume, heatmap: np.ndarray | None, centre_mm, diameter_mm: float, label: str,
                       threshold: float, size_px: int = 360) -> list[KeyImage]:
    """Axial (whole slice), axial close-up (60 mm) and coronal (whole) through the finding."""
    i, j, k = (int(v) for v in np.rint(volume.patient_to_voxel(centre_mm)))
    k = int(np.clip(k, 0, volume.shape[0] - 1))
    j = int(np.clip(j, 0, volume.shape[1] - 1))
    axial = _Plane.axial(volume, heatmap, k)
    coronal = _Plane.coronal(volume, heatmap, j)
    point_axial = (i, j)
    point_coronal = (i, coronal.row_of(k))
    return [
        KeyImage(f"Axial, slice {k + 1} of {volume.shape[0]}",
                 axial.render(point_axial, diameter_mm, label, threshold, size_px, bar_mm=50)),
        KeyImage("Axial close-up, 60 mm field",
                 axial.render(point_axial, diameter_mm, label, threshold, size_px, bar_mm=10, field_mm=60.0)),
        KeyImage("Coronal", coronal.render(point_coronal, diameter_mm, label, threshold, size_px, bar_mm=50)),
    ]


def axial_images(volume: Volume, centre_mm, diameter_mm: float, label: str, when: str, size_px: int = 360
                 ) -> list[KeyImage]:
    """The whole axial slice and a 60 mm close-up through a point, no heatmap: one time point of a
    nodule compared across scans (the same field and scale at both, so sizes compare by eye)."""
    i, j, k = (int(v) for v in np.rint(volume.patient_to_voxel(centre_mm)))
    k = int(np.clip(k, 0, volume.shape[0] - 1))
    axial = _Plane.axial(volume, None, k)
    return [KeyImage(f"{when}: axial, slice {k + 1} of {volume.shape[0]}",
                     axial.render((i, j), diameter_mm, label, 1.0, size_px, bar_mm=50)),
            KeyImage(f"{when}: close-up, 60 mm field",
                     axial.render((i, j), diameter_mm, label, 1.0, size_px, bar_mm=10, field_mm=60.0))]


@dataclass
class _Plane:
    hu: np.ndarray  # (rows, columns)
    heat: np.ndarray | None
    pixel_mm: tuple[float, float]  # (column, row)
    right: np.ndarray  # patient direction of +column
    down: np.ndarray  # patient direction of +row
    flipped: bool = False

    @classmethod
    def axial(cls, volume: Volume, heatmap: np.ndarray | None, k: int) -> "_Plane":
        direction = volume.affine[:3, :3] / np.asarray(volume.spacing_mm)
        return cls(volume.voxels[k], None if heatmap is None else heatmap[k],
                   (volume.spacing_mm[0], volume.spacing_mm[1]), direction[:, 0], direction[:, 1])

    @classmethod
    def coronal(cls, volume: Volume, heatmap: np.ndarray | None, j: int) -> "_Plane":
        direction = volume.affine[:3, :3] / np.asarray(volume.spacing_mm)
        slice_axis = direction[:, 2]
        flipped = bool(slice_axis[2] > 0)  # put the head at the top
        order = slice(None, None, -1) if flipped else slice(None)
        return cls(volume.voxels[:, j, :][order], None if heatmap is None else heatmap[:, j, :][order],
                   (volume.spacing_mm[0], volume.spacing_mm[2]), direction[:, 0],
                   -slice_axis if flipped else slice_axis, flipped)

    def row_of(self, k: int) -> int:
        return self.hu.shape[0] - 1 - k if self.flipped else k

    def render(self, point: tuple[int, int], diameter_mm: float, label: str, threshold: float, size_px: int,
               bar_mm: float, field_mm: float | None = None) -> Image.Image:
        hu, heat, (col_mm, row_mm) = self.hu, self.heat, self.pixel_mm
        column, row = point
        if field_mm is not None:  # a square field around the point, air outside the image
            half_c, half_r = int(field_mm / col_mm / 2), int(field_mm / row_mm / 2)
            hu = _window_of(hu, row, column, half_r, half_c, -1000.0)
            heat = None if heat is None else _window_of(heat, row, column, half_r, half_c, 0.0)
            column, row = half_c, half_r
        grey = apply_window(hu, LUNG_WINDOW[0], LUNG_WINDOW[1]).astype(np.float32)
        rgb = np.repeat(grey[..., None], 3, axis=-1)
        width_mm, height_mm = hu.shape[1] * col_mm, hu.shape[0] * row_mm
        scale = size_px / max(width_mm, height_mm)  # output pixels per mm, square
        size = (max(1, round(width_mm * scale)), max(1, round(height_mm * scale)))
        image = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)).resize(size, Image.BILINEAR)
        if heat is not None:
            image = _with_outline(image, heat, threshold)
        draw = ImageDraw.Draw(image)
        centre = ((column + 0.5) * col_mm * scale, (row + 0.5) * row_mm * scale)
        radius = max(diameter_mm / 2 + 3.0, 5.0) * scale
        draw.ellipse([centre[0] - radius, centre[1] - radius, centre[0] + radius, centre[1] + radius],
                     outline=MARKER_RGB, width=3)
        font = _font(14)
        draw.text((centre[0] + radius * 0.75, centre[1] - radius * 0.75 - 16), label, fill=MARKER_RGB, font=font,
                  stroke_width=2, stroke_fill=(0, 0, 0))
        self._scale_bar(draw, image.size, bar_mm * scale, f"{bar_mm:g} mm", font)
        self._letters(draw, image.size, font)
        return image

    @staticmethod
    def _scale_bar(draw: ImageDraw.ImageDraw, size: tuple[int, int], length_px: float, text: str, font) -> None:
        x0, y = 10, size[1] - 12
        draw.rectangle([x0 - 1, y - 3, x0 + length_px + 1, y + 3], fill=(0, 0, 0))
        draw.rectangle([x0, y - 2, x0 + length_px, y + 2], fill=(255, 255, 255))
        draw.text((x0, y - 22), text, fill=(255, 255, 255), font=font, stroke_width=2, stroke_fill=(0, 0, 0))

    def _letters(self, draw: ImageDraw.ImageDraw, size: tuple[int, int], font) -> None:
        width, height = size
        places = {(-1, 0): (4, height / 2 - 8), (1, 0): (width - 16, height / 2 - 8),
                  (0, -1): (width / 2 - 5, 4), (0, 1): (width / 2 - 5, height - 40)}
        for (sx, sy), xy in places.items():
            vector = self.right * sx + self.down * sy
            draw.text(xy, orientation_letter(vector), fill=(255, 230, 120), font=font, stroke_width=2,
                      stroke_fill=(0, 0, 0))


def heat_outline(heat: np.ndarray, threshold: float, size: tuple[int, int], width_px: int = OUTLINE_PX
                 ) -> np.ndarray:
    """Pixels (output size, rows x columns) on the border of the region at or above the threshold:
    a contour that surrounds the lesion instead of covering it."""
    resized = np.asarray(Image.fromarray(heat.astype(np.float32), mode="F").resize(size, Image.BILINEAR))
    inside = resized >= threshold
    return inside & ~ndimage.binary_erosion(inside, iterations=width_px, border_value=1)


def _with_outline(image: Image.Image, heat: np.ndarray, threshold: float) -> Image.Image:
    pixels = np.asarray(image).copy()
    pixels[heat_outline(heat, threshold, image.size)] = OUTLINE_RGB
    return Image.fromarray(pixels)


def orientation_letter(vector: np.ndarray) -> str:
    """The patient direction (R/L, A/P, I/S) a display direction mostly points to, in LPS."""
    axis = int(np.argmax(np.abs(vector)))
    return LETTERS[axis][int(vector[axis] > 0)]


def _window_of(plane: np.ndarray, row: int, column: int, half_r: int, half_c: int, fill: float) -> np.ndarray:
    out = np.full((2 * half_r + 1, 2 * half_c + 1), fill, dtype=np.float32)
    r0, r1 = max(row - half_r, 0), min(row + half_r + 1, plane.shape[0])
    c0, c1 = max(column - half_c, 0), min(column + half_c + 1, plane.shape[1])
    if r0 < r1 and c0 < c1:
        out[r0 - (row - half_r):r1 - (row - half_r), c0 - (column - half_c):c1 - (column - half_c)] = \
            plane[r0:r1, c0:c1]
    return out


def _font(size: int):
    try:
        return ImageFont.truetype(str(FONT_FILE), size)
    except OSError:  # the bundled font is missing: Pillow's own still labels the image
        return ImageFont.load_default(size)
