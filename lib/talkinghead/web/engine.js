// talkinghead's page: the bundle's models (Runtime), the live engine's loop (Stream) and the clock (LiveRun).
// See app.js for the picture, and lib/talkinghead/live for the Python engine this mirrors.
import { fetchOk, loadFile, loadManifest, page, PageError, parseNpy, pickRenderer, query, setStatus, showError,
  showWarning } from './util.js';

// ------------------------------------------------------------------------------------------------------- the runtime
export class Runtime {
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
    // the pocket renderer's frame graph (pocket_frame.onnx: motion -> the frame's moving box as RGBA bytes, drawn
    // over pocket_background.png) replaces renderer + paste; ?frame=0 keeps the two-model path (benchmarks)
    rt.frame = rt.renderer.frame && query.get('frame') !== '0' ? checkFrame(rt.renderer.frame, rt) : null;
    const files = { features: m.features && m.features.file, audio2motion: a.file,
      ...(rt.frame ? { frame: rt.frame.file } : { renderer: rt.renderer.file, paste: m.paste.file }) };
    const bytes = {};
    for (const [key, name] of Object.entries(files)) {
      const what = key === 'frame' ? 'the frame graph' : `the ${key} model`;
      if (name) bytes[key] = await loadFile(cfg, manifest, name, what);
    }
    if (!bytes.features) {
      if (!cfg.features_fallback) throw new PageError('The bundle has no features.onnx: export it again.');
      showWarning('This bundle was exported before features.onnx existed: the server built the log-mel graph from ' +
        'its manifest. Export the bundle again to ship it inside.');
      bytes.features = await (await fetchOk(cfg.features_fallback, 'features.onnx')).arrayBuffer();
    }
    rt.pasteMode = !rt.frame && query.get('paste') === 'canvas' ? 'canvas' : 'onnx';
    if (rt.frame) await rt.loadBackground(cfg); else await rt.loadCanvasPaste(cfg);
    rt.idle = null;
    if (a.mode === 'idle_from_recording' && a.idle && a.idle.file) {
      const loop = parseNpy(await loadFile(cfg, manifest, a.idle.file, 'the idle motion'), a.idle.file);
      rt.idle = { loop: loop.data, frames: loop.shape[0], dims: a.idle.dims, first: cfg.idle_first || 0 };
    }
    rt.ep = await Runtime.pickEP(!!rt.frame);
    if (rt.ep === 'wasm' && query.get('proxy') !== '0') ort.env.wasm.proxy = true;
    setStatus(`Starting onnxruntime-web (${rt.ep})…`);
    const opts = (eps) => ({ executionProviders: eps, graphOptimizationLevel: 'all' });
    try {
      rt.sFeatures = await small.InferenceSession.create(bytes.features, opts(['wasm']));
      rt.sA2m = await small.InferenceSession.create(bytes.audio2motion, opts(['wasm']));
      const eps = rt.ep === 'webgpu' ? ['webgpu', 'wasm'] : ['wasm'];
      if (rt.frame) {
        rt.sFrame = await ort.InferenceSession.create(bytes.frame, opts(eps));
      } else {
        rt.sRenderer = await ort.InferenceSession.create(bytes.renderer, opts(eps));
        rt.sPaste = await ort.InferenceSession.create(bytes.paste, opts(eps));
      }
    } catch (e) {
      throw new PageError(`onnxruntime-web cannot load the bundle's models (${e.message}): export the bundle again.`);
    }
    const f = rt.frame;
    if (f && (!rt.sFrame.inputNames.includes(f.input) || !rt.sFrame.outputNames.includes(f.output))) {
      throw new PageError(`${f.file} does not have the input "${f.input}" and output "${f.output}" that ` +
        'manifest.json names: export the bundle again.');
    }
    rt.path = rt.frame ? 'frame' : rt.pasteMode;
    rt.times = { model: 0, paste: 0, pixels: 0, render: 0, frames: 0 };
    await rt.checkGPU(bytes, opts);
    rt.times = { model: 0, paste: 0, pixels: 0, render: 0, frames: 0 };
    return rt;
  }

  static async pickEP(gpuOK) {
    // WebGPU for the pocket frame graph when the browser offers an adapter; the full renderer stays on wasm: in
    // onnxruntime-web 1.30 its WebGPU backend cannot run the warping's 3-D pooling in NHWC, and in NCHW its frames
    // differ from onnxruntime's by up to 111 grey levels (tests/test_browser.py, on SwiftShader's WebGPU)
    const asked = query.get('ep');
    if (asked === 'wasm') return 'wasm';
    let adapter = false;
    try {
      adapter = !!(navigator.gpu && await navigator.gpu.requestAdapter());
    } catch (e) { /* no adapter: wasm */ }
    if (adapter && gpuOK) return 'webgpu';
    if (asked === 'webgpu') {
      showWarning(adapter ? 'WebGPU was asked for, but only the pocket renderer\'s frame graph runs on it here ' +
        '(onnxruntime-web cannot run the full renderer exactly on WebGPU): running on wasm.' :
        'WebGPU was asked for, but this browser offers none: running on wasm.');
    }
    return 'wasm';
  }

  async checkGPU(bytes, opts) {
    // one render on WebGPU; if it fails (a driver, an op), the frame graph runs on wasm instead, with a warning
    if (this.ep !== 'webgpu') return;
    try {
      await this.render(this.addIdle(new Float32Array(69), 0));
    } catch (e) {
      showWarning(`WebGPU could not run the frame graph (${e.message || e}): running on wasm instead.`);
      this.ep = 'wasm';
      this.sFrame = await this.ort.InferenceSession.create(bytes.frame, opts(['wasm']));
    }
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
    // motion (69) -> a picture {image: ImageData, x, y} to put on the canvas at (x, y): with the frame graph, the
    // moving box as bytes (the rest of the canvas is the background, drawn once); else renderer then paste.onnx
    // (rounded as live.to_uint8, the Python engine's pixels) or, with pasteMode 'canvas', the canvas (faster, within
    // a grey level or two), the whole frame. rt.times adds up each stage (ms).
    const T = this.times, t0 = performance.now();
    const x = new this.ort.Tensor('float32', Float32Array.from(motion), [1, motion.length]);
    if (this.frame) {
      const f = this.frame, out = (await this.sFrame.run({ [f.input]: x }))[f.output];
      const t1 = performance.now(), d = await out.getData();
      const image = new ImageData(new Uint8ClampedArray(d.buffer, d.byteOffset, d.byteLength), f.w, f.h);
      const t2 = performance.now();
      T.model += t1 - t0; T.pixels += t2 - t1; T.render += t2 - t0; T.frames += 1;
      return { image, x: f.x0, y: f.y0 };
    }
    const r = this.sRenderer, p = this.sPaste;
    const face = (await r.run({ [r.inputNames[0]]: x }))[r.outputNames[0]];
    const t1 = performance.now();
    let image;
    if (this.pasteMode === 'canvas') {
      const rgba = toRGBA(await face.getData(), face.dims[2], face.dims[3]);
      const t2 = performance.now();
      image = this.canvasPaste(rgba);
      T.pixels += t2 - t1; T.paste += performance.now() - t2;
    } else {
      const frame = (await p.run({ [p.inputNames[0]]: face }))[p.outputNames[0]];
      const t2 = performance.now();
      image = new ImageData(toRGBA(await frame.getData(), this.height, this.width), this.width, this.height);
      T.paste += t2 - t1; T.pixels += performance.now() - t2;
    }
    T.model += t1 - t0; T.render += performance.now() - t0; T.frames += 1;
    return { image, x: 0, y: 0 };
  }

  async loadImage(cfg, name, what) {
    // a bundle image (hash-checked by loadFile), decoded; one sentence when the browser cannot read it
    const buf = await loadFile(cfg, this.manifest, name, what);
    try {
      return await createImageBitmap(new Blob([buf], { type: 'image/png' }));
    } catch (e) {
      throw new PageError(`${name} (${what}) is not an image this browser can read: export the bundle again.`);
    }
  }

  async loadBackground(cfg) {
    // the frame at rest (pocket_background.png, the whole H x W frame): drawn once, the frame graph's box over it
    const name = this.frame.background;
    this.background = await this.loadImage(cfg, name, 'the rest frame');
    if (this.background.width !== this.width || this.background.height !== this.height) {
      throw new PageError(`${name} is ${this.background.width}x${this.background.height}, not the frame's ` +
        `${this.width}x${this.height}: export the bundle again.`);
    }
  }

  async loadCanvasPaste(cfg) {
    // the portrait, the mask (its grey as alpha) and the crop-to-portrait matrix, for canvasPaste
    const portrait = await this.loadImage(cfg, 'portrait.png', 'the portrait');
    const mask = await this.loadImage(cfg, 'paste_mask.png', 'the paste mask');
    const W = this.width, H = this.height, crop = this.manifest.crop.dsize;
    const mc = new OffscreenCanvas(W, H), g = mc.getContext('2d', { willReadFrequently: true });
    g.drawImage(mask, 0, 0);
    const d = g.getImageData(0, 0, W, H);
    for (let i = 0; i < d.data.length; i += 4) { d.data[i + 3] = d.data[i]; d.data[i] = d.data[i + 1] = d.data[i + 2] = 0; }
    g.putImageData(d, 0, 0);
    const M = this.manifest.crop.M_c2o;              // cv2 convention (pixel centres at integers) -> canvas (at +0.5)
    this.paste2d = {
      portrait, mask: mc, face: new OffscreenCanvas(crop, crop), layer: new OffscreenCanvas(W, H),
      out: new OffscreenCanvas(W, H),
      m: [M[0][0], M[1][0], M[0][1], M[1][1], M[0][2] + 0.5 - 0.5 * (M[0][0] + M[0][1]),
        M[1][2] + 0.5 - 0.5 * (M[1][0] + M[1][1])],
    };
  }

  canvasPaste(faceRGBA) {
    // face warped into the portrait by M_c2o (bilinear), blended with the soft mask: mask * face + (1 - mask) * portrait
    const P = this.paste2d, n = P.face.width;
    P.face.getContext('2d').putImageData(new ImageData(faceRGBA, n, n), 0, 0);
    const g = P.layer.getContext('2d');
    g.globalCompositeOperation = 'copy';
    g.setTransform(...P.m);
    g.imageSmoothingEnabled = true; g.imageSmoothingQuality = 'low';
    g.drawImage(P.face, 0, 0);
    g.setTransform(1, 0, 0, 1, 0, 0);
    g.globalCompositeOperation = 'destination-in';
    g.drawImage(P.mask, 0, 0);
    const o = P.out.getContext('2d', { willReadFrequently: true });
    o.globalCompositeOperation = 'copy';
    o.drawImage(P.portrait, 0, 0);
    o.globalCompositeOperation = 'source-over';
    o.drawImage(P.layer, 0, 0);
    return o.getImageData(0, 0, this.width, this.height);
  }
}

