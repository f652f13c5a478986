import numpy as np
import pytest

from icecube_stream.events import ice
from icecube_stream.events.geometry import Geometry
from icecube_stream.events.simulator import C_VACUUM, N_GROUP, IceModel, SimulationConfig

pytestmark = pytest.mark.unit

Z = np.linspace(-520.0, 520.0, 1041)  # the instrumented depths, 1 m steps
DUST_BOTTOM, DUST_TOP = ice.DUST_LAYER_Z_M


def test_table_runs_down_in_depth_and_is_reproduced_at_its_nodes() -> None:
    depth, scattering, absorption = np.array(ice.ICE_TABLE).T
    assert np.all(np.diff(depth) > 0)
    assert depth[0] <= ice.depth_m(500.0) and depth[-1] >= ice.depth_m(-500.0) - 20.0
    z = ice.ORIGIN_DEPTH_M - depth
    np.testing.assert_allclose(ice.scattering_length(z), scattering)
    np.testing.assert_allclose(ice.absorption_length(z), absorption)


def test_the_dust_layer_is_the_murkiest_ice_and_peaks_near_2000_to_2050_m() -> None:
    for length in (ice.scattering_length, ice.absorption_length, ice.attenuation_length):
        values = length(Z)
        murkiest = Z[np.argmin(values)]
        assert DUST_BOTTOM < murkiest < DUST_TOP, length.__name__
        assert 2000.0 <= ice.depth_m(murkiest) <= 2060.0, length.__name__
    # Inside the dust layer light fades within about ten metres; nowhere else does.
    att = ice.attenuation_length(Z)
    assert att.min() < 10.0
    assert att[(Z > DUST_TOP) | (Z < DUST_BOTTOM)].min() > 15.0


def test_the_clearest_ice_lies_below_the_dust() -> None:
    att = ice.attenuation_length(Z)
    below, dust, above = Z < DUST_BOTTOM, (Z >= DUST_BOTTOM) & (Z <= DUST_TOP), Z > DUST_TOP
    assert Z[np.argmax(att)] < DUST_BOTTOM
    assert Z[np.argmax(ice.absorption_length(Z))] < DUST_BOTTOM
    assert np.mean(att[below]) > np.mean(att[above]) > 1.5 * np.mean(att[dust])
    # SPICE's clearest ice: effective scattering beyond 60 m, absorption beyond 200 m.
    assert ice.scattering_length(Z[below]).max() > 60.0
    assert ice.absorption_length(Z[below]).max() > 200.0


def test_pandel_parameters_follow_the_local_ice() -> None:
    optics = ice.dom_optics(Z, C_VACUUM / N_GROUP)
    # Pandel's lambda scales with the effective scattering length, AMANDA's fit at the reference.
    ratio = optics.pandel_lambda_m / ice.scattering_length(Z)
    np.testing.assert_allclose(ratio, ice.PANDEL_LAMBDA_M / ice.REFERENCE_SCATTERING_M)
    assert 20.0 < ice.REFERENCE_SCATTERING_M < 30.0
    assert 70.0 < ice.REFERENCE_ABSORPTION_M < 110.0
    # Murky ice absorbs faster, so the delay distribution is cut off sooner there.
    dust = np.argmin(ice.absorption_length(Z))
    clear = np.argmax(ice.absorption_length(Z))
    assert optics.pandel_rate_per_ns[dust] > 2 * optics.pandel_rate_per_ns[clear]
    assert optics.pandel_rate_per_ns.min() > 1.0 / ice.PANDEL_TAU_NS


def test_values_beyond_the_table_are_held_constant() -> None:
    far = np.array([-3000.0, -600.0, 600.0, 3000.0])
    lengths = ice.attenuation_length(far)
    assert np.all(np.isfinite(lengths))
    assert lengths[0] == lengths[1] and lengths[2] == lengths[3]


def test_every_sensor_gets_finite_positive_optics(geometry: Geometry) -> None:
    z = geometry.positions[:, 2]
    optics = ice.dom_optics(z, C_VACUUM / N_GROUP)
    for values in (optics.attenuation_m, optics.pandel_lambda_m, optics.pandel_rate_per_ns):
        assert values.shape == z.shape
        assert np.all(np.isfinite(values)) and np.all(values > 0)
    model = IceModel.build(geometry, SimulationConfig())
    assert np.all(model.neg_inv_attenuation < 0)
    for values in (model.inv_pandel_lambda, model.pandel_scale_ns):
        assert np.all(np.isfinite(values)) and np.all(values > 0)
    # The real detector has sensors in all three kinds of ice, and they differ.
    dust = (z > DUST_BOTTOM) & (z < DUST_TOP)
    assert dust.sum() > 300
    assert np.median(optics.attenuation_m[dust]) < 0.5 * np.median(optics.attenuation_m[~dust])
