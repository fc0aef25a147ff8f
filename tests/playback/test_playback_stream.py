"""A real PortAudio stream on the ALSA null device (see conftest.py): what the callback hands
to the device, sample by sample, recorded by the engine's tap.

The null device is not paced: it takes blocks as fast as the callback makes them, so a second
of material plays in milliseconds. Tests that change something "during playback" loop the
material so it keeps playing, wait until the tap has recorded some blocks, make the change,
and check every recorded block against arithmetic written here, independently of the mixer.
"""

from __future__ import annotations

import os
import threading
import time
import tracemalloc

import numpy as np
import pytest
import soundfile

from explorer.audio.io import resample
from explorer.playback.engine import DEVICE_FAILED, crossfade_ramps
from explorer.playback.mixer import MixPlan, PlaybackWarning
from explorer.playback.transport import advance
from tests.playback.playback_helpers import RATE, noise, tone

SECONDS = 0.5
FRAMES = round(SECONDS * RATE)


def span(signal: np.ndarray, position: int, frames: int, loop: tuple[int, int]) -> np.ndarray:
    """`signal` `(2, samples)` played for `frames` from `position`: wrapping at the loop end,
    silent past the end. Written frame by frame, independently of the engine."""
    out = np.zeros((2, frames), dtype=np.float64)
    for index in range(frames):
        if loop[0] >= 0 and position < loop[1]:
            out[:, index] = signal[:, position]
            position = loop[0] if position + 1 == loop[1] else position + 1
        elif position < signal.shape[1]:
            out[:, index] = signal[:, position]
            position += 1
    return out


def fade_in(expected: np.ndarray, frames: int) -> np.ndarray:
    ramp_in, _ = crossfade_ramps(frames)
    faded = expected.copy()
    count = min(frames, faded.shape[1])
    faded[:, :count] *= ramp_in[:count, 0]
    return faded


def wait_until(condition, timeout: float = 10.0) -> None:
    deadline = time.perf_counter() + timeout
    while not condition():
        assert time.perf_counter() < deadline, "timed out waiting for the stream"
        time.sleep(0.0005)


@pytest.fixture
def stems() -> dict[str, np.ndarray]:
    return {
        "vocals": tone(440, SECONDS, 0.1),
        "drums": tone(220, SECONDS, 0.1, phase=1.0),
        "bass": tone(110, SECONDS, 0.2),
    }


def test_the_null_device_is_listed_and_opened(make_engine):
    from explorer.playback import list_output_devices

    names = [device.name for device in list_output_devices()]
    assert "default" in names and "explorer_null" in names
    engine = make_engine(device="explorer_null")
    assert engine.device.name == "explorer_null"
    assert engine.status().available


