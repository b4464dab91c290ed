"""Align a prior CT to the current one (issue #24) with SimpleITK: rigid, then affine, on
lung-windowed images at a few millimetres per voxel, multi-resolution. The alignment's quality is
measured (the overlap of the two lungs once aligned) and stated, never hidden.

All transforms are 4x4 matrices on DICOM patient millimetres (LPS), which is SimpleITK's
physical space too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from workstation.errors import WorkstationError
from workstation.imaging.volume import Volume
from workstation.jobs import CancelToken, Job, Progress

WORKING_MM = 4.0  # registration grid: lungs and their vessels, not fine detail
LUNG_HU = -500.0
GOOD_OVERLAP, FAIR_OVERLAP = 0.85, 0.7


class RegistrationError(WorkstationError):
    """The prior cannot be aligned (no overlap, degenerate geometry)."""


@dataclass(frozen=True)
class Registration:
    prior_to_current: np.ndarray  # 4x4, patient mm
    lung_overlap: float  # Dice of the lungs after alignment (1 = perfect)
    lung_overlap_before: float

    @property
    def quality(self) -> str:
        if self.lung_overlap >= GOOD_OVERLAP:
            return "good"
        return "fair" if self.lung_overlap >= FAIR_OVERLAP else "poor"

    @property
    def statement(self) -> str:
        """What the reader is told about the alignment."""
        text = (f"alignment {self.quality}: lung overlap {self.lung_overlap:.2f} after registration "
                f"({self.lung_overlap_before:.2f} before)")
        if self.quality == "poor":
            text += "; matched nodules and growth may be wrong, compare by eye"
        return text

    def to_current(self, point_mm) -> np.ndarray:
        """A point of the prior (patient mm) -> the same anatomy in the current scan."""
        return (self.prior_to_current @ np.array([*point_mm, 1.0]))[:3]

    def to_prior(self, point_mm) -> np.ndarray:
        """A point of the current scan (patient mm) -> the same anatomy in the prior (the inverse map)."""
        return np.linalg.solve(self.prior_to_current, np.array([*point_mm, 1.0]))[:3]


def _image(volume: Volume):
    """The volume as a SimpleITK image on a coarse grid, HU clipped to the lung window."""
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(np.clip(volume.voxels, -1000, 200).astype(np.float32))
    spacing = np.array(volume.spacing_mm, dtype=float)
    image.SetSpacing(tuple(spacing))
    image.SetOrigin(tuple(float(v) for v in volume.affine[:3, 3]))
    image.SetDirection(tuple((volume.affine[:3, :3] / spacing).ravel()))
    factors = [max(1, int(round(WORKING_MM / s))) for s in spacing]
    smoothed = sitk.SmoothingRecursiveGaussian(image, [s * f / 2 for s, f in zip(spacing, factors)])
    return sitk.Shrink(smoothed, factors)


def _lung_overlap(fixed, moving, transform) -> float:
    import SimpleITK as sitk

    fixed_lung = fixed < LUNG_HU
    moved = sitk.Resample(moving, fixed, transform, sitk.sitkLinear, 0.0) < LUNG_HU
    inside = sitk.Resample(moving * 0 + 1, fixed, transform, sitk.sitkNearestNeighbor, 0.0) > 0  # overlap of fields
    a = sitk.GetArrayViewFromImage(fixed_lung & inside).astype(bool)
    b = sitk.GetArrayViewFromImage(moved & inside).astype(bool)
    total = a.sum() + b.sum()
    return float(2 * (a & b).sum() / total) if total else 0.0


def _matrix(transform) -> np.ndarray:
    """The 4x4 current-to-prior matrix of an affine-like SimpleITK transform."""
    linear = np.array(transform.GetMatrix()).reshape(3, 3)
    centre, translation = np.array(transform.GetCenter()), np.array(transform.GetTranslation())
    matrix = np.eye(4)
    matrix[:3, :3] = linear
    matrix[:3, 3] = translation + centre - linear @ centre
    return matrix


def register_job(current: Volume, prior: Volume, cancel: CancelToken | None = None) -> Job[Registration]:
    """Rigid then affine alignment of `prior` onto `current`; progress per stage, cancellable."""
    import SimpleITK as sitk

    cancel = cancel or CancelToken()
    yield Progress(0, 4, "Preparing the images")
    fixed = _image(current)
    cancel.check()  # each preparation takes seconds on a 512-matrix scan: Esc should not wait for all
    moving = _image(prior)
    cancel.check()
    identity = sitk.Euler3DTransform()
    before = _lung_overlap(fixed, moving, identity)
    initial = sitk.CenteredTransformInitializer(fixed, moving, sitk.Euler3DTransform(),
                                                sitk.CenteredTransformInitializerFilter.MOMENTS)
    yield Progress(1, 4, "Rigid alignment")
    rigid = _run(fixed, moving, initial, cancel, iterations=60)
    yield Progress(2, 4, "Affine alignment")
    affine = sitk.AffineTransform(3)
    affine.SetCenter(rigid.GetCenter())
    affine.SetMatrix(rigid.GetMatrix())
    affine.SetTranslation(rigid.GetTranslation())
    affine = _run(fixed, moving, affine, cancel, iterations=40)
    yield Progress(3, 4, "Measuring the alignment")
    after = _lung_overlap(fixed, moving, affine)
    if after < before:  # the optimiser made it worse: keep the rigid result, and say how good it is
        affine, after = rigid, _lung_overlap(fixed, moving, rigid)
    current_to_prior = _matrix(affine)
    yield Progress(4, 4, "Aligned")
    return Registration(np.linalg.inv(current_to_prior), round(after, 3), round(before, 3))


def _run(fixed, moving, transform, cancel: CancelToken, iterations: int):
    import SimpleITK as sitk

    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMeanSquares()  # same modality, same HU scale
    method.SetMetricSamplingStrategy(method.RANDOM)
    method.SetMetricSamplingPercentage(0.1, seed=7)
    method.SetInterpolator(sitk.sitkLinear)
    method.SetOptimizerAsRegularStepGradientDescent(learningRate=2.0, minStep=1e-3, numberOfIterations=iterations,
                                                    relaxationFactor=0.6)
    method.SetOptimizerScalesFromPhysicalShift()
    method.SetShrinkFactorsPerLevel([2, 1])
    method.SetSmoothingSigmasPerLevel([1.0, 0.0])
    method.SetInitialTransform(transform, inPlace=False)
    method.AddCommand(sitk.sitkIterationEvent, lambda: method.StopRegistration() if cancel.cancelled else None)
    try:
        result = method.Execute(fixed, moving)
    except RuntimeError as exc:
        raise RegistrationError(f"The prior could not be aligned to this scan ({str(exc).splitlines()[-1][:120]})") \
            from exc
    cancel.check()
    return _unwrapped(result)


def _unwrapped(transform):
    """The single affine-like transform inside SimpleITK's composite result."""
    import SimpleITK as sitk

    if isinstance(transform, sitk.CompositeTransform):
        transform = transform.GetBackTransform()
    for kind in (sitk.Euler3DTransform, sitk.AffineTransform):
        try:
            return kind(transform)
        except (TypeError, RuntimeError):
            continue
    return transform
