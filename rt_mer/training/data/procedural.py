"""A procedurally generated corpus: melody, chords, bass and drums on General
MIDI instruments, labelled by rules, not ratings.

The labels follow the documented effects of musical cues on perceived emotion
(Gabrielsson & Lindström 2010; Eerola, Friberg & Bresin 2013): mode is the
strongest cue for valence, tempo and dynamics for arousal; staccato
articulation, a high register and consonance raise valence; staccato, a high
register and dense rhythm raise arousal. Each cue is drawn independently, so
the network cannot learn one cue as a proxy for another.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import mido

from .corpus import render_all

TICKS = 480                                    # per beat
MAJOR = (0, 2, 4, 5, 7, 9, 11)
MINOR = (0, 2, 3, 5, 7, 8, 10)                 # natural minor
PROGRESSIONS = ((0, 4, 5, 3), (0, 3, 4, 0), (0, 5, 3, 4), (0, 3, 0, 4), (5, 3, 0, 4))
# General MIDI programs (0-based) by role, for timbre diversity.
LEAD = (0, 4, 6, 11, 13, 24, 25, 26, 40, 41, 56, 60, 65, 68, 71, 73, 80, 81)
HARMONY = (0, 2, 4, 5, 16, 19, 24, 27, 46, 48, 49, 52, 61, 88, 89, 90)
BASS = (32, 33, 34, 35, 38, 42, 43, 57, 58)
DRUM_CHANNEL = 9
CLIPS = 400                                    # the corpus training trains on and the teacher tags


@dataclass(frozen=True)
class Piece:
    """The musical cues of one generated clip."""
    major: bool
    tempo_bpm: float           # 50 .. 180
    velocity: int              # 30 .. 120 (dynamics)
    staccato: float            # 0 legato .. 1 staccato
    register: int              # melody octave offset, -1 .. +1
    dissonance: float          # 0 consonant .. 1 (added seconds and tritones)
    density: int               # melody notes per beat: 1, 2 or 4
    drums: bool
    key: int                   # tonic pitch class
    lead: int
    harmony: int
    bass: int
    seconds: float = 20.0
    seed: int = 0


def random_piece(rng: random.Random, seconds: float = 20.0) -> Piece:
    return Piece(major=rng.random() < 0.5, tempo_bpm=rng.uniform(50, 180), velocity=rng.randint(30, 120),
                 staccato=rng.random(), register=rng.randint(-1, 1), dissonance=rng.random() ** 2,
                 density=rng.choice((1, 2, 4)), drums=rng.random() < 0.5, key=rng.randrange(12),
                 lead=rng.choice(LEAD), harmony=rng.choice(HARMONY), bass=rng.choice(BASS),
                 seconds=seconds, seed=rng.randrange(2**31))


def rule_labels(piece: Piece) -> tuple[float, float]:
    """(valence, arousal) in [-1, 1] from the cues, weights after the
    regression results of Eerola, Friberg & Bresin (2013)."""
    tempo = (piece.tempo_bpm - 115) / 65
    loudness = (piece.velocity - 75) / 45
    articulation = 2 * piece.staccato - 1
    dissonance = 2 * piece.dissonance - 1
    density = {1: -1.0, 2: 0.0, 4: 1.0}[piece.density]
    valence = (0.55 * (1 if piece.major else -1) + 0.15 * tempo + 0.1 * articulation
               + 0.1 * piece.register - 0.25 * dissonance)
    arousal = (0.45 * tempo + 0.25 * loudness + 0.15 * articulation + 0.1 * density
               + 0.1 * (1 if piece.drums else -1) + 0.05 * piece.register)
    return max(-1.0, min(1.0, valence)), max(-1.0, min(1.0, arousal))


def _note(track: list, start: float, length: float, pitch: int, velocity: int, channel: int) -> None:
    track.append((round(start * TICKS), "note_on", pitch, velocity, channel))
    track.append((round((start + length) * TICKS), "note_off", pitch, 0, channel))


def _chord(scale: tuple, degree: int, root: int, dissonance: float, rng: random.Random) -> list[int]:
    pitches = [root + scale[(degree + step) % 7] + 12 * ((degree + step) // 7) for step in (0, 2, 4)]
    if rng.random() < dissonance:
        pitches.append(pitches[0] + rng.choice((1, 6, 11, 13)))      # minor 2nd, tritone, major 7th
    return pitches


def write_midi(piece: Piece, path: Path) -> Path:
    """Write `piece` as a type-1 MIDI file."""
    rng = random.Random(piece.seed)
    scale = MAJOR if piece.major else MINOR
    beats = int(piece.seconds * piece.tempo_bpm / 60) + 1
    tonic = 60 + piece.key - 12 * (piece.key > 5)
    hold = 1.0 - 0.8 * piece.staccato                                  # fraction of each note sounded
    events: list = []
    progression = rng.choice(PROGRESSIONS)
    melody_degree = 7
    for bar in range(0, beats, 4):
        degree = progression[(bar // 4) % 4]
        chord = _chord(scale, degree, tonic - 12, piece.dissonance, rng)
        for beat in range(bar, min(bar + 4, beats)):
            for pitch in chord:
                _note(events, beat, hold, pitch, int(piece.velocity * 0.7), 1)
            _note(events, beat, hold, tonic - 24 + scale[degree % 7], int(piece.velocity * 0.8), 2)
            for step in range(piece.density):
                melody_degree = max(0, min(20, melody_degree + rng.choice((-2, -1, -1, 1, 1, 2))))
                if rng.random() < 0.3:                                # gravitate to chord tones
                    melody_degree = degree + rng.choice((0, 2, 4)) + 7
                pitch = tonic + 12 * piece.register + scale[melody_degree % 7] + 12 * (melody_degree // 7 - 1)
                _note(events, beat + step / piece.density, hold / piece.density, pitch, piece.velocity, 0)
            if piece.drums:
                _note(events, beat, 0.1, 36 if beat % 2 == 0 else 38, piece.velocity, DRUM_CHANNEL)
                for eighth in (0, 0.5):
                    _note(events, beat + eighth, 0.1, 42, int(piece.velocity * 0.6), DRUM_CHANNEL)
    midi = mido.MidiFile(ticks_per_beat=TICKS)
    track = mido.MidiTrack()
    midi.tracks.append(track)
    track.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(piece.tempo_bpm)))
    for channel, program in ((0, piece.lead), (1, piece.harmony), (2, piece.bass)):
        track.append(mido.Message("program_change", channel=channel, program=program))
    now = 0
    for tick, kind, pitch, velocity, channel in sorted(events, key=lambda e: (e[0], e[1] == "note_on")):
        track.append(mido.Message(kind, note=max(0, min(127, pitch)), velocity=velocity, channel=channel,
                                  time=tick - now))
        now = tick
    path.parent.mkdir(parents=True, exist_ok=True)
    midi.save(path)
    return path


def make_corpus(folder: Path, count: int = CLIPS, seed: int = 1234) -> list[tuple[Path, float, float]]:
    """Write, render and label `count` clips; returns (audio, valence, arousal)."""
    rng = random.Random(seed)
    pieces = [random_piece(rng) for _ in range(count)]
    midis = [write_midi(piece, folder / "midi" / f"{i:04d}.mid") for i, piece in enumerate(pieces)]
    audio = render_all([(midi, folder / "audio" / f"{midi.stem}.flac") for midi in midis])
    return [(path, *rule_labels(piece)) for path, piece in zip(audio, pieces)]
