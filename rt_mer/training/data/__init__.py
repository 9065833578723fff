"""The training data: the corpora (files on disk, renders in the cache) and
the clips training reads from them (spectrograms, labels, teacher outputs).
NumPy only: the teacher's environment imports it without torch."""
