// talkinghead in the browser: the live engine's loop (lib/talkinghead/live, notebooks/06_live_preview.ipynb) on the
// avatar bundle's ONNX models, with onnxruntime-web served by `python -m talkinghead serve`.
//
//   audio (16 kHz) --features.onnx--> (C, 4, 80) per completed 640-sample video frame
//         --audio2motion.onnx, one frame per step, conv/gru state--> motion of frame k (L frames of lookahead)
//         [+ idle loop] --renderer.onnx--> face --paste.onnx--> frame --> canvas, on the AudioContext clock
//
// The clock (as talkinghead.live): frame k covers audio time k/fps .. (k+1)/fps; it is shown at input time
// k/fps + delay, and the sound is played `delay` late, so picture and sound stay in sync. delay = (L + 1)/fps + margin,
// margin = 2 frames + two renders (all models share one wasm worker). In "live" mode a frame that would be ready after its time is dropped
// (the last one stays on screen); in "offline" mode every frame is rendered first, then played with the sound.

const $ = (id) => document.getElementById(id);
const query = new URLSearchParams(location.search);
const FORMAT = 'talkinghead-avatar';
const OFFLINE_MAX_S = 60;

class PageError extends Error {}

// ------------------------------------------------------------------------------------------------------- messages
const page = window.talkinghead = { ready: false, error: null, warning: null, status: '', runs: [] };

function showError(msg) {
  page.error = msg;
  $('error').textContent = msg;
  $('error').hidden = false;
  setStatus('');
}

function clearError() { page.error = null; $('error').hidden = true; }

function showWarning(msg) {
  page.warning = page.warning ? `${page.warning}\n${msg}` : msg;
  $('warning').textContent = page.warning;
  $('warning').hidden = false;
}

function setStatus(msg) { page.status = msg; $('status').textContent = msg; $('status').hidden = !msg; }

// ------------------------------------------------------------------------------------------------------- sha-256
async function sha256Hex(buf) {
  if (globalThis.crypto && crypto.subtle) {
    const d = new Uint8Array(await crypto.subtle.digest('SHA-256', buf));
    return Array.from(d, (b) => b.toString(16).padStart(2, '0')).join('');
  }
  return sha256Plain(new Uint8Array(buf));       // not a secure context (another host over plain http)
}