def test_the_whole_material_is_delivered_with_gains_mute_and_solo(make_engine, stems):
    engine = make_engine(tap_frames=2 * FRAMES)
    engine.load(sum(stems.values()), RATE, stems)
    engine.mixer.set_gain("vocals", 0.5)
    engine.mixer.set_gain("drums", 1.5)
    engine.mixer.set_master(0.9)
    engine.mixer.set_mute("bass")
    assert engine.play()
    assert engine.wait(10)
    assert engine.state == "stopped" and engine.last_error is None
    heard = engine.tap.audio()
    expected = 0.9 * (0.5 * stems["vocals"] + 1.5 * stems["drums"])
    assert np.allclose(heard[:, :FRAMES], fade_in(expected, engine.fade_frames), atol=1e-6)
    assert not heard[:, FRAMES:].any()  # silence after the end, then the stream stops
    assert engine.tap.frames == -(-FRAMES // 256) * 256
    assert engine.position_frames() == FRAMES

    engine.mixer.set_solo("drums")
    engine.mixer.set_solo("bass")  # soloed and muted: silent
    engine.seek(0)
    assert engine.play() and engine.wait(10)
    expected = 0.9 * 1.5 * stems["drums"]
    assert np.allclose(
        engine.tap.audio()[:, :FRAMES], fade_in(expected, engine.fade_frames), atol=1e-6
    )


def test_the_loop_wraps_sample_exactly(make_engine, stems):
    engine = make_engine(tap_frames=6 * 4410)
    engine.load(sum(stems.values()), RATE, stems)
    engine.set_loop_frames(5000, 9410)
    engine.seek_frames(3000)  # before the loop: plays into it, then wraps at its end
    assert engine.loop == pytest.approx((5000 / RATE, 9410 / RATE))
    assert engine.play()
    wait_until(lambda: engine.tap.full)
    engine.pause()
    heard = engine.tap.audio()
    mix = sum(stems.values())
    expected = fade_in(span(mix, 3000, heard.shape[1], (5000, 9410)), engine.fade_frames)
    recorded = engine.tap.frames
    # the last blocks fade out for the pause: compare up to there
    assert np.allclose(heard[:, : recorded - 4 * 256], expected[:, : recorded - 4 * 256], atol=1e-6)
    assert 5000 <= engine.position_frames() < 9410


def test_seek_while_playing_cross_fades_into_the_new_position(make_engine, stems):
    engine = make_engine(tap_frames=300_000)
    mix = sum(stems.values())
    engine.load(mix, RATE, stems)
    loop = (0, FRAMES)
    engine.set_loop_frames(*loop)  # keeps the unpaced stream playing
    assert engine.play()
    wait_until(lambda: engine.tap.frames > 20_000)
    engine.seek_frames(12_345)
    wait_until(lambda: engine.tap.full)
    engine.pause()
    blocks = _check_blocks(engine, mix, mix, loop, expect_change=True)
    seek_block = blocks[1]
    assert engine.tap.positions[seek_block] == 12_345


@pytest.mark.parametrize("change", ["replace_range", "set_stem", "gain", "mute", "solo", "source"])
def test_a_change_during_playback_is_cross_faded_without_a_discontinuity(
    make_engine, stems, change
):
    engine = make_engine(tap_frames=300_000)
    mixture = tone(330, SECONDS, 0.3, phase=2.0)  # A/B: differs from the stems' sum
    engine.load(mixture, RATE, stems)
    loop = (0, FRAMES)
    engine.set_loop_frames(*loop)
    before = sum(stems.values())
    inverted = -stems["vocals"]  # the largest possible change of that stem
    after = {
        "replace_range": before - 2 * stems["vocals"],
        "set_stem": before - 2 * stems["vocals"],
        "gain": before + 2 * stems["vocals"],
        "mute": before - stems["vocals"],
        "solo": stems["vocals"],
        "source": mixture,
    }[change]
    assert engine.play()
    wait_until(lambda: engine.tap.frames > 20_000)
    if change == "replace_range":
        engine.mixer.replace_range("vocals", 0, inverted)
    elif change == "set_stem":
        engine.mixer.set_stem("vocals", inverted)
    elif change == "gain":
        engine.mixer.set_gain("vocals", 3.0)
    elif change in ("mute", "solo"):
        getattr(engine.mixer, f"set_{change}")("vocals")
    else:
        engine.mixer.set_source("mixture")
    wait_until(lambda: engine.tap.full)
    engine.pause()
    _check_blocks(engine, before, after, loop, expect_change=True)
    heard = engine.tap.audio()
    # No discontinuity: no step between samples is steeper than the signals' own steps plus
    # what the fade ramp adds (a hard switch would step by up to max |after - before|).
    ramp_in, _ = crossfade_ramps(engine.fade_frames)
    steepest = max(np.abs(np.diff(before)).max(), np.abs(np.diff(after)).max())
    fade_step = np.abs(after - before).max() * np.abs(np.diff(ramp_in[:, 0])).max()
    assert np.abs(np.diff(heard, axis=1)).max() <= steepest + fade_step + 1e-5
    assert np.abs(after - before).max() > 5 * (steepest + fade_step)  # the test can tell


def _check_blocks(engine, before, after, loop, expect_change):
    """Every recorded block: the old signal before the change's cross-fade, the exact
    cross-fade in it, the new signal after. Returns the indices of fade-start blocks."""
    tap, fade = engine.tap, engine.fade_frames
    ramp_in, ramp_out = crossfade_ramps(fade)
    heard, starts = tap.audio(), tap.block_starts()
    fades = list(np.flatnonzero(tap.fade_starts[: tap.blocks]))
    assert fades[0] == 0  # the fade-in
    change = fades[1] if expect_change else tap.blocks
    checked_until = tap.blocks - 2  # the last blocks hold the pause fade-out
    for block in range(checked_until):
        position, size = int(tap.positions[block]), int(tap.sizes[block])
        if 0 < block and block != change:  # positions follow on, except where a seek jumps
            previous = int(tap.positions[block - 1])
            assert position == advance(previous, int(tap.sizes[block - 1]), loop, before.shape[1])
        signal = after if block >= change else before
        expected = span(signal, position, size, loop)
        if block == 0:
            expected = fade_in(expected, fade)
        if block == change:
            old_position = advance(
                int(tap.positions[block - 1]), int(tap.sizes[block - 1]), loop, before.shape[1]
            )
            old = span(before, old_position, size, loop)
            count = min(size, fade)
            expected[:, :count] = (
                expected[:, :count] * ramp_in[:count, 0] + old[:, :count] * ramp_out[:count, 0]
            )
        block_audio = heard[:, starts[block] : starts[block] + size]
        assert np.allclose(block_audio, expected, atol=2e-6), f"block {block} (change at {change})"
    return fades


def test_the_clock_is_monotonic_and_matches_the_frames_delivered(make_engine):
    signal = noise(8.0, seed=6)
    engine = make_engine(tap_frames=9 * RATE)
    engine.load(signal, RATE)
    assert engine.play()
    latency = round(engine.output_latency * RATE)
    assert latency > 0
    readings = []
    while engine.is_playing:
        before = engine.clock.delivered
        heard = engine.position_frames()
        after = engine.clock.delivered
        readings.append((before, heard, after, engine.is_playing))
    assert engine.wait(10)
    heard = [reading[1] for reading in readings]
    assert len(readings) > 10
    assert all(later >= earlier for earlier, later in zip(heard, heard[1:], strict=False))
    frames = signal.shape[1]
    for before, position, after, still_playing in readings:
        # heard = (frames handed to the device) - (the latency it reports), in the material;
        # once the stream has stopped, everything handed over has been heard
        low = min(frames, max(0, before - latency - 256))
        high = min(frames, max(0, after - latency)) if still_playing else frames
        assert low <= position <= high, (before, position, after, latency)
    assert engine.clock.delivered == engine.tap.frames
    assert engine.position_frames() == frames
    assert engine.position() == pytest.approx(8.0)


def test_pause_fades_out_keeps_the_position_and_play_resumes_there(make_engine, stems):
    engine = make_engine(tap_frames=400_000)
    mix = sum(stems.values())
    engine.load(mix, RATE, stems)
    engine.set_loop_frames(0, FRAMES)
    assert engine.play()
    wait_until(lambda: engine.tap.frames > 10_000)
    engine.pause()
    assert engine.state == "stopped"
    paused_at = engine.position_frames()
    time.sleep(0.02)
    assert engine.position_frames() == paused_at
    tap = engine.tap
    last = tap.blocks - 1
    assert tap.fade_starts[last]  # the pause's fade-out is the last block handed over
    tail = tap.audio()[:, tap.block_starts()[last] :]
    _, ramp_out = crossfade_ramps(engine.fade_frames)
    old = span(mix, int(tap.positions[last]), tail.shape[1], (0, FRAMES))
    expected = np.zeros_like(old)
    count = min(engine.fade_frames, tail.shape[1])
    expected[:, :count] = old[:, :count] * ramp_out[:count, 0]  # fades to silence, no click
    assert np.allclose(tail, expected, atol=1e-6)
    # resumes right after the last audible (faded) frame
    assert paused_at == advance(int(tap.positions[last]), engine.fade_frames, (0, FRAMES), FRAMES)
    assert engine.play()
    wait_until(lambda: engine.tap.blocks > 2)
    assert engine.tap.positions[0] == paused_at
    engine.pause()


def test_the_callback_never_waits_for_the_mixers_lock(make_engine, stems):
    engine = make_engine(tap_frames=FRAMES + 1024)
    engine.load(sum(stems.values()), RATE, stems)
    with engine.mixer._lock:  # as if the GUI thread were in the middle of an edit
        assert engine.play()
        assert engine.wait(10)
    assert engine.tap.frames >= FRAMES


def test_the_callback_allocates_no_audio_buffers(make_engine, stems):
    """Over a whole playback, traced memory never rises by one block's worth (a block of
    4096 stereo float32 frames is 32 KiB): no array is allocated per block."""
    engine = make_engine(blocksize=4096, tap_frames=0)
    engine.load(sum(stems.values()), RATE, stems)
    engine.set_loop_frames(0, FRAMES)
    engine.mixer.set_gain("drums", 0.5)
    engine.play()  # open the stream and warm up before tracing
    time.sleep(0.05)
    tracemalloc.start()
    try:
        baseline, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        blocks = engine.clock.blocks
        time.sleep(0.3)
        played = engine.clock.blocks - blocks
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    engine.pause()
    assert played > 20
    assert peak - baseline < 16 * 1024


def test_a_nan_stem_is_silenced_and_never_reaches_the_device(make_engine, stems):
    engine = make_engine(tap_frames=2 * FRAMES)
    broken = stems["vocals"].copy()
    broken[:, ::100] = np.nan
    with pytest.warns(PlaybackWarning, match="silenced"):
        engine.load(stems["drums"] + stems["bass"], RATE, {**stems, "vocals": broken})
    assert any("vocals" in message and "silenced" in message for message in engine.messages)
    assert engine.play() and engine.wait(10)
    heard = engine.tap.audio()
    assert np.isfinite(heard).all()
    expected = fade_in(stems["drums"] + stems["bass"], engine.fade_frames)
    assert np.allclose(heard[:, :FRAMES], expected, atol=1e-6)


def test_export_writes_exactly_what_is_heard(make_engine, stems, tmp_path):
    engine = make_engine(tap_frames=2 * FRAMES)
    engine.load(sum(stems.values()), RATE, stems)
    engine.mixer.set_gain("bass", 0.3)
    engine.mixer.set_solo("bass")
    engine.mixer.set_solo("vocals")
    engine.mixer.replace_range("vocals", 1000, noise(0.1, seed=12))
    assert engine.play() and engine.wait(10)
    heard = engine.tap.audio()[:, :FRAMES]
    exported, rate = soundfile.read(
        engine.export(tmp_path / "mix.wav"), dtype="float32", always_2d=True
    )
    assert rate == RATE
    fade = engine.fade_frames
    assert np.array_equal(exported.T[:, fade:], heard[:, fade:])  # bit for bit, after the fade-in
    assert np.array_equal(exported.T, engine.mixer.render_all())
    flac, _ = soundfile.read(engine.export(tmp_path / "mix.flac"), dtype="float32", always_2d=True)
    assert np.allclose(flac.T, exported.T, atol=2**-22)


def test_a_device_that_refuses_the_rate_gets_the_material_resampled_once(make_engine, monkeypatch):
    """Mocks a device that only plays 44.1 kHz (the null device accepts any rate)."""
    import sounddevice

    real_check = sounddevice.check_output_settings

    def only_44100(**settings):
        if settings.get("samplerate") != 44100:
            raise sounddevice.PortAudioError("Invalid sample rate")
        return real_check(**settings)

    monkeypatch.setattr(sounddevice, "check_output_settings", only_44100)
    engine = make_engine(tap_frames=2 * RATE)
    signal = tone(300, 0.5, rate=22050)
    messages = engine.load(signal, 22050)
    assert any("resampled once to 44100 Hz" in message for message in engine.messages)
    assert messages == [] or all("Hz" in message for message in messages)
    assert engine.mixer.plan.sample_rate == 44100 and engine.mixer.material.sample_rate == 22050
    assert engine.play() and engine.wait(10)
    expected = resample(signal, 22050, 44100)
    heard = engine.tap.audio()[:, : expected.shape[1]]
    assert np.allclose(heard, fade_in(expected, engine.fade_frames), atol=1e-6)
    assert engine.position_frames() == signal.shape[1]  # in the material's own frames
    engine.seek(0.25)
    assert engine.position() == pytest.approx(0.25)
    assert engine.position_frames() == round(0.25 * 22050)


def test_a_device_failing_mid_play_stops_with_a_message_and_the_app_stays_up(make_engine, stems):
    """`explorer_failing` breaks its pipe after 64 KiB, as an unplugged interface would."""
    engine = make_engine(device="explorer_failing")
    engine.load(tone(200, 3.0), RATE, {"tone": tone(200, 3.0)})
    assert engine.play()
    assert engine.wait(10)
    assert engine.state == "error"
    assert engine.last_error == DEVICE_FAILED
    assert engine.status().state == "error" and DEVICE_FAILED in engine.messages
    stopped_at = engine.position()
    assert 0 < stopped_at < 3.0
    engine.set_device("explorer_null")  # the app goes on: choose another output, play on
    assert engine.play()
    assert engine.wait(10)
    assert engine.state == "stopped"
    assert engine.position() == pytest.approx(3.0)


def test_an_error_inside_the_callback_stops_playback_with_a_message(make_engine, stems):
    engine = make_engine()
    engine.load(sum(stems.values()), RATE, stems)

    class BrokenPlan(MixPlan):
        def render(self, start, frames, out, scratch):
            raise RuntimeError("boom")

    engine.mixer.plan = BrokenPlan(RATE, FRAMES, (), engine.mixer.settings, 0.0)
    assert engine.play()
    assert engine.wait(10)
    assert engine.state == "error" and "boom" in engine.last_error
    engine.mixer.set_master(1.0)  # publishes a good plan again
    assert engine.play() and engine.wait(10)
    assert engine.state == "stopped"


def test_edits_from_another_thread_while_playing(make_engine, stems):
    """A worker thread finishing separations while the GUI changes gains: nothing breaks."""
    engine = make_engine(tap_frames=0)
    engine.load(sum(stems.values()), RATE, stems)
    engine.set_loop_frames(0, FRAMES)
    assert engine.play()

    def worker():
        for seed in range(20):
            engine.mixer.replace_range("drums", 1000 * seed, noise(0.02, seed=seed))

    thread = threading.Thread(target=worker)
    thread.start()
    for gain in np.linspace(0.1, 2.0, 20):
        engine.mixer.set_gain("bass", float(gain))
    thread.join()
    assert engine.is_playing and engine.last_error is None
    engine.pause()
    assert engine.state == "stopped"


def test_position_is_cheap_to_poll(make_engine, stems):
    engine = make_engine()
    engine.load(sum(stems.values()), RATE, stems)
    engine.set_loop_frames(0, FRAMES)
    engine.play()
    started = time.perf_counter()
    for _ in range(1000):
        engine.position()
    per_call = (time.perf_counter() - started) / 1000
    engine.pause()
    assert per_call < 1e-3  # typically a few microseconds


def test_on_a_paced_device_the_clock_follows_real_time_and_the_thread_gets_priority(make_engine):
    """`explorer_paced` consumes samples at 44.1 kHz like a sound card (the null device does
    not), so here the stream clock can be compared with the wall clock."""
    engine = make_engine(device="explorer_paced", blocksize=512)
    engine.load(noise(4.0, seed=3), RATE)
    assert engine.play()
    time.sleep(0.5)  # past the start, when the virtual card empties its pipe at once
    first, first_time = engine.position(), time.perf_counter()
    time.sleep(1.0)
    second, second_time = engine.position(), time.perf_counter()
    # the stream clock advances at the device's rate: within a block or two of wall time
    assert abs((second - first) - (second_time - first_time)) < 0.05
    wait_until(lambda: engine.realtime is not None, timeout=5.0)
    engine.pause()
    assert engine.last_error is None and engine.underruns == 0
    if hasattr(os, "sched_setscheduler") and os.geteuid() == 0:
        assert engine.realtime is True  # root may use SCHED_FIFO (CI runs as root)


def test_on_an_unpaced_device_the_thread_keeps_normal_priority(make_engine):
    engine = make_engine()
    engine.load(noise(3.0, seed=3), RATE)
    assert engine.play() and engine.wait(10)
    assert engine.realtime is False  # back-to-back callbacks at SCHED_FIFO would starve us


def test_a_device_that_hangs_mid_play_is_noticed_and_abandoned(make_engine, stems):
    """`explorer_stalling` stops taking samples without failing: the callback is simply not
    called any more. Polling the clock notices within `STALL_SECONDS`."""
    from explorer.playback.engine import DEVICE_STALLED, STALL_SECONDS

    engine = make_engine(device="explorer_stalling")
    engine.load(tone(200, 3.0), RATE, {"tone": tone(200, 3.0)})
    assert engine.play()
    started = time.perf_counter()
    assert engine.wait(STALL_SECONDS + 5)
    assert engine.state == "error" and engine.last_error == DEVICE_STALLED
    assert time.perf_counter() - started < STALL_SECONDS + 2
    engine.set_device("explorer_null")  # the GUI thread was never blocked; play on elsewhere
    engine.seek(2.9)
    assert engine.play() and engine.wait(10)
    assert engine.state == "stopped"
    # the virtual device breaks its pipe after a few seconds, which ends the hung stream;
    # PortAudio's own shutdown at exit would wait for it, so this test does too
    engine.abandoned.join(STALL_SECONDS + 10)
    assert not engine.abandoned.is_alive()
