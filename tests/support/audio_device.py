"""A virtual sound card for tests: a private PulseAudio daemon with a null
sink, reached by PortAudio through ALSA's "pulse" plugin.

Audio played into the sink `rtmer_test` (paplay) comes out of its monitor,
`rtmer_test.monitor`, the default source, which PortAudio's ALSA devices
"pulse" and "default" capture. Everything lives in a temporary folder; the
daemon runs in the foreground as our child and is killed on `stop`.

Debian packages: pulseaudio (daemon), pulseaudio-utils (pactl, paplay),
libasound2-plugins (the ALSA pulse plugin), libportaudio2.

    with VirtualAudioDevice() as device:
        device.play("tone.wav")           # into the null sink, returns at once
        MicSource(device="pulse")         # captures it
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SINK = "rtmer_test"
PACKAGES = "pulseaudio pulseaudio-utils libasound2-plugins libportaudio2"


def missing() -> str | None:
    """Why the virtual device cannot run here, or None."""
    tools = [tool for tool in ("pulseaudio", "pactl", "paplay") if shutil.which(tool) is None]
    if tools:
        return f"{', '.join(tools)} not installed (apt-get install {PACKAGES})"
    if not any(Path(d, "alsa-lib", "libasound_module_pcm_pulse.so").exists()
               for d in ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib")):
        return "the ALSA pulse plugin is not installed (apt-get install libasound2-plugins)"
    return None


class VirtualAudioDevice:
    """A private PulseAudio server with one null sink, for this process and
    its children (it sets PULSE_SERVER in os.environ while running)."""

    def __init__(self) -> None:
        self.folder: Path | None = None
        self.process: subprocess.Popen | None = None
        self._log = None
        self._saved_env: dict[str, str | None] = {}

    def start(self) -> "VirtualAudioDevice":
        self.folder = Path(tempfile.mkdtemp(prefix="rtmer-pulse-"))
        socket = self.folder / "native"
        self._log = open(self.folder / "pulseaudio.log", "wb")
        env = {**os.environ, "HOME": str(self.folder), "PULSE_RUNTIME_PATH": str(self.folder / "run"),
               "PULSE_STATE_PATH": str(self.folder / "state")}
        # -n: no default.pa (no hardware probing); anonymous auth: clients need no cookie.
        self.process = subprocess.Popen(
            ["pulseaudio", "--daemonize=no", "--system=false", "--exit-idle-time=-1", "--disallow-exit=yes",
             "--use-pid-file=no", "-n", "--log-target=stderr", "--log-level=error",
             f"--load=module-native-protocol-unix auth-anonymous=1 socket={socket}",
             f"--load=module-null-sink sink_name={SINK} rate=48000 channels=2"],
            env=env, stdout=subprocess.DEVNULL, stderr=self._log)
        for name, value in (("PULSE_SERVER", f"unix:{socket}"), ("PULSE_SINK", SINK),
                            ("PULSE_SOURCE", f"{SINK}.monitor")):
            self._saved_env[name] = os.environ.get(name)
            os.environ[name] = value
        deadline = time.monotonic() + 10
        while self._pactl("info", check=False).returncode != 0:
            if self.process.poll() is not None or time.monotonic() > deadline:
                log = (self.folder / "pulseaudio.log").read_text(errors="replace").strip()
                self.stop()
                raise RuntimeError(f"pulseaudio did not start: {log[-500:]}")
            time.sleep(0.1)
        self._pactl("set-default-sink", SINK)
        self._pactl("set-default-source", f"{SINK}.monitor")
        self._refresh_portaudio()
        return self

    def _pactl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(["pactl", *args], capture_output=True, check=check, timeout=10)

    @staticmethod
    def _refresh_portaudio() -> None:
        # PortAudio lists devices once, at initialisation: if sounddevice was
        # imported before the server ran, "pulse" is missing until it re-scans.
        sd = sys.modules.get("sounddevice")
        if sd is not None:
            sd._terminate()
            sd._initialize()

    def play(self, path: str | Path) -> subprocess.Popen:
        """Start playing an audio file into the null sink; returns the player."""
        return subprocess.Popen(["paplay", f"--device={SINK}", str(path)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def stop(self) -> None:
        """Kill the daemon, restore the environment, delete the folder. Idempotent."""
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_env.clear()
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None
        self._refresh_portaudio()

    def __enter__(self) -> "VirtualAudioDevice":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