function sha256Plain(data) {
  const K = new Uint32Array([
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98,
    0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
    0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8,
    0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
    0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819,
    0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
    0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
    0xc67178f2]);
  const H = new Uint32Array([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
    0x5be0cd19]);
  const n = data.length, total = Math.ceil((n + 9) / 64) * 64;
  const m = new Uint8Array(total);
  m.set(data); m[n] = 0x80;
  const dv = new DataView(m.buffer);
  dv.setUint32(total - 8, Math.floor(n / 0x20000000)); dv.setUint32(total - 4, (n * 8) >>> 0);
  const w = new Uint32Array(64);
  const r = (x, s) => (x >>> s) | (x << (32 - s));
  for (let o = 0; o < total; o += 64) {
    for (let i = 0; i < 16; i++) w[i] = dv.getUint32(o + 4 * i);
    for (let i = 16; i < 64; i++) {
      const s0 = r(w[i - 15], 7) ^ r(w[i - 15], 18) ^ (w[i - 15] >>> 3);
      const s1 = r(w[i - 2], 17) ^ r(w[i - 2], 19) ^ (w[i - 2] >>> 10);
      w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    let [a, b, c, d, e, f, g, h] = H;
    for (let i = 0; i < 64; i++) {
      const t1 = (h + (r(e, 6) ^ r(e, 11) ^ r(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i]) >>> 0;
      const t2 = ((r(a, 2) ^ r(a, 13) ^ r(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))) >>> 0;
      h = g; g = f; f = e; e = (d + t1) >>> 0; d = c; c = b; b = a; a = (t1 + t2) >>> 0;
    }
    H[0] += a; H[1] += b; H[2] += c; H[3] += d; H[4] += e; H[5] += f; H[6] += g; H[7] += h;
  }
  return Array.from(H, (x) => x.toString(16).padStart(8, '0')).join('');
}

// ------------------------------------------------------------------------------------------------------- .npy
function parseNpy(buf, name) {
  const u8 = new Uint8Array(buf);
  const magic = String.fromCharCode(...u8.subarray(1, 6));
  if (u8[0] !== 0x93 || magic !== 'NUMPY') throw new PageError(`${name} is not a .npy file: export the bundle again.`);
  const dv = new DataView(buf);
  const [len, off] = u8[6] === 1 ? [dv.getUint16(8, true), 10] : [dv.getUint32(8, true), 12];
  const header = new TextDecoder().decode(u8.subarray(off, off + len));
  const shape = (header.match(/'shape':\s*\(([^)]*)\)/) || [])[1];
  if (!header.includes("'<f4'") || header.includes("'fortran_order': True") || shape === undefined) {
    throw new PageError(`${name}: expected a C-ordered float32 array; export the bundle again.`);
  }
  const dims = shape.split(',').map((s) => s.trim()).filter(Boolean).map(Number);
  return { shape: dims, data: new Float32Array(buf.slice(off + len)) };
}

// ------------------------------------------------------------------------------------------------------- the bundle
async function fetchOk(url, what) {
  let r;
  try { r = await fetch(url, { cache: 'no-cache' }); } catch (e) {
    throw new PageError(`Cannot reach ${url} (${e.message}): is \`python -m talkinghead serve\` still running?`);
  }
  if (!r.ok) throw new PageError(`${what} (${url}) could not be loaded: HTTP ${r.status}. Export the bundle again.`);
  return r;
}

async function loadManifest(cfg) {
  const manifest = await (await fetchOk(cfg.bundle + 'manifest.json', 'The bundle manifest')).json();
  if (!manifest || manifest.format !== FORMAT) {
    throw new PageError('manifest.json is not a talkinghead avatar manifest: serve an exported avatar bundle.');
  }
  if (manifest.format_version !== cfg.format_version) {
    throw new PageError(`This avatar bundle has format version ${manifest.format_version}; this page ` +
      `(talkinghead ${cfg.talkinghead}) reads version ${cfg.format_version}. Bake and export the avatar again ` +
      'with this talkinghead (`python -m talkinghead bake` then `export`).');
  }
  const models = manifest.models || {};
  for (const key of ['audio2motion', 'renderer', 'paste']) {
    if (!models[key]) {
      throw new PageError(`The bundle has no exported ${key} model yet: export it first ` +
        '(`python -m talkinghead export` or notebooks/05_export.ipynb).');
    }
  }
  return manifest;
}

function pickRenderer(manifest) {
  const r = manifest.models.renderer;
  const variants = r.variants || { fp32: { file: r.file || 'renderer.onnx' } };
  const asked = query.get('renderer');
  if (asked) {
    if (!variants[asked]) throw new PageError(`The bundle has no renderer variant "${asked}" (it has ` +
      `${Object.keys(variants).join(', ')}).`);
    return { name: asked, ...variants[asked] };
  }
  if (variants.pocket) return { name: 'pocket', ...variants.pocket };
  const name = variants.fp32 ? 'fp32' : (r.default || Object.keys(variants)[0]);
  return { name, ...variants[name], slow: true };
}

async function loadFile(cfg, manifest, name, what) {
  const entry = manifest.files[name];
  if (!entry) throw new PageError(`${name} (${what}) is not listed in manifest.json: export the bundle again.`);
  setStatus(`Loading ${what} (${name}, ${(entry.bytes / 1e6).toFixed(1)} MB)…`);
  const buf = await (await fetchOk(cfg.bundle + encodeURIComponent(name), `${name} (${what})`)).arrayBuffer();
  const hash = await sha256Hex(buf);
  if (hash !== entry.sha256) {
    throw new PageError(`${name} (${what}) does not match its sha256 in manifest.json (changed or corrupt): ` +
      'export the bundle again.');
  }
  return buf;
}

// ------------------------------------------------------------------------------------------------------- the runtime
class Runtime {
  // The bundle's models, ready to run: features, audio2motion (wasm), renderer and paste (WebGPU when offered).
  static async load(cfg, ort, small) {
    const rt = new Runtime();
    rt.cfg = cfg; rt.ort = ort; rt.small = small;
    const manifest = rt.manifest = await loadManifest(cfg);
    const m = manifest.models;
    const a = rt.a2m = m.audio2motion;
    const fp = a.feature_params || manifest.audio_features;
    rt.fps = fp.fps; rt.sr = fp.sample_rate;
    rt.spf = fp.sample_rate / fp.fps;
    rt.fpv = rt.spf / fp.hop_length; rt.nMels = fp.n_mels;
    rt.context = m.features ? m.features.context_samples : fp.n_fft - fp.hop_length;
    rt.L = a.lookahead_frames || 0;
    rt.noEmotion = a.no_emotion_id ?? a.n_emotions ?? 6;
    rt.emotion = query.has('emotion') ? Number(query.get('emotion')) : rt.noEmotion;
    rt.silence = new Float32Array(rt.fpv * rt.nMels);
    if (Array.isArray(a.silence)) rt.silence.set(a.silence.flat()); else rt.silence.fill(a.silence ?? Math.log(fp.log_floor));
    rt.height = m.paste.height; rt.width = m.paste.width;
    rt.renderer = pickRenderer(manifest);

    const files = { features: m.features && m.features.file, audio2motion: a.file, renderer: rt.renderer.file,
      paste: m.paste.file };
    const bytes = {};
    for (const [key, name] of Object.entries(files)) {
      if (name) bytes[key] = await loadFile(cfg, manifest, name, `the ${key} model`);
    }
    if (!bytes.features) {
      if (!cfg.features_fallback) throw new PageError('The bundle has no features.onnx: export it again.');
      showWarning('This bundle was exported before features.onnx existed: the server built the log-mel graph from ' +
        'its manifest. Export the bundle again to ship it inside.');
      bytes.features = await (await fetchOk(cfg.features_fallback, 'features.onnx')).arrayBuffer();
    }
    rt.idle = null;
    if (a.mode === 'idle_from_recording' && a.idle && a.idle.file) {
      const loop = parseNpy(await loadFile(cfg, manifest, a.idle.file, 'the idle motion'), a.idle.file);
      rt.idle = { loop: loop.data, frames: loop.shape[0], dims: a.idle.dims, first: cfg.idle_first || 0 };
    }
    rt.ep = await Runtime.pickEP();
    if (rt.ep === 'wasm' && query.get('proxy') !== '0') ort.env.wasm.proxy = true;
    setStatus(`Starting onnxruntime-web (${rt.ep})…`);
    const opts = (eps) => ({ executionProviders: eps, graphOptimizationLevel: 'all' });
    try {
      rt.sFeatures = await small.InferenceSession.create(bytes.features, opts(['wasm']));
      rt.sA2m = await small.InferenceSession.create(bytes.audio2motion, opts(['wasm']));
      const eps = rt.ep === 'webgpu' ? ['webgpu', 'wasm'] : ['wasm'];
      rt.sRenderer = await ort.InferenceSession.create(bytes.renderer, opts(eps));
      rt.sPaste = await ort.InferenceSession.create(bytes.paste, opts(eps));
    } catch (e) {
      throw new PageError(`onnxruntime-web cannot load the bundle's models (${e.message}): export the bundle again.`);
    }
    return rt;
  }

  static async pickEP() {
    const asked = query.get('ep');
    if (asked === 'wasm') return 'wasm';
    try {
      if (navigator.gpu && await navigator.gpu.requestAdapter()) return 'webgpu';
    } catch (e) { /* no adapter: wasm */ }
    if (asked === 'webgpu') showWarning('WebGPU was asked for, but this browser offers none: running on wasm.');
    return 'wasm';
  }

  async features(block) {
    // audio (context + C*spf) -> Float32Array (C * fpv * nMels)
    const t = new this.small.Tensor('float32', block.slice(), [1, block.length]);
    const out = await this.sFeatures.run({ [this.sFeatures.inputNames[0]]: t });
    return out[this.sFeatures.outputNames[0]].data;
  }

  initState() {
    const z = (shape) => new this.small.Tensor('float32', new Float32Array(shape.reduce((x, y) => x * y, 1)), shape);
    return { conv: z(this.a2m.conv_state_shape), gru: z(this.a2m.gru_state_shape) };
  }

  async a2mStep(feat, state) {
    // one video frame's features (fpv * nMels) -> motion (69) of the frame L back, new state
    const out = await this.sA2m.run({
      features: new this.small.Tensor('float32', feat, [1, 1, this.fpv, this.nMels]),
      conv_state: state.conv, gru_state: state.gru,
      emotion: new this.small.Tensor('int64', BigInt64Array.from([BigInt(this.emotion)]), [1]),
    });
    return [out.motion.data, { conv: out.conv_state_out, gru: out.gru_state_out }];
  }

  addIdle(motion, k) {
    if (!this.idle) return motion;
    const { loop, frames, dims, first } = this.idle;
    const row = ((first + k) % frames) * dims.length;
    const y = Float32Array.from(motion);
    for (let j = 0; j < dims.length; j++) y[dims[j]] = motion[dims[j]] + loop[row + j];   // float32, as numpy
    return y;
  }

  async render(motion) {
    // motion (69) -> RGBA Uint8ClampedArray (H * W * 4): renderer.onnx then paste.onnx, rounded as live.to_uint8
    const r = this.sRenderer, p = this.sPaste;
    const face = (await r.run({ [r.inputNames[0]]: new this.ort.Tensor('float32', Float32Array.from(motion), [1, motion.length]) }))[r.outputNames[0]];
    const frame = (await p.run({ [p.inputNames[0]]: face }))[p.outputNames[0]];
    return toRGBA(await frame.getData(), this.height, this.width);
  }
}

function toRGBA(chw, h, w) {
  // (3, H, W) floats in [0, 1] -> RGBA bytes: rint(fround(clip(x) * 255)), half to even like numpy's rint.
  const n = h * w, out = new Uint8ClampedArray(n * 4);
  for (let c = 0; c < 3; c++) {
    const base = c * n;
    for (let i = 0; i < n; i++) {
      let x = chw[base + i];
      x = x > 1 ? 1 : (x > 0 ? x : 0);
      const v = Math.fround(x * 255);
      let q = Math.round(v);
      if (q - v === 0.5 && (q & 1)) q -= 1;
      out[4 * i + c] = q;
    }
  }
  for (let i = 0; i < n; i++) out[4 * i + 3] = 255;
  return out;
}

// ------------------------------------------------------------------------------------------------------- the stream
class Stream {
  // talkinghead.live's loop: samples in (any chunks) -> onMotion(k, motion) for every video frame, in order.
  constructor(rt, onMotion) {
    this.rt = rt; this.onMotion = onMotion;
    this.buf = new Float32Array(rt.context);           // the last `context` samples, then what is pending
    this.state = rt.initState();
    this.a2mOut = 0;
    this.samples = 0;
    this.queue = Promise.resolve();
    this.times = { features: 0, a2m: 0 };
  }

  push(x) { this.samples += x.length; const c = Float32Array.from(x); return this._then(() => this._push(c)); }

  flush() { return this._then(() => this._flush()); }

  _then(step) {
    // steps run one after another; a failure is said on the page once, and the stream stops computing
    this.queue = this.queue.then(() => (this.failed ? null : step())).catch((e) => {
      this.failed = true;
      showError(`The audio could not be processed (${e.message || e}): reload the page; if it happens again, ` +
        'export the bundle again.');
    });
    return this.queue;
  }

  async _push(x) {
    const rt = this.rt, b = new Float32Array(this.buf.length + x.length);
    b.set(this.buf); b.set(x, this.buf.length);
    this.buf = b;
    const C = Math.floor((b.length - rt.context) / rt.spf);
    if (C <= 0) return;
    const t = performance.now();
    const f = await rt.features(b.subarray(0, rt.context + C * rt.spf));
    this.times.features += performance.now() - t;
    this.buf = b.slice(C * rt.spf);
    await this._motion(f, C);
  }

  async _flush() {
    const rt = this.rt, pending = this.buf.length - rt.context;
    if (pending > 0) await this._push(new Float32Array(rt.spf - pending));
    if (this.a2mOut && rt.L) {
      const sil = new Float32Array(rt.L * rt.silence.length);
      for (let i = 0; i < rt.L; i++) sil.set(rt.silence, i * rt.silence.length);
      await this._motion(sil, rt.L);
    }
    this.buf = new Float32Array(rt.context);
  }

  async _motion(f, C) {
    const rt = this.rt, size = rt.fpv * rt.nMels;
    for (let i = 0; i < C; i++) {                  // one frame per step: the same numbers for any chunking
      const t = performance.now();
      const [y, state] = await rt.a2mStep(f.slice(i * size, (i + 1) * size), this.state);
      this.times.a2m += performance.now() - t;
      this.state = state;
      this.a2mOut += 1;
      if (this.a2mOut > rt.L) {
        const k = this.a2mOut - rt.L - 1;
        this.onMotion(k, rt.addIdle(y, k));
      }
    }
  }
}

// ------------------------------------------------------------------------------------------------------- the player
class Player {
  // Shows frames on the AudioContext clock; records when each frame was shown (input time, seconds).
  constructor(rt, ctx, canvas) {
    this.rt = rt; this.ctx = ctx; this.canvas = canvas;
    this.g = canvas.getContext('2d');
    this.image = new ImageData(rt.width, rt.height);
  }

  draw(rgba) {
    this.image.data.set(rgba);
    this.g.putImageData(this.image, 0, 0);
  }
}

function stats(values) {
  if (!values.length) return { mean: 0, p95: 0 };
  const s = [...values].sort((a, b) => a - b);
  return { mean: s.reduce((a, b) => a + b, 0) / s.length, p95: s[Math.min(s.length - 1, Math.floor(0.95 * s.length))] };
}

class LiveRun {
  // One stream on the clock: audio enters (a file fed at its real-time pace, or the microphone), frames are rendered
  // as soon as their motion is known unless they would be late (dropped), and shown at input time k/fps + delay.
  constructor(app, kind) {
    const rt = this.rt = app.rt;
    this.app = app; this.kind = kind; this.ctx = app.ctx;
    this.delay = app.delayFor(app.renderS);
    this.motions = new Map(); this.ready = new Map();
    this.next = 0; this.shownK = -1; this.lastK = null;
    this.shown = []; this.latencies = []; this.renderMs = []; this.renders = [];
    this.dropped = 0; this.late = 0; this.rendered = 0; this.done = false;
    this.stream = new Stream(rt, (k, m) => { this.motions.set(k, m); this._wake(); });
    this.wake = null;
    this.estRender = app.renderS;
  }

  start(t0) {
    this.t0 = t0;
    this.running = true;
    this.finished = new Promise((resolve) => { this._resolve = resolve; });
    this._renderLoop();
    this._displayLoop();
  }

  due(k) { return this.t0 + this.delay + k / this.rt.fps; }

  _wake() { if (this.wake) { const w = this.wake; this.wake = null; w(); } }

  async _renderLoop() {
    const rt = this.rt;
    while (this.running) {
      if (!this.motions.has(this.next)) {
        if (this.ended && this.lastK !== null && this.next > this.lastK) break;
        await new Promise((res) => { this.wake = res; setTimeout(res, 50); });
        continue;
      }
      const now = this.ctx.currentTime;
      // drop a frame that would be ready after its time when a later one is waiting (the last one stays on screen)
      if (this.motions.has(this.next + 1) && now + this.estRender > this.due(this.next) + 0.5 / rt.fps) {
        this.motions.delete(this.next++);
        this.dropped += 1;
        continue;
      }
      const k = this.next++;
      const m = this.motions.get(k); this.motions.delete(k);
      const t = performance.now(), start = this.ctx.currentTime - this.t0;
      const rgba = await rt.render(m);
      const took = (performance.now() - t) / 1000;
      this.estRender = this.rendered === 0 ? took : 0.7 * this.estRender + 0.3 * took;
      this.rendered += 1; this.renderMs.push(1000 * took);
      const readyAt = this.ctx.currentTime;
      this.latencies.push(1000 * (readyAt - this.arrival((k + 1) * rt.spf)));
      this.ready.set(k, rgba);
      this.renders.push([k, start, readyAt - this.t0]);
    }
  }

  arrival(sample) { return this.t0 + sample / this.rt.sr; }     // the instant a sample entered (real-time input)

  _displayLoop() {
    const tick = () => {
      if (!this.running) return;
      const now = this.ctx.currentTime, rt = this.rt;
      let best = -1;
      for (const k of this.ready.keys()) if (k > best && now >= this.due(k) - 0.002) best = k;
      if (best > this.shownK) {
        this.app.player.draw(this.ready.get(best));
        for (const k of [...this.ready.keys()]) if (k <= best) this.ready.delete(k);
        this.shown.push([best, now - this.t0]);
        if (now > this.due(best) + 0.5 / rt.fps) this.late += 1;
        this.shownK = best;
      }
      this.app.showStats(this);
      if (this.ended && this.lastK !== null && this.shownK >= this.lastK) return this.stop();
      if (this.ended && this.lastK !== null && now > this.due(this.lastK) + 2) return this.stop();
    };
    // the animation frame draws; a 5 ms timer as well, so a frame is not held back when animation frames are
    // throttled (a busy machine, a background tab)
    const raf = () => { tick(); if (this.running) requestAnimationFrame(raf); };
    const timer = () => { tick(); if (this.running) setTimeout(timer, 5); };
    requestAnimationFrame(raf);
    setTimeout(timer, 5);
  }

  async end() {
    // the audio is over: flush the features and the lookahead; the last frame is known
    this.ended = false;
    await this.stream.flush();
    this.lastK = this.stream.a2mOut - this.rt.L - 1;
    this.ended = true;
    this._wake();
  }

  stop() {
    if (!this.running) return;
    this.running = false;
    this._wake();
    if (this.onStop) this.onStop();
    const lat = stats(this.latencies), rm = stats(this.renderMs);
    const first = this.shown.length ? this.shown[0][1] : 0, last = this.shown.length ? this.shown.at(-1)[1] : 0;
    this.report = {
      kind: this.kind, mode: 'live', fps: this.rt.fps, delay_ms: 1000 * this.delay, frames: this.lastK === null ? null : this.lastK + 1,
      rendered: this.rendered, dropped: this.dropped, late: this.late, shown: this.shown, renders: this.renders,
      achieved_fps: this.shown.length > 1 ? (this.shown.length - 1) / (last - first) : 0,
      latency_mean_ms: lat.mean, latency_p95_ms: lat.p95, render_mean_ms: rm.mean, render_p95_ms: rm.p95,
      ep: this.rt.ep, renderer: this.rt.renderer.name,
    };
    page.runs.push(this.report);
    this._resolve(this.report);
  }
}

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
    ort.env.wasm.numThreads = self.crossOriginIsolated ? Math.min(4, navigator.hardwareConcurrency || 1) : 1;
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
    const rest = rt.addIdle(new Float32Array(69), 0);
    await rt.render(rest);                           // the first run is slower
    const t = performance.now();
    this.restImage = await rt.render(rest);
    this.renderS = (performance.now() - t) / 1000;
    this.player.draw(this.restImage);
    const mf = rt.manifest;
    $('bundle-info').textContent = `${mf.source?.name ?? 'avatar'} · ${mf.profile} profile · renderer ` +
      `${rt.renderer.name} · ${rt.ep}${rt.ep === 'wasm' ? ` (${ort.env.wasm.numThreads} threads)` : ''}`;
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
    page.ep = rt.ep; page.renderer = rt.renderer.name; page.threads = ort.env.wasm.numThreads;
    page.ready = true;
    setStatus('Ready: use the microphone, or choose or drop an audio file.');
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
    const feed = async () => {                      // the file enters at its real-time pace, as a microphone would
      while (run.running && fed < samples.length) {
        const upto = Math.min(samples.length, Math.floor((this.ctx.currentTime - t0) * rt.sr));
        if (upto > fed) { run.stream.push(samples.subarray(fed, upto)); fed = upto; }
        await new Promise((r) => setTimeout(r, 10));
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
    const renderT = performance.now();
    for (let k = 0; k < motions.length; k++) {
      setStatus(`Rendering all frames of ${name}: ${k + 1}/${motions.length}…`);
      this.frames.push(await rt.render(motions[k]));
      this.player.draw(this.frames[k]);
    }
    const wall = (performance.now() - t0) / 1000, renderS = (performance.now() - renderT) / 1000;
    const report = { mode: 'offline', frames: this.frames.length, wall_s: wall,
      render_fps: this.frames.length / Math.max(renderS, 1e-9), features_ms: stream.times.features, a2m_ms: stream.times.a2m,
      ep: rt.ep, renderer: rt.renderer.name };
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
page.canvasFrame = (k) => {
  // test hook: draw frame k of the last offline run and read the canvas back -> base64 RGBA
  app.player.draw(app.frames[k]);
  const d = $('avatar').getContext('2d').getImageData(0, 0, app.rt.width, app.rt.height).data;
  let s = '';
  for (let i = 0; i < d.length; i += 0x8000) s += String.fromCharCode.apply(null, d.subarray(i, i + 0x8000));
  return btoa(s);
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
  if (f && page.ready && !app.current?.running) guarded(async () => app.playFile(await f.arrayBuffer(), f.name));
};

guarded(async () => {
  await app.init();
  $('mic').disabled = false; $('file').disabled = false;
}).then(() => { page.loaded = true; });
