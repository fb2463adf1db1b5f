"""Per-line speech for the recording script: one 16 kHz mono wav per line, with phoneme timings (notebook 01).

Line by line, never one long file: each line (and each rate variant, for data augmentation) becomes
`audio/<id>.wav` plus `audio/<id>.phonemes.json`, and gets its row in `index.json` (schema: `talkinghead.corpus`).
Every file is checked (duration for its text, silence, clipping, loudness); a bad line is reported by id and text
and the others go on.

Backends
--------
The default, `espeak`, works offline on a fresh machine: the `espeakng-loader` wheel ships libespeak-ng and its
voice data (Mandarin `cmn` included), driven here through ctypes in synchronous mode. Its phoneme events give the
timings stored beside each wav, which the sample recording turns into mouth shapes. espeak-ng is GPL-3, so it
stays behind this interface and is imported only when first used (`pip install 'talkinghead[tts]'`; Debian's
`libespeak-ng1` is found too).

A stronger voice plugs in without touching this module. Anything with

    name: str
    languages: tuple[str, ...]                   # e.g. ("zh", "en")
    def synthesize(self, text, language, rate=1.0) -> Synthesis

is a backend. `Synthesis.samples` may be at any sample rate and channel count (it is mixed to mono and resampled to
16 kHz here); `phonemes` is a list of {"phoneme", "start_s", "end_s"} in seconds, or empty if the engine gives none.
Register a factory once, then ask for it by name:

    from talkinghead import tts
    class MyNeuralTTS:                      # e.g. wrapping a model installed from PyPI, imported inside __init__
        name, languages = "neural", ("zh", "en")
        def __init__(self): import some_tts_package; self.model = some_tts_package.load(...)
        def synthesize(self, text, language, rate=1.0):
            wav, sr = self.model(text, lang=language, speed=rate)
            return tts.Synthesis(wav, sr, phonemes=[])
    tts.register_backend("neural", MyNeuralTTS)
    tts.synthesize_corpus(lines, out_dir, backend="neural")

Backends that need downloads stay optional extras and are never imported when `talkinghead` is imported.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Protocol, Sequence, runtime_checkable

import numpy as np

from .audio import frame_rms_db, load_audio
from .corpus import Line, hanzi_pinyin, index_row, make_index, write_index
from .errors import MediaError, TalkingHeadError
from .fileio import atomic_path, load_json, save_json
from .layout import SAMPLE_RATE
from .progress import Estimate
PHONEMES_FORMAT_VERSION = 1


class TTSError(TalkingHeadError):
    """A speech backend is missing, unknown, or failed on a line."""


# ---------------------------------------------------------------- the backend interface
@dataclass
class Synthesis:
    """What a backend returns: samples (float in [-1, 1], (n,) or (n, channels)) at `sample_rate`, and timings.

    `phonemes`: [{"phoneme", "start_s", "end_s"}], `words`: [{"text", "start_s", "end_s", ...}], in seconds from the
    first sample; `phoneme_set` names the symbols ("ipa", "arpabet", ...)."""
    samples: np.ndarray
    sample_rate: int
    phonemes: list[dict] = field(default_factory=list)
    words: list[dict] = field(default_factory=list)
    phoneme_set: str = ""


@runtime_checkable
class TTSBackend(Protocol):
    name: str
    languages: tuple[str, ...]

    def synthesize(self, text: str, language: str, rate: float = 1.0) -> Synthesis: ...


_BACKENDS: dict[str, Callable[[], TTSBackend]] = {}
_INSTANCES: dict[str, TTSBackend] = {}


def register_backend(name: str, factory: Callable[[], TTSBackend], replace: bool = False) -> None:
    """Make `factory()` (a class or function returning a backend) available as `get_backend(name)`."""
    if name in _BACKENDS and not replace and _BACKENDS[name] is not factory:
        raise TTSError(f"a TTS backend named {name!r} is already registered; pass replace=True to override it.")
    _BACKENDS[name] = factory
    _INSTANCES.pop(name, None)


def backend_names() -> list[str]:
    return sorted(_BACKENDS)


def get_backend(name: str | TTSBackend = "espeak") -> TTSBackend:
    """The backend registered as `name` (created once and reused), or `name` itself if it already is a backend."""
    if not isinstance(name, str):
        return name
    if name not in _BACKENDS:
        raise TTSError(f"unknown TTS backend {name!r}: use one of {', '.join(backend_names())}, or register yours "
                       "with talkinghead.tts.register_backend(name, factory).")
    if name not in _INSTANCES:
        _INSTANCES[name] = _BACKENDS[name]()
    return _INSTANCES[name]


# ---------------------------------------------------------------- espeak-ng through ctypes
class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):  # espeak_EVENT (speak_lib.h)
    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint), ("text_position", ctypes.c_int),
                ("length", ctypes.c_int), ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", _EventId)]


_SYNTH_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_PHONEME_EVENTS = 0x0001
_INITIALIZE_PHONEME_IPA = 0x0002
_CHARS_UTF8 = 1
_RATE = 1
_EV_LIST_TERMINATED, _EV_WORD, _EV_PHONEME = 0, 1, 7
_LOCK = threading.Lock()  # espeak-ng keeps global state and is not re-entrant


def _find_espeak() -> tuple[str, str | None]:
    try:
        import espeakng_loader
    except ImportError:
        espeakng_loader = None
    if espeakng_loader is not None:
        lib = espeakng_loader.get_library_path()
        if os.path.exists(lib):
            return lib, espeakng_loader.get_data_path()
    lib = ctypes.util.find_library("espeak-ng")
    if lib:
        return lib, None
    raise TTSError("espeak-ng was not found: install it with `pip install espeakng-loader` (or "
                   "`pip install 'talkinghead[tts]'`, or `apt-get install espeak-ng`), then restart the kernel.")


class EspeakBackend:
    """espeak-ng, offline: Mandarin (`cmn`) and English (`en-us`) voices, IPA phoneme timings from its events.

    espeak-ng keeps pitch-flutter and roughness counters across utterances, so the same text comes out slightly
    differently depending on what was spoken before. With `deterministic=True` (default) each voice is loaded from
    a copy of its voice file with `flutter 0` and `roughness 0` added, which makes every line's audio depend on
    that line alone (a slightly flatter voice); set it False for espeak's stock voices.
    """
    name = "espeak"
    languages = ("zh", "en")
    VOICES = {"zh": "cmn", "en": "en-us"}
    BASE_WPM = 175  # espeak-ng's default speaking rate; `rate` scales it (80..450 allowed)
    STEADY = b"\n// talkinghead: reproducible output\nflutter 0\nroughness 0\n"

    _lib = None
    _sr = 0
    _callback = None
    _buffers: dict = {}
    _voice_files: dict = {}

    def __init__(self, deterministic: bool = True):
        with _LOCK:
            if EspeakBackend._lib is None:
                self._load()
        self.sample_rate = EspeakBackend._sr
        self.deterministic = deterministic

    @classmethod
    def _load(cls):
        path, data = _find_espeak()
        try:
            lib = ctypes.CDLL(path)
        except OSError as e:
            raise TTSError(f"{path}: the espeak-ng library could not be loaded ({e}); reinstall espeakng-loader.") \
                from None
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                                     ctypes.c_uint, ctypes.POINTER(ctypes.c_uint), ctypes.c_void_p]
        lib.espeak_SetSynthCallback.argtypes = [_SYNTH_CALLBACK]
        sr = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data.encode() if data else None,
                                   _INITIALIZE_PHONEME_EVENTS | _INITIALIZE_PHONEME_IPA)
        if sr <= 0:
            raise TTSError(f"{data or path}: espeak-ng could not initialise (voice data missing or unreadable); "
                           "reinstall espeakng-loader.")

        def collect(wav, n, events):
            buf = cls._buffers
            if n > 0:
                buf["chunks"].append(np.ctypeslib.as_array(wav, (n,)).copy())
            i = 0
            while events[i].type != _EV_LIST_TERMINATED:
                e = events[i]
                if e.type == _EV_PHONEME:
                    buf["events"].append(("p", e.sample, e.text_position, e.id.string.decode("utf-8", "replace")))
                elif e.type == _EV_WORD:
                    buf["events"].append(("w", e.sample, e.text_position, e.length))
                i += 1
            return 0

        cls._callback = _SYNTH_CALLBACK(collect)  # keep a reference: espeak calls it from C
        lib.espeak_SetSynthCallback(cls._callback)
        cls._lib, cls._sr = lib, sr
        cls._voice_files = cls._steady_voices(lib)

    @classmethod
    def _steady_voices(cls, lib) -> dict:
        """Copies of the voice files with flutter and roughness off, in a short temporary folder (espeak-ng limits
        the path to 59 bytes); voices it cannot copy fall back to their stock form."""
        import atexit
        import shutil
        import tempfile

        if not hasattr(lib, "espeak_ng_SetVoiceByFile"):
            return {}
        lib.espeak_ng_SetVoiceByFile.argtypes = [ctypes.c_char_p]
        lib.espeak_Info.argtypes = [ctypes.POINTER(ctypes.c_char_p)]
        lib.espeak_Info.restype = ctypes.c_char_p
        data = ctypes.c_char_p()
        lib.espeak_Info(ctypes.byref(data))
        if not data.value:
            return {}
        lang_dir = Path(data.value.decode(errors="replace")) / "lang"
        found = {p.name.lower(): p for p in lang_dir.rglob("*") if p.is_file()} if lang_dir.is_dir() else {}
        out = {}
        for base in (tempfile.gettempdir(), "/tmp"):
            try:
                folder = Path(tempfile.mkdtemp(prefix="th-espeak-", dir=base))
            except OSError:
                continue
            atexit.register(shutil.rmtree, folder, True)
            for lang, voice in cls.VOICES.items():
                src = found.get(voice.lower())
                dst = folder / voice
                if src is None or len(str(dst).encode()) >= 60:
                    continue
                dst.write_bytes(src.read_bytes() + cls.STEADY)
                out[lang] = str(dst).encode()
            if len(out) == len(cls.VOICES):
                break
        return out

    def synthesize(self, text: str, language: str, rate: float = 1.0) -> Synthesis:
        voice = self.VOICES.get(language)
        if voice is None:
            raise TTSError(f"the espeak backend has no voice for language {language!r}; use one of "
                           f"{', '.join(self.VOICES)}.")
        lib = EspeakBackend._lib
        data = text.encode("utf-8") + b"\0"
        with _LOCK:
            EspeakBackend._buffers = {"chunks": [], "events": []}
            steady = EspeakBackend._voice_files.get(language) if self.deterministic else None
            if steady is None or lib.espeak_ng_SetVoiceByFile(steady) != 0:
                steady = None
            if steady is None and lib.espeak_SetVoiceByName(voice.encode()) != 0:
                raise TTSError(f"espeak-ng has no voice {voice!r} in its data folder; reinstall espeakng-loader.")
            lib.espeak_SetParameter(_RATE, int(min(450, max(80, round(self.BASE_WPM * rate)))), 0)
            err = lib.espeak_Synth(data, len(data), 0, 0, 0, _CHARS_UTF8, None, None)
            buf = EspeakBackend._buffers
            EspeakBackend._buffers = {}
        if err != 0:
            raise TTSError(f"espeak-ng failed on {text!r} (error {err}).")
        pcm = np.concatenate(buf["chunks"]) if buf["chunks"] else np.zeros(0, np.int16)
        samples = pcm.astype(np.float32) / 32768.0
        phonemes, words = _espeak_timings(buf["events"], len(pcm), self.sample_rate, text)
        return Synthesis(samples, self.sample_rate, phonemes, words, phoneme_set="ipa")


def _espeak_timings(events: list, n_samples: int, sr: int, text: str) -> tuple[list[dict], list[dict]]:
    """Phoneme segments (each ends where the next phoneme or pause event starts) and word spans, in seconds.

    Pause phonemes (empty names, '_', '_:') only end the segment before them; silence is the gap between segments.
    A word is the run of phonemes espeak attributes to one text position (a dictionary word: 知道了 is one in
    Mandarin); its text runs to the next word's position, without surrounding punctuation."""
    ph = [(s, pos, name) for kind, s, pos, name in events if kind == "p"]
    phonemes = []
    for k, (s, pos, name) in enumerate(ph):
        end = ph[k + 1][0] if k + 1 < len(ph) else n_samples
        name = name.strip()
        if not name or name.startswith("_") or end <= s:
            continue
        phonemes.append({"phoneme": name, "start_s": s / sr, "end_s": end / sr, "text_pos": max(0, pos - 1)})
    starts = sorted({p["text_pos"] for p in phonemes})
    words = []
    for k, pos in enumerate(starts):
        stop = starts[k + 1] if k + 1 < len(starts) else len(text)
        raw = text[pos:stop]
        word = raw.strip().strip("".join(ch for ch in raw if not ch.isalnum() and ch != "'"))
        mine = [p for p in phonemes if p["text_pos"] == pos]
        if word:
            words.append({"text": word, "char_start": pos + raw.index(word),
                          "start_s": mine[0]["start_s"], "end_s": mine[-1]["end_s"]})
    return phonemes, words


