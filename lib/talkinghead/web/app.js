// talkinghead in the browser: the live engine's loop (lib/talkinghead/live, notebooks/06_live_preview.ipynb) on the
// avatar bundle's ONNX models, with onnxruntime-web served by `python -m talkinghead serve`.
//
//   audio (16 kHz) --features.onnx--> (C, 4, 80) per completed 640-sample video frame
//         --audio2motion.onnx, one frame per step, conv/gru state--> motion of frame k (L frames of lookahead)
//         [+ idle loop] --renderer.onnx--> face --paste.onnx--> frame --> canvas, on the AudioContext clock
//         or, with the pocket renderer's frame graph: --pocket_frame.onnx--> RGBA bytes of the box that moves -->
//         put at (x0, y0) on the canvas, where pocket_background.png was drawn once (the whole frame at rest)
//
// The clock (as talkinghead.live): frame k covers audio time k/fps .. (k+1)/fps; it is shown at input time
// k/fps + delay, and the sound is played `delay` late, so picture and sound stay in sync. delay = (L + 1)/fps + margin,
// margin = 2 frames + two renders (a render may be running when a frame's motion arrives). In "live" mode a frame
// that would be ready after its time is dropped (the last one stays on screen); in "offline" mode every frame is
// rendered first, then played with the sound.


import { LiveRun, Player, Runtime, Stream, stageTotals, stagesMs, stats } from './engine.js';
import { $, OFFLINE_MAX_S, WARM_MAX_S, WARM_RENDERS, PageError, clearError, fetchOk, page, query, setStatus,
  sha256Plain, showError, showWarning }
  from './util.js';

// ------------------------------------------------------------------------------------------------------- the app
class App {
  async init() {
    const cfg = this.cfg = await (await fetchOk('config.json', 'The page configuration')).json();
    let ort;
    try {
      ort = await import(cfg.ort);
    } catch (e) {
      throw new PageError(`onnxruntime-web could not be loaded from ${cfg.ort} (${e.message}): run ` +
        '`python -m talkinghead serve --install-web-runtime`, then serve again.');
    }
    ort.env.wasm.wasmPaths = new URL('/ort/', location.href).href;
    // the renderer's wasm threads leave one core to this thread (features, audio2motion, drawing, the clock): on 2
    // cores 1 thread renders ~1.5x faster in the page than 2, which contend with it (benchmarks/bench_browser.py)
    ort.env.wasm.numThreads = query.has('threads') ? Math.max(1, Number(query.get('threads')) || 1) :
      (self.crossOriginIsolated ? Math.max(1, Math.min(4, (navigator.hardwareConcurrency || 2) - 1)) : 1);
    ort.env.logLevel = 'error';
    this.ort = ort;
    // A second instance of onnxruntime-web (another module URL) runs the small models (features, audio2motion) on
    // this thread, one wasm thread; the renderer and paste run in the first, in a worker (its proxy) when on wasm,
    // so a slow render never holds up the features, the clock, the drawing or the audio input.
    let small;
    try {
      small = await import(`${cfg.ort}?instance=small`);
    } catch (e) {
      throw new PageError(`onnxruntime-web could not be loaded from ${cfg.ort} (${e.message}).`);
    }
    small.env.wasm.wasmPaths = ort.env.wasm.wasmPaths;
    small.env.wasm.numThreads = 1;
    small.env.logLevel = 'error';
    const rt = this.rt = await Runtime.load(cfg, ort, small);
    const canvas = $('avatar');
    canvas.width = rt.width; canvas.height = rt.height;
    this.ctx = new AudioContext({ sampleRate: rt.sr, latencyHint: 'interactive' });
    this.player = new Player(rt, this.ctx, canvas);
    setStatus('Warming up…');
    this.renderS = await this.warmUp(rt.addIdle(new Float32Array(69), 0));
    this.player.draw(this.restImage);
    const mf = rt.manifest;
    $('bundle-info').textContent = `${mf.source?.name ?? 'avatar'} · ${mf.profile} profile · renderer ` +
      `${rt.renderer.name}${rt.frame ? ' (frame graph)' : ''} · ${rt.ep}` +
      `${rt.ep === 'wasm' ? ` (${ort.env.wasm.numThreads} threads)` : ''}`;
    $('runtime-info').textContent = `onnxruntime-web ${cfg.ort_version}, talkinghead ${cfg.talkinghead}, ` +
      `lookahead ${1000 * rt.L / rt.fps} ms, one frame renders in ${(1000 * this.renderS).toFixed(0)} ms.`;
    if (mf.profile === 'sample') {
      showWarning('Sample profile: the networks have seeded random weights, so the face is noise (every code path ' +
        'is the real one). Bake and export with the full profile for a real face.');
    }
    if (rt.renderer.slow) {
      showWarning(`This bundle has no pocket renderer: the full renderer (${rt.renderer.name}) is used, which is ` +
        `slow in a browser (${(1000 * this.renderS).toFixed(0)} ms a frame here; 25 fps needs 40 ms), so frames ` +
        'will be dropped. Export a pocket renderer for real time.');
    }
    page.delayMs = 1000 * this.delayFor(this.renderS);
    page.renderMs = 1000 * this.renderS;
    page.ep = rt.ep; page.renderer = rt.renderer.name; page.path = rt.path; page.threads = ort.env.wasm.numThreads;
    page.ready = true;
    setStatus('Ready: use the microphone, or choose or drop an audio file.');
  }