function checkFrame(f, rt) {
  // the manifest's frame entry: {file, background, box: [y0, x0, h, w], input, output}, the box inside the frame
  const box = f.box || [];
  const ok = typeof f.file === 'string' && typeof f.background === 'string' && box.length === 4 &&
    box.every((v) => Number.isInteger(v)) && box[0] >= 0 && box[1] >= 0 && box[2] > 0 && box[3] > 0 &&
    box[0] + box[2] <= rt.height && box[1] + box[3] <= rt.width;
  if (!ok) {
    throw new PageError(`manifest.json's pocket frame graph entry is not usable (box ${JSON.stringify(f.box)} in a ` +
      `${rt.width}x${rt.height} frame): export the bundle again.`);
  }
  return { file: f.file, background: f.background, input: f.input || 'motion', output: f.output || 'rgba',
    y0: box[0], x0: box[1], h: box[2], w: box[3] };
}

export function toRGBA(chw, h, w) {
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
export class Stream {
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
export class Player {
  // Puts pictures ({image, x, y}, Runtime.render) on the canvas; with the frame graph the background is drawn once
  // and each picture is only the moving box. drawMs / draws: the time spent drawing.
  constructor(rt, ctx, canvas) {
    this.rt = rt; this.ctx = ctx; this.canvas = canvas;
    this.g = canvas.getContext('2d');
    if (rt.background) this.g.drawImage(rt.background, 0, 0);
    this.drawMs = 0; this.draws = 0;
  }

  draw(pic) {
    const t = performance.now();
    this.g.putImageData(pic.image, pic.x, pic.y);
    this.drawMs += performance.now() - t; this.draws += 1;
  }
}

export function stageTotals(rt, player) {
  // the running totals behind stagesMs: the runtime's (ms, frames) and the player's draws
  return { ...rt.times, draw: player.drawMs, draws: player.draws };
}

export function stagesMs(stream, before, after) {
  // ms per frame in each stage between two stageTotals: features, a2m (per audio frame), the renderer call's parts
  // (model, paste, pixels) and the whole call (render), per rendered frame, and draw, per drawn frame
  const per = (k, n) => (n > 0 ? (after[k] - before[k]) / n : 0);
  const renders = after.frames - before.frames, draws = after.draws - before.draws;
  const frames = Math.max(1, stream.a2mOut);
  return { features: stream.times.features / frames, a2m: stream.times.a2m / frames,
    model: per('model', renders), paste: per('paste', renders), pixels: per('pixels', renders),
    render: per('render', renders), draw: per('draw', draws) };
}

export function stats(values) {
  if (!values.length) return { mean: 0, p95: 0 };
  const s = [...values].sort((a, b) => a - b);
  return { mean: s.reduce((a, b) => a + b, 0) / s.length, p95: s[Math.min(s.length - 1, Math.floor(0.95 * s.length))] };
}

export class LiveRun {
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
    this.totals = stageTotals(this.rt, this.app.player);
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
      const pic = await rt.render(m);
      const took = (performance.now() - t) / 1000;
      this.estRender = this.rendered === 0 ? took : 0.7 * this.estRender + 0.3 * took;
      this.rendered += 1; this.renderMs.push(1000 * took);
      const readyAt = this.ctx.currentTime;
      this.latencies.push(1000 * (readyAt - this.arrival((k + 1) * rt.spf)));
      this.ready.set(k, pic);
      this.renders.push([k, start, readyAt - this.t0]);
      this.tick();                                   // shown now if late, else its timer is set
    }
  }

  arrival(sample) { return this.t0 + sample / this.rt.sr; }     // the instant a sample entered (real-time input)

  _displayLoop() { this.tick(); }

  tick() {
    // show the latest ready frame whose time has come; then sleep until the next ready frame's time (a render that
    // finishes calls this too), or 250 ms for the numbers on screen. No polling timer, no animation frames: each
    // wake-up takes the main thread from features and audio2motion, and on 2 cores from the renderer.
    clearTimeout(this.tickTimer);
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
    if (now - (this.statsAt ?? -1) >= 0.25) {       // the numbers 4 times a second: each DOM change costs a relayout
      this.app.showStats(this);                    // and a repaint, which the renderer's core cannot spare
      this.statsAt = now;
    }
    if (this.ended && this.lastK !== null && this.shownK >= this.lastK) return this.stop();
    if (this.ended && this.lastK !== null && now > this.due(this.lastK) + 2) return this.stop();
    let wake = now + 0.25;
    for (const k of this.ready.keys()) wake = Math.min(wake, this.due(k) - 0.002);
    // the audio clock moves in 128-sample steps (8 ms at 16 kHz): at least 2 ms between checks
    this.tickTimer = setTimeout(() => this.tick(), Math.max(2, 1000 * (wake - now)));
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
    clearTimeout(this.tickTimer);
    this.app.showStats(this);
    this._wake();
    if (this.onStop) this.onStop();
    const lat = stats(this.latencies), rm = stats(this.renderMs);
    const first = this.shown.length ? this.shown[0][1] : 0, last = this.shown.length ? this.shown.at(-1)[1] : 0;
    this.report = {
      kind: this.kind, mode: 'live', fps: this.rt.fps, delay_ms: 1000 * this.delay, frames: this.lastK === null ? null : this.lastK + 1,
      rendered: this.rendered, dropped: this.dropped, late: this.late, shown: this.shown, renders: this.renders,
      achieved_fps: this.shown.length > 1 ? (this.shown.length - 1) / (last - first) : 0,
      latency_mean_ms: lat.mean, latency_p95_ms: lat.p95, render_mean_ms: rm.mean, render_p95_ms: rm.p95,
      ep: this.rt.ep, renderer: this.rt.renderer.name, path: this.rt.path,
      stages_ms: stagesMs(this.stream, this.totals, stageTotals(this.rt, this.app.player)),
    };
    page.runs.push(this.report);
    this._resolve(this.report);
  }
}
