"""Issue #24 item 2: where the lungs moved in a way no affine map undoes (the diaphragm, here a
phantom follow-up whose lung bases rise by a known non-linear warp), the registration adds a
coarse B-spline; it maps nodules closer to the truth than the affine alone, its inverse is
consistent, a pose-only pair gets none, and a recorded comparison rebuilds the same map."""

import json

import numpy as np
import pytest

from workstation.imaging.follow_up import DiaphragmWarp, generate_follow_up
from workstation.imaging.phantom import PhantomSpec
from workstation.imaging.registration import Registration, register_job
from workstation.jobs import run_job


def _pairs(case) -> list[tuple[np.ndarray, np.ndarray]]:
    """(prior centre, current centre) of each nodule present in both scans, from the truth."""
    resolved = case.truth["resolved"][0]["prior_id"]
    kept = [n for n in case.prior.nodules if n["id"] != resolved]
    return [(np.array(p["centre_mm"]), np.array(c["centre_mm"])) for p, c in zip(kept, case.follow.nodules)]


def _errors(registration: Registration, pairs) -> np.ndarray:
    return np.array([np.linalg.norm(registration.to_prior(current) - prior) for prior, current in pairs])


@pytest.fixture(scope="module")
def warped_case():
    return generate_follow_up(PhantomSpec.from_seed(8, matrix=192), 12, 31, diaphragm_mm=25.0)


def test_the_diaphragm_warp_moves_the_base_not_the_apex_and_inverts():
    warp = DiaphragmWarp(20.0, apex_z_mm=100.0, base_z_mm=-100.0, midline_x_mm=0.0)
    points = np.array([[-80.0, 0, 100], [-80.0, 0, -100], [80.0, 0, -100], [0, 0, 0]])
    moved = warp.forward(points)
    assert moved[0, 2] == pytest.approx(100.0)  # apex still
    assert moved[1, 2] - points[1, 2] > 15 > moved[2, 2] - points[2, 2] > 5  # right base moves most
    np.testing.assert_allclose(warp.inverse(moved), points, atol=1e-3)


def test_a_non_linear_breathing_change_gets_a_deformation_that_maps_nodules_closer(warped_case):
    registration = run_job(register_job(warped_case.follow.volume, warped_case.prior.volume))
    assert registration.deformation is not None, registration.statement
    assert "deformable" in registration.statement
    pairs = _pairs(warped_case)
    affine_only = _errors(Registration(registration.prior_to_current, 0.0, 0.0), pairs)
    deformed = _errors(registration, pairs)
    assert affine_only.max() > 5.0  # the warp is beyond an affine map
    assert deformed.mean() < 0.6 * affine_only.mean() and deformed.max() < 4.0, (affine_only, deformed)
    for _, current in pairs:  # the two directions are one map
        np.testing.assert_allclose(registration.to_current(registration.to_prior(current)), current, atol=0.01)

    stored = json.loads(json.dumps({"deformation": registration.deformation}))  # as the comparisons table keeps it
    again = Registration(registration.prior_to_current, registration.lung_overlap, registration.lung_overlap_before,
                         stored["deformation"])
    np.testing.assert_allclose(_errors(again, pairs), deformed, atol=1e-6)


def test_a_pose_only_follow_up_stays_affine():
    case = generate_follow_up(PhantomSpec.from_seed(8, matrix=192), 12, 31)
    registration = run_job(register_job(case.follow.volume, case.prior.volume))
    assert registration.deformation is None
    assert "rigid and affine" in registration.statement
    assert _errors(registration, _pairs(case)).max() < 1.0
