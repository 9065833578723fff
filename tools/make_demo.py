"""Make the packaged demo music, rt_mer/audio/demo.ogg: four contrasting
sections of about 30 s that walk around the valence-arousal plane (happy,
tense, sad, calm), written as MIDI by the procedural generator, rendered with
FluidSynth and FluidR3_GM, joined with short crossfades.

    python tools/make_demo.py          # needs rt-mer[train], fluidsynth, fluid-soundfont-gm
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import soundfile

from rt_mer.audio import demo_path
from rt_mer.training.data.corpus import RENDER_RATE, render
from rt_mer.training.data.procedural import Piece, rule_labels, write_midi

OUT = demo_path()
SECONDS = 30.0
CROSSFADE = 1.5
# The cues of rt_mer.training.data.procedural.rule_labels, pushed to each quadrant's extremes.
SECTIONS = {
    "happy": Piece(major=True, tempo_bpm=150, velocity=110, staccato=0.85, register=1, dissonance=0.0, density=2,
                   drums=True, key=7, lead=56, harmony=0, bass=33, seconds=SECONDS, seed=11),
    "tense": Piece(major=False, tempo_bpm=165, velocity=115, staccato=0.5, register=0, dissonance=0.95, density=4,
                   drums=True, key=1, lead=81, harmony=48, bass=38, seconds=SECONDS, seed=12),
    "sad": Piece(major=False, tempo_bpm=56, velocity=45, staccato=0.0, register=-1, dissonance=0.05, density=1,
                 drums=False, key=2, lead=42, harmony=89, bass=32, seconds=SECONDS, seed=13),
    "calm": Piece(major=True, tempo_bpm=66, velocity=50, staccato=0.05, register=0, dissonance=0.0, density=1,
                  drums=False, key=5, lead=73, harmony=0, bass=32, seconds=SECONDS, seed=14),
}


def main() -> None:
    fade = int(CROSSFADE * RENDER_RATE)
    ramp = np.linspace(0.0, 1.0, fade, dtype=np.float32)
    mix = np.zeros(0, np.float32)
    with tempfile.TemporaryDirectory() as folder:
        for name, piece in SECTIONS.items():
            audio = render(write_midi(piece, Path(folder) / f"{name}.mid"), Path(folder) / f"{name}.flac")
            data, rate = soundfile.read(audio, dtype="float32", always_2d=True)
            assert rate == RENDER_RATE
            section = data.mean(axis=1)[: int((SECONDS + CROSSFADE) * rate)]   # cut the reverb tail
            valence, arousal = rule_labels(piece)
            print(f"{name:6s} valence {valence:+.2f} arousal {arousal:+.2f} {len(section) / rate:5.1f} s")
            if len(mix):
                section[:fade] *= ramp
                mix[-fade:] *= ramp[::-1]
                mix = np.concatenate([mix[:-fade], mix[-fade:] + section[:fade], section[fade:]])
            else:
                mix = section
    mix = np.concatenate([mix[-fade:] * ramp[::-1] + mix[:fade] * ramp, mix[fade:-fade]])   # seamless loop
    mix *= 0.9 / np.abs(mix).max()          # one gain for all: soft sections stay soft
    # In blocks: libsndfile's Vorbis encoder crashes on one large write.
    with soundfile.SoundFile(OUT, "w", RENDER_RATE, 1, format="OGG", subtype="VORBIS") as f:
        for start in range(0, len(mix), 8192):
            f.write(mix[start:start + 8192])
    print(f"{OUT}: {len(mix) / RENDER_RATE:.1f} s, {OUT.stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
