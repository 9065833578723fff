"""The cache folder (rt_mer.cache) follows the environment."""
from __future__ import annotations

from rt_mer.cache import cache_dir


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("RT_MER_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "rt-mer"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "rt-mer"
    monkeypatch.setenv("RT_MER_CACHE", str(tmp_path / "mine"))
    assert cache_dir() == tmp_path / "mine"