  async warmUp(rest) {
    // Chromium first runs onnxruntime-web's wasm on baseline code and recompiles the functions that run hot with its
    // optimising compiler, in background threads, over the next seconds (V8's dynamic tiering): until that is done
    // a render takes longer, and the compiler's threads take the CPU the render needs (2 cores). That was the first
    // run's slowness (its renders took ~2x those of the same run repeated; live mode always came first). So warm up
    // as a run does: each step pushes a frame of noise through features and audio2motion and renders the rest frame,
    // WARM_RENDERS times (what is optimised depends on how often it has run: fewer left frames dropped on this
    // machine, and stopping once the render time looked settled stopped too early), within WARM_MAX_S seconds
    // (?warmup=S). Returns the render time then (s).
    const rt = this.rt, times = [], start = performance.now();
    const warmS = query.has('warmup') ? Number(query.get('warmup')) : WARM_MAX_S;
    const stream = new Stream(rt, () => {}), noise = new Float32Array(rt.spf);
    let seed = 1;
    while (times.length < 2 || (times.length < WARM_RENDERS && performance.now() - start < 1000 * warmS)) {
      for (let i = 0; i < noise.length; i++) {
        seed = (seed * 16807) % 2147483647;
        noise[i] = 0.1 * (seed / 2147483647 - 0.5);
      }
      const fed = stream.push(noise);
      const t = performance.now();
      this.restImage = await rt.render(rest);
      times.push(performance.now() - t);
      await fed;
    }
    await stream.flush();
    page.warmup = { renders: times.length, s: (performance.now() - start) / 1000, ms: times.map((x) => Math.round(x)) };
    rt.times = { model: 0, paste: 0, pixels: 0, render: 0, frames: 0 };
    const last = times.slice(-5).sort((x, y) => x - y);
    return last[Math.floor(last.length / 2)] / 1000;
  }

  delayFor(renderS) {
    // lookahead + the frame itself + margin: 2 frames, plus two renders (one may be running when a frame's
    // features arrive, as every model shares one wasm worker)
    const rt = this.rt;
    return (rt.L + 1) / rt.fps + 2 / rt.fps + 2 * renderS;
  }

  showStats(run) {
    const n = run.shown.length;
    if (n > 1) {
      const recent = run.shown.slice(-25);
      const span = recent.at(-1)[1] - recent[0][1];
      if (span > 0) $('fps').textContent = ((recent.length - 1) / span).toFixed(1);
    }
    const lat = run.latencies.slice(-50);
    if (lat.length) $('latency').textContent = `${stats(lat).mean.toFixed(0)} ms`;
    $('delay').textContent = `${(1000 * run.delay).toFixed(0)} ms`;
    if (run.renderMs.length) $('render-ms').textContent = `${run.renderMs.at(-1).toFixed(0)} ms`;
    $('dropped').textContent = String(run.dropped);
  }

  busy(on) {
    this.isBusy = on;
    $('mic').disabled = on; $('file').disabled = on; $('stop').disabled = !on;
  }

  // ---- audio in
  async decode(buf, name) {
    // any audio the browser can decode -> mono float32 at the model's rate (channels averaged, as load_audio)
    let audio;
    try {
      audio = await this.ctx.decodeAudioData(buf.slice(0));
    } catch (e) {
      throw new PageError(`${name} is not an audio file this browser can read (${e.name || e.message}): choose a ` +
        'wav, mp3, ogg, flac or m4a file.');
    }
    const n = audio.length, out = new Float32Array(n);
    for (let c = 0; c < audio.numberOfChannels; c++) {
      const ch = audio.getChannelData(c);
      for (let i = 0; i < n; i++) out[i] += ch[i];
    }
    if (audio.numberOfChannels > 1) for (let i = 0; i < n; i++) out[i] /= audio.numberOfChannels;
    if (n === 0) throw new PageError(`${name} holds no sound: choose another file.`);
    return out;
  }

