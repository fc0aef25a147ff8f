"""The mixing arithmetic, buffers and material repairs, without a device."""

from __future__ import annotations

import numpy as np
import pytest

from explorer.audio.io import resample
from explorer.errors import InputError
from explorer.playback.buffers import CHUNK_FRAMES, ChunkedAudio
from explorer.playback.mixer import Mixer, MixPlan, MixSettings, PlaybackWarning
from explorer.playback.resampling import resample_range
from tests.playback.playback_helpers import RATE, noise, tone


def render(plan: MixPlan, start: int, frames: int) -> np.ndarray:
    """`plan.render` as `(2, frames)`."""
    out = np.full((frames, 2), np.nan, dtype=np.float32)
    plan.render(start, frames, out, np.empty((frames, 2), dtype=np.float32))
    return out.T


@pytest.fixture
def stems() -> dict[str, np.ndarray]:
    return {"vocals": tone(440, 0.3), "drums": noise(0.3, seed=1), "bass": tone(55, 0.3, 0.2)}


@pytest.fixture
def mixer(stems) -> Mixer:
    mixer = Mixer()
    mixer.load(sum(stems.values()), RATE, stems)
    return mixer


# Buffers.


def test_chunked_audio_round_trips_across_chunk_boundaries():
    samples = noise(2 * CHUNK_FRAMES / RATE + 0.01)
    buffer = ChunkedAudio.from_array(samples)
    assert np.array_equal(buffer.to_array(), samples)
    start = CHUNK_FRAMES - 100
    assert np.array_equal(buffer.to_array(start, start + 300), samples[:, start : start + 300])


def test_copy_into_writes_silence_past_the_end():
    samples = noise(0.01)
    buffer = ChunkedAudio.from_array(samples)
    out = np.full((200, 2), 7.0, dtype=np.float32)
    buffer.copy_into(buffer.frames - 50, 200, out)
    assert np.array_equal(out[:50].T, samples[:, -50:])
    assert not out[50:].any()


def test_replaced_copies_only_the_chunks_it_touches():
    buffer = ChunkedAudio.from_array(noise(3 * CHUNK_FRAMES / RATE))
    new = noise(0.001, seed=5)
    edited, written = buffer.replaced(CHUNK_FRAMES + 10, new)
    assert written == new.shape[1]
    assert edited.chunks[0] is buffer.chunks[0] and edited.chunks[2] is buffer.chunks[2]
    assert edited.chunks[1] is not buffer.chunks[1]
    expected = buffer.to_array()
    expected[:, CHUNK_FRAMES + 10 : CHUNK_FRAMES + 10 + new.shape[1]] = new
    assert np.array_equal(edited.to_array(), expected)
    assert not edited.chunks[1].flags.writeable  # immutable: the callback may be reading it


# The mix arithmetic.


def test_gains_master_mute_and_solo_arithmetic(mixer, stems):
    vocals, drums, bass = stems["vocals"], stems["drums"], stems["bass"]
    mixer.set_gain("vocals", 0.5)
    mixer.set_gain("drums", 2.0)
    mixer.set_master(0.8)
    assert np.allclose(
        render(mixer.plan, 0, 1000), 0.8 * (0.5 * vocals + 2 * drums + bass)[:, :1000], atol=1e-6
    )

    mixer.set_mute("bass")
    assert np.allclose(
        render(mixer.plan, 100, 1000), 0.8 * (0.5 * vocals + 2 * drums)[:, 100:1100], atol=1e-6
    )

    mixer.set_solo("vocals")  # only soloed stems play
    assert np.allclose(render(mixer.plan, 0, 1000), 0.8 * 0.5 * vocals[:, :1000], atol=1e-6)

    mixer.set_solo("bass")  # soloed but muted: mute wins
    assert np.allclose(render(mixer.plan, 0, 1000), 0.8 * 0.5 * vocals[:, :1000], atol=1e-6)

    mixer.set_mute("bass", False)
    mixer.set_solo("vocals", False)
    assert np.allclose(render(mixer.plan, 0, 1000), 0.8 * bass[:, :1000], atol=1e-6)

    mixer.clear_solo()
    mixer.set_mute("vocals")
    mixer.set_mute("drums")
    mixer.set_mute("bass")
    assert np.array_equal(render(mixer.plan, 0, 1000), np.zeros((2, 1000), dtype=np.float32))