register_backend("espeak", EspeakBackend)


# ---------------------------------------------------------------- audio helpers
def to_mono_16k(samples: np.ndarray, sample_rate: int, target_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Mix to mono (any channel layout, channels last or first for 2-D) and resample to `target_rate`: float32 (n,).

    The package's one resampler, `talkinghead.audio.load_audio` (soxr; integer PCM is scaled to [-1, 1])."""
    x = np.asarray(samples)
    if x.ndim not in (1, 2):
        raise MediaError(f"audio of shape {x.shape} is neither (n,) nor (n, channels); give mono or multichannel samples.")
    return load_audio(x, target_rate, orig_sr=int(sample_rate))


def write_wav(path: str | os.PathLike, samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> Path:
    """Atomically write float samples as 16-bit PCM mono wav (values beyond [-1, 1] are clipped)."""
    import soundfile as sf

    pcm = np.clip(np.round(np.asarray(samples, np.float64) * 32767.0), -32768, 32767).astype(np.int16)
    with atomic_path(path) as tmp:
        sf.write(str(tmp), pcm, int(sample_rate), subtype="PCM_16", format="WAV")
    return Path(path)


def read_wav(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Read a wav as float32 mono samples and its sample rate; an unreadable file raises one sentence."""
    import soundfile as sf

    try:
        x, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as e:  # soundfile.LibsndfileError, RuntimeError, FileNotFoundError
        raise MediaError(f"{path}: cannot read the audio ({type(e).__name__}); synthesise or record it again.") from None
    return x.mean(axis=1), sr


def speech_bounds(samples: np.ndarray, sample_rate: int, threshold_db: float = -40.0,
                  frame_s: float = 0.005) -> tuple[float, float] | None:
    """(onset_s, offset_s) of the audio above `threshold_db` below its loudest frame, from a fine RMS envelope;
    None when all of it is silent."""
    db = frame_rms_db(samples, sample_rate, frame_s)
    if db.max() <= -100:
        return None
    loud = np.flatnonzero(db >= db.max() + threshold_db)
    return loud[0] * frame_s, (loud[-1] + 1) * frame_s


# Audio check thresholds (per file).
MIN_DURATION_S = 0.25
MAX_DURATION_S = 30.0
SILENCE_DB = -45.0          # a 20 ms frame quieter than this is silent
MAX_SILENT_FRACTION = 0.6
CLIP_LEVEL = 0.999
MAX_CLIPPED_FRACTION = 0.001
LOUDNESS_RANGE_DB = (-35.0, -6.0)  # RMS of the non-silent frames, dBFS


def check_audio(samples: np.ndarray, sample_rate: int, expected_s: float | None = None) -> list[str]:
    """Problems of one line's audio, as short phrases (empty list = fine): duration (absolute, and against the
    `expected_s` reading time of its text), mostly silence, clipping, loudness of the speech in dBFS."""
    x = np.asarray(samples, np.float64).reshape(-1)
    problems = []
    if not np.all(np.isfinite(x)):
        return ["contains NaN or infinite samples"]
    dur = len(x) / sample_rate
    if dur < MIN_DURATION_S:
        problems.append(f"too short ({dur:.2f} s, minimum {MIN_DURATION_S} s)")
    elif expected_s and dur < 0.35 * expected_s:
        problems.append(f"too short for its text ({dur:.2f} s, expected about {expected_s:.1f} s)")
    if dur > MAX_DURATION_S:
        problems.append(f"too long ({dur:.1f} s, maximum {MAX_DURATION_S:g} s)")
    elif expected_s and dur > 3.0 * expected_s + 1.0:
        problems.append(f"too long for its text ({dur:.1f} s, expected about {expected_s:.1f} s)")
    if len(x) == 0:
        return problems
    db = frame_rms_db(x, sample_rate)
    silent = db < SILENCE_DB
    if silent.all():
        problems.append(f"silent (every 20 ms frame below {SILENCE_DB:g} dBFS)")
        return problems
    if silent.mean() > MAX_SILENT_FRACTION:
        problems.append(f"mostly silence ({100 * silent.mean():.0f}% of 20 ms frames below {SILENCE_DB:g} dBFS)")
    clipped = float(np.mean(np.abs(x) >= CLIP_LEVEL))
    if clipped > MAX_CLIPPED_FRACTION:
        problems.append(f"clipped ({100 * clipped:.2f}% of samples at full scale)")
    active = x[: len(db) * int(round(0.02 * sample_rate))].reshape(len(db), -1)[~silent]
    level = 20 * np.log10(np.sqrt(np.mean(active ** 2)) + 1e-12)
    lo, hi = LOUDNESS_RANGE_DB
    if level < lo:
        problems.append(f"too quiet (speech at {level:.1f} dBFS, aim for {lo:g} to {hi:g})")
    elif level > hi:
        problems.append(f"too loud (speech at {level:.1f} dBFS, aim for {lo:g} to {hi:g})")
    return problems


# ---------------------------------------------------------------- the corpus, line by line
def _as_line(item):
    if isinstance(item, Line):
        return item
    if isinstance(item, dict):
        py = tuple(item["pinyin"].split()) if item.get("pinyin") else None
        return Line(item.get("line_id", item["id"]), item["text"], item["language"], item.get("section", "emotion"),
                    item.get("emotion", "neutral"), item.get("cue", ""), py)
    raise TTSError(f"cannot synthesise {item!r}: give talkinghead.corpus.Line objects or index rows.")


def _round_timings(items: list[dict], limit_s: float) -> list[dict]:
    out = []
    for it in items:
        d = {k: v for k, v in it.items() if k != "text_pos"}
        d["start_s"] = round(min(float(it["start_s"]), limit_s), 4)
        d["end_s"] = round(min(float(it["end_s"]), limit_s), 4)
        out.append(d)
    return out


def synthesize_line(line, out_dir: str | os.PathLike, backend: str | TTSBackend = "espeak", rate: float = 1.0) -> dict:
    """Synthesise one line at one rate: write `audio/<id>.wav` (16 kHz mono PCM16) and `audio/<id>.phonemes.json`
    under `out_dir`, and return its index row with duration and checks filled in."""
    line = _as_line(line)
    be = get_backend(backend)
    if line.language not in be.languages:
        raise TTSError(f"the {be.name} backend has no voice for {line.language!r}; use a backend with "
                       f"{', '.join(be.languages)} or register one that speaks it.")
    row = index_row(line, rate)
    syn = be.synthesize(line.text, line.language, rate)
    audio = to_mono_16k(syn.samples, syn.sample_rate)
    dur = len(audio) / SAMPLE_RATE
    problems = check_audio(audio, SAMPLE_RATE, expected_s=row["expected_s"] / rate)
    out = Path(out_dir)
    write_wav(out / row["file"], audio)
    words = _round_timings(syn.words, dur)
    if line.language == "zh" and words:
        han = hanzi_pinyin(line)
        for w in words:
            start = w.get("char_start", 0)
            w["pinyin"] = " ".join(han[o] for o in range(start, start + len(w["text"])) if o in han)
    save_json(out / row["phonemes_file"], {
        "format_version": PHONEMES_FORMAT_VERSION, "id": row["id"], "text": line.text, "language": line.language,
        "backend": be.name, "phoneme_set": syn.phoneme_set, "sample_rate": SAMPLE_RATE, "duration_s": round(dur, 4),
        "phonemes": _round_timings(syn.phonemes, dur), "words": words})
    row["duration_s"] = round(dur, 4)
    row["checks"] = {"ok": not problems, "problems": problems}
    return row


def synthesize_corpus(lines: Iterable, out_dir: str | os.PathLike, backend: str | TTSBackend = "espeak",
                      rates: Sequence[float] = (1.0,), progress: bool = True, write: bool = True) -> dict:
    """Synthesise every line at every rate, one wav each, and write `index.json` under `out_dir`.

    A line that fails (or fails its audio checks) is reported by id and text, printed, and kept in the index with
    `checks.ok = false`; the others go on. Returns the index document (`problems` lists the bad lines).
    """
    from tqdm.auto import tqdm

    lines = [_as_line(l) for l in lines]
    be = get_backend(backend)
    rates = [float(r) for r in rates]
    jobs = [(l, r) for l in lines for r in rates]
    rows, bad = [], []
    t0 = time.perf_counter()
    est = Estimate(f"TTS ({be.name})", len(jobs), "line", enabled=progress)
    for line, rate in tqdm(jobs, desc=f"TTS ({be.name})", unit="line", disable=not progress):
        if len(rows) == 1:
            est.update(1)
        try:
            row = synthesize_line(line, out_dir, be, rate)
        except TalkingHeadError as e:
            row = index_row(line, rate)
            row.update(file=None, phonemes_file=None, checks={"ok": False, "problems": [f"synthesis failed: {e}"]})
        except Exception as e:  # a backend's own error: report this line, go on with the rest
            row = index_row(line, rate)
            row.update(file=None, phonemes_file=None,
                       checks={"ok": False, "problems": [f"synthesis failed: {type(e).__name__}: {e}"]})
        rows.append(row)
        if not row["checks"]["ok"]:
            bad.append({"id": row["id"], "text": row["text"], "problems": row["checks"]["problems"]})
    for b in bad:
        print(f"warning: line {b['id']} «{b['text']}»: {'; '.join(b['problems'])}")
    index = make_index(rows, sample_rate=SAMPLE_RATE, backend=be.name, rates=rates, problems=bad,
                       total_audio_s=round(sum(r["duration_s"] or 0 for r in rows), 3))
    if write:
        write_index(index, Path(out_dir) / "index.json")
    index["_elapsed_s"] = round(time.perf_counter() - t0, 2)  # not written: keeps index.json deterministic
    return index


def load_phonemes(path: str | os.PathLike) -> dict:
    """Read a `<id>.phonemes.json` written by `synthesize_line`."""
    d = load_json(path, what="phoneme timings")
    if d.get("format_version") != PHONEMES_FORMAT_VERSION:
        raise MediaError(f"{path}: phoneme timings format_version {d.get('format_version')!r}, this talkinghead "
                         f"reads {PHONEMES_FORMAT_VERSION}; run notebook 01 again to rewrite them.")
    return d