  async playFile(buf, name, mode = $('mode').value) {
    clearError();
    const samples = await this.decode(buf, name);
    await this.ctx.resume();
    return mode === 'offline' ? this.runOffline(samples, name) : this.runLiveFile(samples, name);
  }

  sound(samples, when) {
    const b = this.ctx.createBuffer(1, samples.length, this.rt.sr);
    b.copyToChannel(samples, 0);
    const src = this.ctx.createBufferSource();
    src.buffer = b; src.connect(this.ctx.destination); src.start(when);
    return src;
  }

  async runLiveFile(samples, name) {
    const rt = this.rt, run = this.current = new LiveRun(this, 'file');
    this.busy(true);
    setStatus(`Playing ${name} live (${(samples.length / rt.sr).toFixed(1)} s)…`);
    const t0 = this.ctx.currentTime + 0.05;
    const src = this.sound(samples, t0 + run.delay);
    run.onStop = () => { try { src.stop(); } catch (e) { /* ended */ } };
    run.start(t0);
    let fed = 0;
    const feed = async () => {                      // the file enters at its real-time pace, as a microphone would:
      while (run.running && fed < samples.length) { // each video frame's samples once they have all "arrived"
        const upto = Math.min(samples.length, Math.floor((this.ctx.currentTime - t0) * rt.sr));
        if (upto > fed) { run.stream.push(samples.subarray(fed, upto)); fed = upto; }
        const next = (Math.floor(fed / rt.spf) + 1) * rt.spf;          // the next frame's last sample
        await new Promise((r) => setTimeout(r, Math.max(2, 1000 * (t0 + next / rt.sr - this.ctx.currentTime))));
      }
      if (run.running) await run.end();
    };
    feed();
    const report = await run.finished;
    this.busy(false);
    setStatus(`Done: ${report.rendered} frames rendered, ${report.dropped} dropped; latency ` +
      `${report.latency_mean_ms.toFixed(0)} ms (p95 ${report.latency_p95_ms.toFixed(0)}).`);
    return report;
  }

  async runOffline(samples, name, play = true) {
    // every frame rendered as fast as possible (no clock), then played with the sound (talkinghead.live's preview)
    const rt = this.rt;
    if (samples.length > OFFLINE_MAX_S * rt.sr) {
      throw new PageError(`${name} lasts ${(samples.length / rt.sr).toFixed(0)} s: the all-frames mode keeps every ` +
        `frame in memory and takes at most ${OFFLINE_MAX_S} s; use the live mode for longer audio.`);
    }
    this.busy(true);
    const motions = [];
    const stream = new Stream(rt, (k, m) => { motions[k] = m; });
    const t0 = performance.now();
    for (let i = 0; i < samples.length; i += rt.spf) stream.push(samples.subarray(i, i + rt.spf));
    await stream.flush();
    this.frames = [];
    const before = stageTotals(rt, this.player), renderT = performance.now();
    for (let k = 0; k < motions.length; k++) {
      setStatus(`Rendering all frames of ${name}: ${k + 1}/${motions.length}…`);
      this.frames.push(await rt.render(motions[k]));
      this.player.draw(this.frames[k]);
    }
    const wall = (performance.now() - t0) / 1000, renderS = (performance.now() - renderT) / 1000;
    const report = { mode: 'offline', frames: this.frames.length, wall_s: wall,
      render_fps: this.frames.length / Math.max(renderS, 1e-9), features_ms: stream.times.features, a2m_ms: stream.times.a2m,
      ep: rt.ep, renderer: rt.renderer.name, path: rt.path, stages_ms: stagesMs(stream, before, stageTotals(rt, this.player)) };
    page.runs.push(report);
    setStatus(`Rendered ${report.frames} frames in ${wall.toFixed(1)} s (${report.render_fps.toFixed(1)} fps)` +
      (play ? '; playing…' : '.'));
    if (play && this.frames.length) await this.replay(samples);
    this.busy(false);
    return report;
  }

  replay(samples) {
    const fps = this.rt.fps, start = this.ctx.currentTime + 0.1;
    this.sound(samples, start);
    return new Promise((resolve) => {
      const tick = () => {
        const k = Math.floor((this.ctx.currentTime - start) * fps);
        if (k >= 0 && k < this.frames.length) this.player.draw(this.frames[k]);
        if (k >= this.frames.length) { this.player.draw(this.frames.at(-1)); return resolve(); }
        requestAnimationFrame(tick);
      };
      requestAnimationFrame(tick);
    });
  }