def test_ab_switch_plays_the_mixture_with_master_gain_only(stems):
    mixer = Mixer()
    mixture = noise(0.3, seed=9)  # not the sum of the stems, so A and B differ
    mixer.load(mixture, RATE, stems)
    mixer.set_mute("vocals")
    mixer.set_master(0.5)
    assert mixer.toggle_source() == "mixture"
    assert np.allclose(render(mixer.plan, 0, 2000), 0.5 * mixture[:, :2000], atol=1e-7)
    assert mixer.toggle_source() == "separation"
    assert np.allclose(
        render(mixer.plan, 0, 2000), 0.5 * (stems["drums"] + stems["bass"])[:, :2000], atol=1e-6
    )
    with pytest.raises(InputError):
        mixer.set_source("vocals")


def test_output_is_clipped_as_the_device_would(mixer):
    mixer.set_master(16.0)
    assert np.abs(render(mixer.plan, 0, 5000)).max() == pytest.approx(1.0)


def test_rendering_past_the_end_is_silence(mixer):
    frames = mixer.plan.frames
    block = render(mixer.plan, frames - 10, 100)
    assert block[:, :10].any() and not block[:, 10:].any()


@pytest.mark.parametrize("gain", [-0.1, float("nan"), float("inf"), 17.0])
def test_bad_gains_are_rejected(mixer, gain):
    with pytest.raises(InputError):
        mixer.set_gain("vocals", gain)
    with pytest.raises(InputError):
        mixer.set_master(gain)


def test_unknown_stems_are_rejected(mixer):
    with pytest.raises(InputError, match="no stem named 'piano'"):
        mixer.set_solo("piano")
    with pytest.raises(InputError):
        mixer.replace_range("piano", 0, noise(0.01))


# Bad input: lengths, sample rates, NaN.


def test_stems_of_different_lengths_are_padded_with_a_warning():
    mixer = Mixer()
    with pytest.warns(PlaybackWarning, match="padded with silence"):
        messages = mixer.load(
            tone(220, 0.5), RATE, {"short": tone(330, 0.2), "long": tone(110, 0.6)}
        )
    assert mixer.material.frames == round(0.6 * RATE)
    assert any("short" in message for message in messages)
    assert any("mixture" in message for message in messages)
    short = mixer.material.stems["short"].to_array()
    assert np.array_equal(short[:, : round(0.2 * RATE)], tone(330, 0.2))
    assert not short[:, round(0.2 * RATE) :].any()
    assert messages[0] in mixer.messages


def test_stems_at_other_sample_rates_are_resampled_once():
    mixer = Mixer()
    slow = tone(220, 0.5, rate=22050)
    with pytest.warns(PlaybackWarning, match="resampled"):
        mixer.load(tone(220, 0.5), RATE, {"slow": (slow, 22050), "same": tone(330, 0.5)})
    assert mixer.material.sample_rate == RATE
    assert np.array_equal(mixer.material.stems["slow"].to_array(), resample(slow, 22050, RATE))


def test_a_nan_stem_is_silenced_with_a_warning(stems):
    broken = stems["vocals"].copy()
    broken[0, 100] = np.nan
    broken[1, 2000] = np.inf
    mixer = Mixer()
    with pytest.warns(PlaybackWarning, match="vocals has 2 NaN or Inf samples"):
        mixer.load(sum(stems.values()), RATE, {**stems, "vocals": broken})
    assert not mixer.material.stems["vocals"].to_array().any()
    audio = mixer.render_all()
    assert np.isfinite(audio).all()
    assert np.allclose(audio, stems["drums"] + stems["bass"], atol=1e-6)


def test_nan_in_an_edit_silences_that_range(mixer):
    new = noise(0.01, seed=3)
    new[0, 5] = np.nan
    with pytest.warns(PlaybackWarning, match="silenced"):
        mixer.replace_range("vocals", 1000, new)
    assert not mixer.material.stems["vocals"].to_array(1000, 1000 + new.shape[1]).any()
    assert np.isfinite(mixer.render_all()).all()


