"""Training the shipped model (the [train] extra: torch, scikit-learn,
librosa, mido); nothing on the serving path imports it.

    python -m rt_mer.training ...            # train, cross-validate, export (see __main__)
    python -m rt_mer.training.compare ...    # set two cross-validation trials side by side
    python -m rt_mer.training.data.corpus    # render the corpora ahead of training
    bash tools/teacher.sh                    # the teacher's outputs for distillation

Modules: recipe (what a run does), data (corpora and clips), augmentation,
network (the harmonic-filter CNN), losses, loop, evaluation,
cross_validation, export (the ONNX graph that ships), compare, baseline
(the handcrafted descriptors the network must beat), teacher (musicnn).
"""
import os

# librosa's JIT (numba) compiles for the host CPU by default; on the virtual
# AMD EPYC machines this project trains and tests on, that code crashed the
# process in librosa.onset.onset_detect (numba 0.68). Generic x86-64 code is
# safe, and fast enough for the baseline's descriptors. Set before numba loads.
os.environ.setdefault("NUMBA_CPU_NAME", "generic")