  async startMic() {
    clearError();
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      throw new PageError('This page cannot use the microphone here: browsers allow it only on https or on ' +
        'localhost/127.0.0.1 (serve with the default --host, or open the page on this machine).');
    }
    let media;
    try {
      media = await navigator.mediaDevices.getUserMedia({ audio: { channelCount: 1, echoCancellation: false,
        noiseSuppression: false, autoGainControl: false } });
    } catch (e) {
      if (e.name === 'NotAllowedError' || e.name === 'SecurityError') {
        throw new PageError('No permission to use the microphone: allow it for this page (the icon in the address ' +
          'bar), then press Microphone again; or choose an audio file instead.');
      }
      throw new PageError(`No microphone could be opened (${e.name}: ${e.message}): plug one in, or choose an ` +
        'audio file instead.');
    }
    await this.ctx.resume();
    await this.ctx.audioWorklet.addModule('capture-worklet.js');
    const src = this.ctx.createMediaStreamSource(media);
    const node = new AudioWorkletNode(this.ctx, 'talkinghead-capture');
    const run = this.current = new LiveRun(this, 'microphone');
    const mute = this.ctx.createGain(); mute.gain.value = 0;
    src.connect(node); node.connect(mute); mute.connect(this.ctx.destination);
    let monitor = null;
    if ($('monitor').checked) {
      monitor = this.ctx.createDelay(5); monitor.delayTime.value = run.delay;
      src.connect(monitor); monitor.connect(this.ctx.destination);
    }
    let started = false;
    node.port.onmessage = ({ data }) => {
      if (!run.running && started) return;
      if (!started) { started = true; run.start(data.time); }
      run.stream.push(data.samples);
    };
    run.onStop = () => {
      media.getTracks().forEach((tr) => tr.stop());
      src.disconnect(); node.disconnect();
      if (monitor) monitor.disconnect();
    };
    this.busy(true);
    setStatus('Listening: speak into the microphone (Stop ends).');
    return run;
  }

  async stop() {
    const run = this.current;
    if (!run || !run.running) return null;
    if (run.kind === 'microphone') {
      await run.end();
      run.stop();
    } else {
      run.stop();
    }
    this.busy(false);
    setStatus(`Stopped: ${run.report.rendered} frames rendered, ${run.report.dropped} dropped.`);
    return run.report;
  }
}

// ------------------------------------------------------------------------------------------------------- wiring
const app = page.app = new App();

async function guarded(fn) {
  try {
    return await fn();
  } catch (e) {
    app.busy && app.rt && app.busy(false);
    if (e instanceof PageError) showError(e.message);
    else { showError(`Unexpected error: ${e.message || e}`); console.error(e); }
    return null;
  }
}

page.playFile = (buf, name, mode) => guarded(() => app.playFile(buf, name, mode));
page.startMic = () => guarded(() => app.startMic());
page.stop = () => guarded(() => app.stop());
page.offlineFrames = async (url, play = false) => guarded(async () => {
  // test hook: render a file's every frame (no clock); frames stay in app.frames
  const buf = await (await fetch(url)).arrayBuffer();
  return app.runOffline(await app.decode(buf, url), url, play);
});
page.sha256Plain = (bytes) => sha256Plain(Uint8Array.from(bytes));   // test hook: the non-secure-context hash
page.canvasFrame = (k) => {
  // test hook: draw frame k of the last offline run and read the canvas back -> base64 RGBA
  app.player.draw(app.frames[k]);
  const d = $('avatar').getContext('2d').getImageData(0, 0, app.rt.width, app.rt.height).data;
  let s = '';
  for (let i = 0; i < d.length; i += 0x8000) s += String.fromCharCode.apply(null, d.subarray(i, i + 0x8000));
  return btoa(s);
};

$('fast-paste').onchange = (ev) => {
  if (app.rt && !app.rt.frame) app.rt.path = app.rt.pasteMode = ev.target.checked ? 'canvas' : 'onnx';
};
$('mic').onclick = () => guarded(() => app.startMic());
$('stop').onclick = () => guarded(() => app.stop());
$('file').onchange = (ev) => {
  const f = ev.target.files[0];
  ev.target.value = '';                            // choosing the same file again plays it again
  if (f) guarded(async () => app.playFile(await f.arrayBuffer(), f.name));
};
const drop = $('drop');
drop.ondragover = (ev) => { ev.preventDefault(); drop.classList.add('over'); };
drop.ondragleave = () => drop.classList.remove('over');
drop.ondrop = (ev) => {
  ev.preventDefault(); drop.classList.remove('over');
  const f = ev.dataTransfer.files[0];
  if (f && page.ready && !app.isBusy) guarded(async () => app.playFile(await f.arrayBuffer(), f.name));
};

guarded(async () => {
  await app.init();
  $('mic').disabled = false; $('file').disabled = false;
  $('fast-paste').checked = app.rt.pasteMode === 'canvas';
  $('fast-paste').disabled = Boolean(app.rt.frame);      // the frame graph pastes inside itself
}).then(() => { page.loaded = true; });
