"""A few steps of tools/train.py on a tiny corpus, end to end: render,
features, baseline and training on artist folds, validation, ONNX export
that our engine opens."""
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from rt_mer.engines import open_engine
from rt_mer.engines.base import WINDOW_SHAPE

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
from corpus import EMOPIA, FOURQ  # noqa: E402


needs_data = pytest.mark.skipif(
    not Path("/usr/share/sounds/sf2/FluidR3_GM.sf2").exists() or not (EMOPIA / "train.csv").exists()
    or not (FOURQ / "labels.csv").exists(),
    reason=f"fluid-soundfont-gm or the training data ({EMOPIA}, {FOURQ}; set RT_MER_EMOPIA and RT_MER_4Q) missing")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One cache of renders and features for the module's training runs."""
    return tmp_path_factory.mktemp("cache")


def train_py(cache: Path, *args: str) -> subprocess.CompletedProcess:
    pytest.importorskip("torch")
    return subprocess.run([sys.executable, str(ROOT / "tools" / "train.py"), "--limit", "20", "--procedural", "4",
                           "--steps", "3", "--batch", "6", *args], capture_output=True, text=True,
                          env={**os.environ, "RT_MER_CACHE": str(cache)}, timeout=600)


@pytest.mark.slow
@needs_data
def test_training_smoke(tmp_path, cache):
    out = tmp_path / "model.onnx"
    result = train_py(cache, "--distill", "0", "--answers", "0", "--cv-seeds", "0", "--jobs", "1", "--out", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "step 3/3" in result.stdout
    report = json.loads(out.with_suffix(".json").read_text())
    runs = report["cross_validation"]["runs"]
    assert sorted(run["fold"] for run in runs) == [0, 1, 2, 3, 4]
    for run in runs:
        for corpus_name in ("recordings", "emopia_val"):
            assert set(run[corpus_name]) == {"quadrant", "valence", "arousal"}
            assert all(0.0 <= value <= 1.0 for value in run[corpus_name].values())
    progress = [json.loads(line) for line in out.with_suffix(".runs.jsonl").read_text().splitlines()]
    assert sorted(run["fold"] for run in progress) == [0, 1, 2, 3, 4]     # every run kept as it finished
    assert sum(len(run["recordings_logits"]) for run in progress) == 20   # each clip held out once
    assert {run["fold"]: run["recordings"] for run in progress} == {run["fold"]: run["recordings"] for run in runs}
    assert set(report["baseline"]["total"]) == {"logistic_regression", "svm"}
    assert report["procedural_clips"] == 4
    engine = open_engine(model=out)
    prediction = engine.infer(np.full((2, *WINDOW_SHAPE), -40.0, np.float32))
    assert prediction.valence.shape == (2,) and np.all(np.abs(prediction.valence) <= 1)


@pytest.mark.slow
@needs_data
def test_a_trial_cut_short_resumes_with_the_runs_it_kept(tmp_path, cache):
    out = tmp_path / "trial.onnx"
    trial = ("--distill", "0", "--answers", "0", "--no-baseline", "--cv-only", "--jobs", "2", "--out", str(out))
    first = train_py(cache, *trial, "--cv-seeds", "0")
    assert first.returncode == 0, first.stderr[-2000:]
    progress = out.with_suffix(".runs.jsonl")
    kept = progress.read_text().splitlines()
    progress.write_text("\n".join(kept[:3]) + "\n" + kept[3][:50])   # cut short after three runs, mid-write
    resumed = train_py(cache, *trial, "--cv-seeds", "0,1", "--resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"{progress}: the last line was cut off mid-write; dropped" in resumed.stdout
    assert f"7 fold runs to go, 3 kept from {progress}" in resumed.stdout
    assert len([json.loads(line) for line in progress.read_text().splitlines()]) == 10   # whole lines only
    runs = json.loads(out.with_suffix(".json").read_text())["cross_validation"]["runs"]
    assert sorted((run["seed"], run["fold"]) for run in runs) == [(seed, fold) for seed in (0, 1) for fold in range(5)]
    assert progress.read_text().splitlines()[:3] == kept[:3]           # the kept runs, as they were
    again = train_py(cache, *trial, "--cv-seeds", "0,1", "--resume", "--steps", "2")   # another recipe: none kept
    assert "10 fold runs to go" in again.stdout


@pytest.mark.slow
@needs_data
def test_distillation_needs_the_teachers_outputs_and_uses_them(tmp_path, cache):
    out = tmp_path / "model.onnx"
    import corpus
    folder = cache / "teacher" / corpus.TEACHER_VERSION        # what tools/teacher.py writes, made up
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)

    def teach(paths):
        for path in paths:
            np.savez(folder / f"{corpus.cache_key(path)}.npz", penultimate=rng.normal(size=(10, 200)).astype(np.float16))

    for taught_so_far, paths, term in (("0 of 44", [], ("--distill", "1")),
                                       ("20 of 44", [path for path, *_ in corpus.fourq_clips()],
                                        ("--distill", "0", "--answers", "1"))):
        teach(paths)        # none, then the recordings only: either way, not the recipe
        untaught = train_py(cache, *term, "--no-cv", "--no-baseline", "--out", str(out))
        last_line = untaught.stderr.strip().splitlines()[-1]
        assert untaught.returncode != 0 and f"{taught_so_far} training clips: run bash tools/teacher.sh --procedural 4" in last_line
        assert not out.exists()
    teach(sorted(cache.glob("**/*.flac")))
    taught = train_py(cache, "--distill", "1", "--mixup", "0.4", "--no-mixup-recordings", "--procedural-share", "0.1",
                      "--dynamics", "1", "--width", "1.25", "--answers", "1", "--answers-through", "timbre,rhythm",
                      "--no-cv", "--no-baseline",
                      "--out", str(out))
    assert taught.returncode == 0, taught.stderr[-2000:]
    assert "distilling the teacher's penultimate on 44 of 44 training clips" in taught.stdout
    assert "soft_twins 20" in taught.stdout and len(list(cache.glob("emopia-soft/*.flac"))) == 20
    report = json.loads(out.with_suffix(".json").read_text())
    assert report["taught_clips"] == 44 and report["recipe"]["mixup"] == 0.4 and not report["recipe"]["mixup_recordings"]
    import train
    assert report["recipe"]["procedural"] == 0.1 and report["recipe"]["recordings"] == train.Recipe.recordings
    assert report["recipe"]["dynamics"] == 1 and report["recipe"]["answers"] == 1
    assert report["recipe"]["answers_through"] == "timbre,rhythm"
    from rt_mer.model.network import HarmonicCNN
    assert report["recipe"]["width"] == 1.25 != train.Recipe.width
    assert report["parameters"] == sum(p.numel() for p in HarmonicCNN(1.25).parameters())
    assert report["parameters"] > 1.25 * sum(p.numel() for p in HarmonicCNN().parameters())    # wider branches
    window = np.random.default_rng(1).normal(-40.0, 10.0, (1, *WINDOW_SHAPE)).astype(np.float32)
    exported = open_engine(model=out).infer(window)
    out.unlink()
    again = train_py(cache, "--export-only", "--out", str(out))          # reloads the weights at their width
    assert again.returncode == 0, again.stderr[-2000:]
    np.testing.assert_allclose(open_engine(model=out).infer(window).valence, exported.valence, atol=1e-6)


def taught_clip(patches: np.ndarray):
    """A clip as train.py holds it, with the teacher's outputs but no audio."""
    import train
    clip = train.Clip.__new__(train.Clip)
    clip.spec = np.zeros((252, 480), np.float16)
    clip.valence = clip.arousal = 1.0
    clip.quadrant, clip.teacher = 0, {"penultimate": patches.astype(np.float16)}
    clip.moods = ()
    return clip


def test_teacher_targets_follow_the_window():
    """A window's target is the mean of the teacher's 3 s patches centred in
    it (patch k is centred at (k + 0.5) * 2.992 s), else the nearest one."""
    pytest.importorskip("torch")
    import train
    patches = np.arange(10, dtype=np.float32)[:, None] * np.ones((1, 4), np.float32)   # patch k is all k
    clip = taught_clip(patches)
    fps = train.frontend.FRAMES_PER_SECOND
    assert train.teacher_target(clip, "penultimate", 0)[0] == 0             # 0..4 s holds the centre at 1.5 s
    assert train.teacher_target(clip, "penultimate", int(3 * fps))[0] == 1  # 3..7 s holds 4.5 s
    assert train.teacher_target(clip, "penultimate", int(1.0 * fps))[0] == 0.5   # 1..5 s: 1.5 s and 4.5 s
    assert train.teacher_target(clip, "tags", 0) is None                     # not taught: no target


def test_the_student_learns_the_teacher():
    """The distillation loss falls as the head learns to map embeddings to
    the teacher's (z-scored) outputs; untaught clips add nothing."""
    torch = pytest.importorskip("torch")
    import train
    rng = np.random.default_rng(0)
    clips = [taught_clip(rng.normal(size=(10, 8)) * 5 + 3) for _ in range(6)]
    student = train.Student(clips, "penultimate", width=16)
    embedding = torch.randn(6, 16)
    starts = (0,) * 6
    optimiser = torch.optim.Adam(student.head.parameters(), lr=0.05)
    first = student.loss(embedding, clips, starts).item()
    for _ in range(200):
        loss = student.loss(embedding, clips, starts)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    assert loss.item() < 0.1 * first
    untaught = taught_clip(np.zeros((10, 8)))
    untaught.teacher = {}
    assert student.loss(embedding[:1], [untaught], (0,)).item() == 0.0


def test_mood_tags_are_learnt_from_the_training_recordings():
    """The mood-tag head predicts the tags found on at least MIN_CLIPS of the
    recordings it trains on, and nothing else; its loss falls as it learns
    them; clips without tags (renders) add nothing."""
    torch = pytest.importorskip("torch")
    import train
    rng = np.random.default_rng(0)
    clips = [taught_clip(np.zeros((10, 8))) for _ in range(train.MoodTags.MIN_CLIPS)]
    for i, clip in enumerate(clips):
        clip.moods = ("Sad", f"Rare {i}") + (("Calm/Peaceful",) if i else ())
    moods = train.MoodTags(clips, width=16)
    assert moods.tags == ["Sad"]                     # Calm/Peaceful on one too few, each Rare on one
    clips.append(taught_clip(np.zeros((10, 8))))
    clips[-1].moods = ("Calm/Peaceful",)
    moods = train.MoodTags(clips, width=16)
    assert moods.tags == ["Calm/Peaceful", "Sad"]
    embedding = torch.from_numpy(rng.normal(size=(len(clips), 16)).astype(np.float32))
    optimiser = torch.optim.Adam(moods.head.parameters(), lr=0.05)
    first = moods.loss(embedding, clips).item()
    for _ in range(200):
        loss = moods.loss(embedding, clips)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    assert loss.item() < 0.2 * first
    untagged = taught_clip(np.zeros((10, 8)))
    assert moods.loss(embedding[:1], [untagged]).item() == 0.0


@pytest.mark.slow
def test_teacher_answers_follow_the_window_and_are_learnt():
    """Each recording's answers come from the teacher's linear probe fitted
    on other artists; a window's answer is the probe on its own patches (a
    record that turns sad halfway is answered happy, then sad); the network's
    logits learn them; clips the probe did not answer (renders) add nothing."""
    torch = pytest.importorskip("torch")
    import train
    rng = np.random.default_rng(0)
    recordings = []
    for i in range(64):
        quadrant = i % 4                                       # 0..3: happy, tense, sad, calm; each artist all four
        valence, arousal = quadrant in (0, 3), quadrant in (0, 1)
        patches = rng.normal(size=(10, 8)) + np.r_[3.0 if valence else -3.0, 3.0 if arousal else -3.0, [0] * 6]
        clip = taught_clip(patches)
        clip.path, clip.artist, clip.quadrant = Path(f"r{i}.mp3"), f"artist {i // 4}", quadrant
        clip.valence, clip.arousal = float(valence), float(arousal)
        recordings.append(clip)
    turning = recordings[0].teacher["penultimate"].astype(np.float32)
    turning[5:, 0] = -3.0                                     # happy for 15 s, then sad
    recordings[0].teacher["penultimate"] = turning
    answers = train.TeacherAnswers(recordings)
    assert set(answers.logits) == {clip.path for clip in recordings}
    agree = [(np.sign(answers.logits[c.path].mean(axis=0)) > 0).tolist() == [c.valence > 0.5, c.arousal > 0.5]
             for c in recordings[1:]]
    assert all(agree)
    fps = train.frontend.FRAMES_PER_SECOND
    early, late = (train.window_mean(answers.logits[recordings[0].path], int(s * fps)) for s in (0, 20))
    assert early[0] > 0 > late[0] and early[1] > 0 and late[1] > 0
    logits = torch.zeros(len(recordings), 2, requires_grad=True)
    optimiser = torch.optim.Adam([logits], lr=0.1)
    starts = (0,) * len(recordings)
    first = answers.loss(logits, recordings, starts).item()
    for _ in range(500):
        loss = answers.loss(logits, recordings, starts)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    wanted = np.stack([train.window_mean(answers.logits[clip.path], 0) for clip in recordings])
    assert loss.item() < first and np.allclose(logits.detach().numpy(), wanted, atol=0.1)   # soft targets: its logits
    render = taught_clip(np.zeros((10, 8)))
    render.path = Path("render.flac")
    assert answers.loss(logits[:1], [render], (0,)).item() == 0.0


@pytest.mark.slow
def test_answers_through_named_branches_train_only_those():
    """--answers-through timbre,rhythm: the logits keep their value, but
    their gradient reaches only the timbre and rhythm branches and heads;
    the harmonic filters, the harmony, key and register branches and the
    bias learn nothing from it. "all" is the whole network; a branch the
    network lacks is refused in one line."""
    torch = pytest.importorskip("torch")
    import train
    from rt_mer.model.network import HarmonicCNN
    network = HarmonicCNN()
    outputs = network(torch.randn(3, *WINDOW_SHAPE) * 10 - 40)
    logits = train.through(outputs, "timbre,rhythm")
    assert torch.allclose(logits, outputs.logits)
    logits.sum().backward(retain_graph=True)
    taught = {name.split(".")[0] for name, p in network.named_parameters() if p.grad is not None and p.grad.any()}
    assert taught == {"timbre", "rhythm", "emotion_timbre", "emotion_rhythm"}
    network.zero_grad()
    train.through(outputs, "all").sum().backward()
    taught = {name.split(".")[0] for name, p in network.named_parameters() if p.grad is not None and p.grad.any()}
    assert taught == {name.split(".")[0] for name, _ in network.named_parameters()} - {"quadrant"}
    refused = subprocess.run([sys.executable, str(ROOT / "tools" / "train.py"), "--answers-through", "timbre,melody"],
                             capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines()[-1].endswith(
        "--answers-through names branches from harmony,key,register,timbre,rhythm, or is all")


@pytest.mark.slow
def test_answers_train_only_the_first_share_of_the_steps(monkeypatch):
    """--answers-until 0.5: the answers' term is in the loss of the first
    half of the steps only; the rest learn from the labels alone. A share
    outside (0, 1] is refused in one line."""
    pytest.importorskip("torch")
    import train
    rng = np.random.default_rng(0)
    recordings = [taught_clip(rng.normal(size=(10, 8))) for _ in range(16)]
    for i, clip in enumerate(recordings):
        clip.path, clip.artist, clip.quadrant = Path(f"r{i}.mp3"), f"artist {i}", i % 4
        clip.valence, clip.arousal = float(i % 4 in (0, 3)), float(i % 4 in (0, 1))
    answered = []
    monkeypatch.setattr(train.TeacherAnswers, "loss", lambda self, logits, *_: answered.append(1) or logits.sum() * 0)
    recipe = train.Recipe(steps=6, batch=4, recordings=1.0, procedural=0.0, distill=0.0, mixup=0.0,
                          answers=1.0, answers_until=0.5)
    train.train(recordings, [], [], recipe, seed=0, log=lambda *_: None)
    assert len(answered) == 3
    refused = subprocess.run([sys.executable, str(ROOT / "tools" / "train.py"), "--answers-until", "0"],
                             capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines()[-1].endswith("--answers-until is a share of the steps: above 0, at most 1")


def test_masking_drops_one_band_and_one_stretch_of_time():
    """With --masking 1 every window loses one band of at most 8 semitones
    and one stretch of at most 0.5 s, set to silence, the rest untouched
    beyond the other augmentations; --masking 0 draws nothing more, so the
    recipes without it train as before, bit for bit."""
    torch = pytest.importorskip("torch")
    import train
    frontend = train.frontend
    loud = torch.full((16, frontend.N_BINS, frontend.WINDOW_FRAMES), -20.0)

    def augmented(masking: float) -> torch.Tensor:
        return train.augment(loud.clone(), torch.Generator().manual_seed(3), masking)

    plain, masked = augmented(0.0), augmented(1.0)
    assert torch.equal(plain, train.augment(loud.clone(), torch.Generator().manual_seed(3)))
    silent, silent_before = masked == frontend.FLOOR_DB, plain == frontend.FLOOR_DB
    assert (masked[~silent] == plain[~silent]).all()
    bands, spans = silent.all(dim=2), silent.all(dim=1)        # [windows, bins] and [windows, frames]
    assert torch.equal(silent, bands[:, :, None] | spans[:, None, :])     # a band and a stretch, nothing else
    band_bins = bands.sum(dim=1) - silent_before.all(dim=2).sum(dim=1)    # beyond the transposition's edge
    assert band_bins.max() <= 8 * frontend.BINS_PER_SEMITONE + 1 and (band_bins > 0).sum() > 8
    span_frames = spans.sum(dim=1)
    assert span_frames.max() <= frontend.FRAMES_PER_SECOND / 2 + 1 and (span_frames > 0).sum() > 8


def test_mixup_mixes_windows_of_one_corpus():
    """Each row of the mixing matrix is a share of its own window and the
    rest of one partner from its own corpus (consecutive groups)."""
    pytest.importorskip("torch")
    import train
    mixing = train.mixing_matrix([(3, 0.4), (5, 0.4), (2, 0.0), (2, 0.4)], np.random.default_rng(1))
    assert np.allclose(mixing.sum(axis=1), 1.0) and (mixing >= 0).all()
    assert all(np.count_nonzero(row) <= 2 for row in mixing)
    assert (mixing[8:10, :] == np.eye(12)[8:10]).all()                # alpha 0: not mixed
    corpus = np.repeat([0, 1, 2, 3], [3, 5, 2, 2])
    rows, columns = np.nonzero(mixing)
    assert (corpus[rows] == corpus[columns]).all()
    assert (np.diag(mixing) > 0).all()                                 # each row holds its own window
    assert any(np.count_nonzero(row) == 2 for row in mixing)         # some windows are mixed


def test_mixed_targets_are_what_the_loss_asks_for():
    """With a window mixed 3:1 (a happy, excited Q1 window with a sad Q3
    one), the loss is lowest where the outputs are the mix of the targets:
    its gradient vanishes there."""
    torch = pytest.importorskip("torch")
    import train
    happy, sad = taught_clip(np.zeros((10, 8))), taught_clip(np.zeros((10, 8)))
    sad.valence = sad.arousal = 0.0
    sad.quadrant = 2
    mixing = np.array([[0.75, 0.25], [0.0, 1.0]], np.float32)
    smoothed = 0.75 * (1 - train.LABEL_SMOOTHING) + 0.25 * train.LABEL_SMOOTHING
    logits = torch.tensor([[smoothed] * 2, [train.LABEL_SMOOTHING] * 2]).logit().requires_grad_()
    quadrants = torch.tensor([[0.75, 1e-9, 0.25, 1e-9], [1e-9, 1e-9, 1.0, 1e-9]]).log().requires_grad_()
    outputs = type("Outputs", (), {"logits": logits, "quadrant_logits": quadrants})
    train.emotion_loss(outputs, [happy, sad], 0.5, mixing).backward()
    assert logits.grad.abs().max() < 1e-6 and quadrants.grad.abs().max() < 1e-6
    before_mixup = {k: v for k, v in train.asdict(train.Recipe()).items() if not k.startswith("mixup")}
    assert train.same_recipe(before_mixup, train.Recipe(mixup=0.0, mixup_recordings=True))
    assert not train.same_recipe(before_mixup, train.Recipe())
    assert not train.same_recipe(train.asdict(train.Recipe()), train.Recipe(mixup=0.0))


def test_mixup_adds_sounds_at_their_shares():
    """Two tones, the second 20 dB quieter, mixed 3:1 are heard 3:1: each is
    first brought to the same peak, powers add, the mix keeps the row's level."""
    torch = pytest.importorskip("torch")
    import train
    spec = torch.full((2, 50, 8), -160.0)
    spec[0, 10], spec[1, 40] = -10.0, -30.0
    mixing = np.array([[0.75, 0.25], [0.0, 1.0]], np.float32)
    mix = train.mix_windows(spec, mixing)
    assert mix[0, 10, 0].item() == pytest.approx(-10 + 10 * np.log10(0.75), abs=1e-3)
    assert mix[0, 40, 0].item() == pytest.approx(-10 + 10 * np.log10(0.25), abs=1e-3)
    assert torch.allclose(mix[1], spec[1], atol=1e-3)                  # unmixed: unchanged
    silence = torch.full((2, 50, 8), train.frontend.FLOOR_DB)
    silence[0] = spec[0]
    mix = train.mix_windows(silence, np.array([[0.8, 0.2], [0.5, 0.5]], np.float32))
    assert mix[0, 20].max().item() == train.frontend.FLOOR_DB          # silence adds nothing
    assert mix[1, 10, 0].item() == pytest.approx(-100 + 10 * np.log10(0.5), abs=1e-3)   # at the silent window's level (60 dB above the floor)
    targets = [np.array([1.0, 0.0]), np.array([0.0, 1.0])]
    assert np.allclose(train.mixed(targets, mixing)[0], [0.75, 0.25])
    assert train.mixed([targets[0], None], mixing) == [None, None]     # a mix with an untaught window: no target


def test_batch_shares_are_the_recipes():
    """Each corpus gets its share of a batch, rounded; a corpus at share 0
    is left out; shares that do not fit in a batch are refused in one line."""
    pytest.importorskip("torch")
    import train
    clips = [taught_clip(np.zeros((10, 8))) for _ in range(4)]
    sample = train.Sampler([(clips, 0.45, 0.0), (clips, 0.55, 0.4), (clips, 0.0, 0.4)], 24, np.random.default_rng(0))
    assert sample.groups == [(11, 0.0), (13, 0.4)] and len(sample()) == 24
    refused = subprocess.run([sys.executable, str(ROOT / "tools" / "train.py"), "--recordings-share", "0.7",
                              "--procedural-share", "0.4"], capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines()[-1].endswith("each from 0, together at most 1")


@pytest.mark.skipif(not Path("/usr/share/sounds/sf2/FluidR3_GM.sf2").exists(), reason="fluid-soundfont-gm missing")
def test_a_soft_twin_is_the_same_notes_struck_softer(tmp_path):
    mido = pytest.importorskip("mido")
    import corpus
    from music import PASSAGE
    from procedural import write_midi
    played = write_midi(replace(PASSAGE, seconds=6.0), tmp_path / "played.mid")
    soft = corpus.softened(played, tmp_path / "soft.mid", 0.4)
    before, after = (list(mido.MidiFile(path)) for path in (played, soft))
    assert [m.copy(velocity=0) if m.type == "note_on" else m for m in before] == \
        [m.copy(velocity=0) if m.type == "note_on" else m for m in after]        # the same notes at the same times
    struck = [(a.velocity, b.velocity) for a, b in zip(before, after) if a.type == "note_on" and a.velocity]
    assert struck and all(b == max(1, round(a * 0.4)) for a, b in struck)
    import soundfile
    peaks = [np.abs(soundfile.read(corpus.render(midi, midi.with_suffix(".flac")))[0]).max() for midi in (played, soft)]
    assert peaks[1] < 0.5 * peaks[0]


def test_soft_twins_compare_one_window_under_one_augmentation():
    """A pair is the same crop of both renders given the same room,
    microphone, codec and transposition: a twin 20 dB quieter stays 20 dB
    quieter through the augmentation, everywhere. The loss asks the played
    window to be the more aroused."""
    torch = pytest.importorskip("torch")
    import train
    rng = np.random.default_rng(0)
    played = [taught_clip(np.zeros((10, 8))) for _ in range(3)]
    for clip in played:
        clip.spec = rng.uniform(-80, -20, (252, 300)).astype(np.float16)
    soft = [taught_clip(np.zeros((10, 8))) for _ in range(3)]
    for clip, twin in zip(played, soft):
        twin.spec = clip.spec - np.float16(20)
    windows = train.SoftTwins(played, soft).windows(rng, torch.Generator().manual_seed(0))
    loud, quiet = windows.chunk(2)
    assert loud.shape == (train.SoftTwins.PAIRS, 252, train.frontend.WINDOW_FRAMES)
    floor = (loud <= train.frontend.FLOOR_DB + 1e-3) & (quiet <= train.frontend.FLOOR_DB + 1e-3)
    assert torch.where(floor, True, torch.isclose(quiet, loud - 20, atol=0.05)).all()
    assert (loud.mean(dim=(1, 2)) + 50).abs().max() > 1          # augmented (a raw crop's mean is -50 +- 0.2)
    logits = torch.zeros(2 * train.SoftTwins.PAIRS, requires_grad=True)
    train.SoftTwins.loss(logits).backward()
    assert (logits.grad[:train.SoftTwins.PAIRS] < 0).all() and (logits.grad[train.SoftTwins.PAIRS:] > 0).all()


def fold_runs(seed: int, quadrant_by_fold: list[float], clips_by_fold: list[int], emopia: float = 0.6,
              recipe: dict | None = None) -> list[dict]:
    """Lines of a runs.jsonl as tools/train.py writes them (scores made up)."""
    return [{"recipe": recipe or {"steps": 8}, "seed": seed, "fold": fold, "recordings_logits": [[0.0, 0.0]] * clips,
             "recordings": {"quadrant": quadrant, "valence": 0.8, "arousal": 0.9},
             "emopia_val": {"quadrant": emopia, "valence": 0.7, "arousal": 0.9}}
            for fold, (quadrant, clips) in enumerate(zip(quadrant_by_fold, clips_by_fold))]


def compare_py(*sources: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "tools" / "compare.py"), *sources],
                          capture_output=True, text=True, timeout=120)


def test_compare_pairs_two_trials_run_by_run(tmp_path):
    """A seed's total weighs its folds by their clips; a seed cut short has
    none; fold runs are paired by seed and fold and counted; only the runs
    of the file's last recipe count, those written before a field was added
    to it among them; a report key of cross-validation.json serves as the
    reference."""
    trial = tmp_path / "trial.runs.jsonl"
    runs = (fold_runs(0, [0.1] * 5, [20] * 5, recipe={"steps": 4})            # an earlier recipe's trial
            + fold_runs(0, [0.7, 0.8, 0.6, 0.7, 0.5], [10, 30, 20, 20, 20])
            + fold_runs(1, [0.7, 0.7], [20, 20], recipe={"steps": 8, "answers": 0.0}))   # resumed after --answers came
    trial.write_text("".join(json.dumps(run) + "\n" for run in runs))
    reference = fold_runs(0, [0.6, 0.8, 0.7, 0.6, 0.4], [20] * 5, emopia=0.65) + fold_runs(1, [0.6] * 5, [20] * 5)
    report = tmp_path / "cross-validation.json"
    report.write_text(json.dumps({"about": "", "old": {"recipe": {"steps": 2}, "cross_validation": {
        "runs": reference, "total": {"0": {"quadrant": 0.62}, "1": {"quadrant": 0.6}}}}}))
    result = compare_py(str(trial), f"{report}:old")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f'{trial}: recipe {{"steps": 8, "answers": 0.0}}' and f'against {report}:old: recipe {{"steps": 2}}' in lines
    assert "| all clips | **0.670** / 0.800 / 0.900 | - | |" in lines    # (7 + 24 + 12 + 14 + 10) / 100
    assert "| 4 | 0.500 / 0.800 / 0.900 | - | 0.600, - |" in lines
    assert "seed 0 total: 0.670 against 0.620" in lines and "seed 1 total" not in result.stdout
    assert "runs 7: four quadrants" in result.stdout                      # not the earlier recipe's 5
    assert "recordings: 5 better, 1 equal, 1 worse of 7 fold runs" in result.stdout
    assert "(worse: seed 0 fold 2 -0.100)" in result.stdout
    assert "emopia_val: 0 better, 2 equal, 5 worse of 7 fold runs" in result.stdout


def test_compare_says_what_it_cannot_read(tmp_path):
    """One line and a non-zero exit for what holds no fold runs."""
    report, runs = tmp_path / "cross-validation.json", tmp_path / "trial.runs.jsonl"
    report.write_text(json.dumps({"about": "text", "old": {}}))
    cases = {str(tmp_path / "none.runs.jsonl"): f"compare: {tmp_path / 'none.runs.jsonl'}: No such file or directory",
             f"{report}:new": f"compare: no fold runs in {report}:new (ValueError: no 'new'; it has about, old)",
             f"{report}:old": f"compare: no fold runs in {report}:old (KeyError: 'total')",
             f"{report}:about": f"compare: no fold runs in {report}:about (AttributeError:",
             str(runs): f"compare: no fold runs in {runs} (ValueError: no fold runs)"}
    runs.write_text("")
    for source, expected in cases.items():
        result = compare_py(source)
        lines = result.stderr.strip().splitlines()
        assert result.returncode != 0 and len(lines) == 1 and lines[0].startswith(expected), result.stderr
    runs.write_text(json.dumps(fold_runs(0, [0.5], [20])[0]) + "\n" + '{"recipe": {"ste')    # cut off mid-line
    cut = compare_py(str(runs))
    assert cut.returncode != 0 and cut.stderr.strip().startswith(f"compare: no fold runs in {runs} (JSONDecodeError")


def test_compare_records_a_trial_into_the_reports(tmp_path):
    """--record puts the runs (without their logits), each complete seed's
    total and the summary under a key, marked as stopped while a seed lacks
    folds; recording again replaces the key and keeps the others."""
    trial, reports = tmp_path / "trial.runs.jsonl", tmp_path / "cross-validation.json"
    reports.write_text(json.dumps({"about": "text", "old": {"recipe": {}}}))
    runs = fold_runs(0, [0.7, 0.8, 0.6, 0.7, 0.5], [10, 30, 20, 20, 20]) + fold_runs(1, [0.7, 0.7], [20, 20])
    for count, stopped in ((7, "7 fold runs, seeds with every fold: 0 (cut short; tools/train.py --resume continues)"),
                           (5, None)):
        trial.write_text("".join(json.dumps(run) + "\n" for run in runs[:count]))
        result = compare_py(str(trial), "--record", "probe", "--into", str(reports))
        assert result.returncode == 0 and result.stdout.endswith(f"recorded as {reports}:probe\n"), result.stderr
        written = json.loads(reports.read_text())
        assert written["about"] == "text" and written["old"] == {"recipe": {}}
        block = written["probe"]["cross_validation"]
        assert written["probe"]["recipe"] == {"steps": 8} and block.get("stopped") == stopped
        assert len(block["runs"]) == count and "recordings_logits" not in block["runs"][0]
        assert block["total"] == {"0": {"quadrant": 0.67, "valence": 0.8, "arousal": 0.9}}
        assert block["summary"]["recordings_quadrant"]["max"] == 0.8
    missing = compare_py(str(trial), "--record", "probe", "--into", str(tmp_path / "none.json"))
    assert missing.returncode != 0 and missing.stderr.strip() == f"compare: {tmp_path / 'none.json'}: No such file or directory"


def test_a_running_level_network_is_computed_once_per_frame():
    """--running-level --causal (the per-frame network's probe): a frame's
    features never change once computed. Windows 8 frames apart agree on
    every map position they share; the frame half run a pair of frames at a
    time, as a stream would, equals it run over the window; a frame after
    the window changes nothing; a gain change changes nothing either."""
    torch = pytest.importorskip("torch")
    from rt_mer.model.network import HarmonicCNN, frame_maxima, running_reference
    torch.manual_seed(0)
    network = HarmonicCNN(running_level=True, causal=True).eval()
    frames = WINDOW_SHAPE[-1]
    x = torch.randn(2, *WINDOW_SHAPE[:-1], network.history + frames + 8) * 20 - 50
    with torch.no_grad():
        later, earlier = network.features(x[..., 8:]), network.features(x[..., :-8])
        for index in (0, 2, 3):                         # pitch-class, register and timbre maps: 2 steps per 8 frames
            assert torch.allclose(later[index][..., :-2], earlier[index][..., 2:], atol=1e-5)
        window = x[..., -frames:]
        reference = running_reference(frame_maxima(x), frames)
        whole = network.frame_features(window, reference)
        pairs = [network.frame_features(window[..., t:t + 2], reference[..., t:t + 2]) for t in range(0, frames, 2)]
        for part, joined in zip(whole, zip(*pairs)):
            assert torch.allclose(part, torch.cat(joined, dim=-1), atol=1e-5)
        assert torch.equal(running_reference(frame_maxima(torch.cat([x, x[..., :1] + 40], dim=-1)), frames + 1)[..., :-1],
                           reference)
        assert torch.allclose(network(x + 12).logits, network(x).logits, atol=1e-5)


def test_crops_carry_the_history_a_running_level_needs():
    import train
    spec = np.arange(5 * 100, dtype=np.float32).reshape(5, 100)
    window, start = train.crop(spec, np.random.default_rng(1), history=64)
    assert window.shape == (5, 128) and np.array_equal(window[:, 64:], spec[:, start:start + 64])
    assert np.array_equal(window[:, 64 - start:64], spec[:, :start]) and (window[:, :64 - start] == -160).all()
    plain, same_start = train.crop(spec, np.random.default_rng(1))           # no history: as before
    assert same_start == start and np.array_equal(plain, spec[:, start:start + 64])
    short, _ = train.crop(spec[:, :30], np.random.default_rng(0), history=64)
    assert short.shape == (5, 128) and np.array_equal(short[:, -30:], spec[:, :30]) and (short[:, :-30] == -160).all()


@pytest.mark.slow
def test_the_per_frame_probes_are_refused_where_they_cannot_run():
    for flags, message in ((["--causal"], "--causal needs --running-level"),
                           (["--running-level"], "--running-level is a probe: the serving graph does not take it yet")):
        refused = subprocess.run([sys.executable, str(ROOT / "tools" / "train.py"), *flags],
                                 capture_output=True, text=True, timeout=120)
        assert refused.returncode == 2 and message in refused.stderr.strip().splitlines()[-1]


@pytest.mark.slow
def test_a_causal_network_streams_exactly_a_hop_at_a_time(tmp_path):
    """The hop graph (rt_mer.model.streaming) computes each layer at a hop's
    new positions only, from the stream's state: every window's outputs
    equal the network's over that window and its history, from a stream's
    start in silence, through a quiet passage; and so do ONNX Runtime's
    on the exported graph."""
    torch = pytest.importorskip("torch")
    import onnxruntime
    from rt_mer.model.network import ExportWrapper, HarmonicCNN
    from rt_mer.model.streaming import HopGraph, export
    torch.manual_seed(0)
    network = HarmonicCNN(1.5, running_level=True, causal=True)
    for norm in (m for m in network.modules() if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d))):
        norm.running_mean.normal_(0, 0.3)           # trained statistics, not the identity
        norm.running_var.uniform_(0.5, 2.0)
    network.eval()
    graph, whole = HopGraph(network).eval(), ExportWrapper(network)
    span = network.history + WINDOW_SHAPE[-1]
    music = torch.randn(1, *WINDOW_SHAPE[:-1], 160) * 15 - 50
    music[..., 90:120] -= 30
    stream = torch.cat([torch.full((1, *WINDOW_SHAPE[:-1], span), -160.0), music], dim=-1)   # silence before it
    export(graph, tmp_path / "hop.onnx")
    session = onnxruntime.InferenceSession(str(tmp_path / "hop.onnx"), providers=["CPUExecutionProvider"])
    state = graph.silence()
    ort_state = state.numpy()
    with torch.no_grad():
        for end in range(8, music.shape[-1] + 1, 8):
            hop = music[..., end - 8:end]
            *outputs, state = graph(hop, state)
            *ort_outputs, ort_state = session.run(None, {"frames": hop.numpy(), "state": ort_state})
            for streamed, served, expected in zip(outputs, ort_outputs, whole(stream[..., end:end + span])):
                assert torch.allclose(streamed, expected, atol=1e-5), end
                np.testing.assert_allclose(served, expected.numpy(), atol=1e-4)
