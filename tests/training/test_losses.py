"""The training losses: the labels', the teacher's embedding and its answers."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from rt_mer.contract import WINDOW_SHAPE
from rt_mer.dsp import frontend
from rt_mer.training.data.clips import window_mean
from rt_mer.training.losses import LABEL_SMOOTHING, Student, TeacherAnswers, emotion_loss, through
from rt_mer.training.network import HarmonicCNN

from support.training_clips import taught_clip


def minimised(loss, optimiser, steps):
    """The value of `loss()` at the last of `steps` steps of `optimiser` on it."""
    for _ in range(steps):
        value = loss()
        optimiser.zero_grad()
        value.backward()
        optimiser.step()
    return value


def test_mixed_targets_are_what_the_loss_asks_for():
    """With a window mixed 3:1 (a happy, excited Q1 window with a sad Q3
    one), the loss is lowest where the outputs are the mix of the targets:
    its gradient vanishes there."""
    happy, sad = taught_clip(np.zeros((10, 8))), taught_clip(np.zeros((10, 8)))
    sad.valence = sad.arousal = 0.0
    sad.quadrant = 2
    mixing = np.array([[0.75, 0.25], [0.0, 1.0]], np.float32)
    smoothed = 0.75 * (1 - LABEL_SMOOTHING) + 0.25 * LABEL_SMOOTHING
    logits = torch.tensor([[smoothed] * 2, [LABEL_SMOOTHING] * 2]).logit().requires_grad_()
    quadrants = torch.tensor([[0.75, 1e-9, 0.25, 1e-9], [1e-9, 1e-9, 1.0, 1e-9]]).log().requires_grad_()
    outputs = type("Outputs", (), {"logits": logits, "quadrant_logits": quadrants})
    emotion_loss(outputs, [happy, sad], 0.5, mixing).backward()
    assert logits.grad.abs().max() < 1e-6 and quadrants.grad.abs().max() < 1e-6


def test_the_student_learns_the_teacher():
    """The distillation loss falls as the head learns to map embeddings to
    the teacher's (z-scored) outputs; untaught clips add nothing."""
    rng = np.random.default_rng(0)
    clips = [taught_clip(rng.normal(size=(10, 8)) * 5 + 3) for _ in range(6)]
    student = Student(clips, "penultimate", width=16)
    embedding = torch.randn(6, 16)
    starts = (0,) * 6
    optimiser = torch.optim.Adam(student.head.parameters(), lr=0.05)
    first = student.loss(embedding, clips, starts).item()
    loss = minimised(lambda: student.loss(embedding, clips, starts), optimiser, 200)
    assert loss.item() < 0.1 * first
    untaught = taught_clip(np.zeros((10, 8)))
    untaught.teacher = {}
    assert student.loss(embedding[:1], [untaught], (0,)).item() == 0.0


def test_teacher_answers_follow_the_window_and_are_learnt():
    """Each recording's answers come from the teacher's linear probe fitted
    on other artists; a window's answer is the probe on its own patches (a
    record that turns sad halfway is answered happy, then sad); the network's
    logits learn them; clips the probe did not answer (renders) add nothing."""
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
    answers = TeacherAnswers(recordings)
    assert set(answers.logits) == {clip.path for clip in recordings}
    agree = [(np.sign(answers.logits[c.path].mean(axis=0)) > 0).tolist() == [c.valence > 0.5, c.arousal > 0.5]
             for c in recordings[1:]]
    assert all(agree)
    fps = frontend.FRAMES_PER_SECOND
    early, late = (window_mean(answers.logits[recordings[0].path], int(s * fps)) for s in (0, 20))
    assert early[0] > 0 > late[0] and early[1] > 0 and late[1] > 0
    logits = torch.zeros(len(recordings), 2, requires_grad=True)
    optimiser = torch.optim.Adam([logits], lr=0.1)
    starts = (0,) * len(recordings)
    first = answers.loss(logits, recordings, starts).item()
    loss = minimised(lambda: answers.loss(logits, recordings, starts), optimiser, 500)
    wanted = np.stack([window_mean(answers.logits[clip.path], 0) for clip in recordings])
    assert loss.item() < first and np.allclose(logits.detach().numpy(), wanted, atol=0.1)   # soft targets: its logits
    render = taught_clip(np.zeros((10, 8)))
    render.path = Path("render.flac")
    assert answers.loss(logits[:1], [render], (0,)).item() == 0.0


def test_answers_through_named_branches_train_only_those():
    """through(outputs, "timbre,rhythm"): the logits keep their value, but
    their gradient reaches only the timbre and rhythm branches and heads;
    the harmonic filters, the harmony, key and register branches and the
    bias learn nothing from it. "all" is the whole network."""
    network = HarmonicCNN()
    outputs = network(torch.randn(3, *WINDOW_SHAPE) * 10 - 40)
    logits = through(outputs, "timbre,rhythm")
    assert torch.allclose(logits, outputs.logits)
    logits.sum().backward(retain_graph=True)
    taught = {name.split(".")[0] for name, p in network.named_parameters() if p.grad is not None and p.grad.any()}
    assert taught == {"timbre", "rhythm", "emotion_timbre", "emotion_rhythm"}
    network.zero_grad()
    through(outputs, "all").sum().backward()
    taught = {name.split(".")[0] for name, p in network.named_parameters() if p.grad is not None and p.grad.any()}
    assert taught == {name.split(".")[0] for name, _ in network.named_parameters()} - {"quadrant"}