def test_malformed_input_is_rejected():
    with pytest.raises(InputError, match="channels, samples"):
        Mixer().load(np.zeros((44100, 2), dtype=np.float32), RATE)
    with pytest.raises(InputError, match="nothing to play"):
        Mixer().load(None, RATE, {})
    with pytest.raises(InputError, match="sample rate"):
        Mixer().load(tone(220, 0.1), 0)


def test_a_missing_mixture_is_the_sum_of_the_stems(stems):
    mixer = Mixer()
    with pytest.warns(PlaybackWarning):
        mixer.load(None, RATE, stems)
    assert np.allclose(mixer.material.mixture.to_array(), sum(stems.values()), atol=1e-6)


# Edits and export rendering.


def test_replace_range_and_set_stem_change_only_what_they_should(mixer, stems):
    new = noise(0.05, seed=11)
    mixer.replace_range("vocals", 2000, new)
    expected = stems["vocals"].copy()
    expected[:, 2000 : 2000 + new.shape[1]] = new
    assert np.array_equal(mixer.material.stems["vocals"].to_array(), expected)
    assert np.allclose(mixer.render_all(), expected + stems["drums"] + stems["bass"], atol=1e-6)

    replacement = tone(880, 0.3)
    mixer.set_stem("drums", replacement)
    assert np.allclose(mixer.render_all(), expected + replacement + stems["bass"], atol=1e-6)
    mixer.remove_stem("drums")
    assert np.allclose(mixer.render_all(), expected + stems["bass"], atol=1e-6)


def test_an_edit_past_the_end_is_cut(mixer):
    frames = mixer.material.frames
    mixer.replace_range("vocals", frames - 10, noise(0.01))
    assert mixer.material.frames == frames
    with pytest.raises(InputError):
        mixer.replace_range("vocals", frames, noise(0.01))


def test_settings_survive_a_new_separation(mixer, stems):
    mixer.set_gain("bass", 0.25)
    mixer.set_solo("bass")
    mixer.set_stem("bass", stems["bass"])
    assert mixer.settings.gain("bass") == 0.25
    assert np.allclose(mixer.render_all(), 0.25 * stems["bass"], atol=1e-7)


def test_plan_settings_effective_gain_rules():
    settings = MixSettings(gains={"a": 0.5}, muted=frozenset({"b"}), soloed=frozenset({"gone"}))
    # a solo of a stem that no longer exists does not silence the others
    assert settings.effective_gain("a", ("a", "b")) == 0.5
    assert settings.effective_gain("b", ("a", "b")) == 0.0


# Playing at another rate than the material's.


@pytest.mark.parametrize(
    ("source_rate", "device_rate"), [(44100, 48000), (48000, 44100), (22050, 44100)]
)
@pytest.mark.parametrize(("start", "length"), [(0, 30), (5000, 700), (20000, 6000)])
def test_an_edit_resampled_in_place_equals_resampling_everything(
    source_rate, device_rate, start, length
):
    samples = noise(26000 / source_rate, rate=source_rate)
    buffer = ChunkedAudio.from_array(samples)
    new = noise(length / source_rate, seed=4, rate=source_rate)
    edited, written = buffer.replaced(start, new)
    target_start, piece = resample_range(edited, start, start + written, source_rate, device_rate)
    spliced = resample(samples, source_rate, device_rate).copy()
    spliced[:, target_start : target_start + piece.shape[1]] = piece
    assert np.allclose(spliced, resample(edited.to_array(), source_rate, device_rate), atol=1e-6)


def test_the_mixer_plays_a_resampled_copy_and_exports_the_original(stems):
    mixer = Mixer()
    mixer.set_output_rate(48000)
    mixer.load(sum(stems.values()), RATE, stems)
    assert mixer.plan.sample_rate == 48000
    assert mixer.material.sample_rate == RATE
    new = noise(0.02, seed=8)
    mixer.replace_range("vocals", 3000, new)
    edited = mixer.material.stems["vocals"].to_array()
    expected = resample(edited + stems["drums"] + stems["bass"], RATE, 48000)
    played = render(mixer.plan, 0, mixer.plan.frames)
    assert np.allclose(played, expected, atol=1e-5)
    assert mixer.render_all().shape == (2, stems["vocals"].shape[1])
