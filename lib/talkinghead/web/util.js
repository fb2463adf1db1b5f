// talkinghead's page: messages, SHA-256, .npy and the bundle's manifest and files (see app.js).

export const $ = (id) => document.getElementById(id);
export const query = new URLSearchParams(location.search);
export const FORMAT = 'talkinghead-avatar';
export const OFFLINE_MAX_S = 60;
export const WARM_RENDERS = 100, WARM_MAX_S = 8;    // the warm-up at load (App.warmUp)

export class PageError extends Error {}

// ------------------------------------------------------------------------------------------------------- messages
export const page = window.talkinghead = { ready: false, error: null, warning: null, status: '', runs: [] };

export function showError(msg) {
  page.error = msg;
  $('error').textContent = msg;
  $('error').hidden = false;
  setStatus('');
}

export function clearError() { page.error = null; $('error').hidden = true; }

export function showWarning(msg) {
  page.warning = page.warning ? `${page.warning}\n${msg}` : msg;
  $('warning').textContent = page.warning;
  $('warning').hidden = false;
}

export function setStatus(msg) { page.status = msg; $('status').textContent = msg; $('status').hidden = !msg; }

// ------------------------------------------------------------------------------------------------------- sha-256
export async function sha256Hex(buf) {
  if (globalThis.crypto && crypto.subtle) {
    const d = new Uint8Array(await crypto.subtle.digest('SHA-256', buf));
    return Array.from(d, (b) => b.toString(16).padStart(2, '0')).join('');
  }
  return sha256Plain(new Uint8Array(buf));       // not a secure context (another host over plain http)
}

export function sha256Plain(data) {
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
export function parseNpy(buf, name) {
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
export async function fetchOk(url, what) {
  let r;
  try { r = await fetch(url, { cache: 'no-cache' }); } catch (e) {
    throw new PageError(`Cannot reach ${url} (${e.message}): is \`python -m talkinghead serve\` still running?`);
  }
  if (!r.ok) throw new PageError(`${what} (${url}) could not be loaded: HTTP ${r.status}. Export the bundle again.`);
  return r;
}

export async function loadManifest(cfg) {
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

export function pickRenderer(manifest) {
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

export async function loadFile(cfg, manifest, name, what) {
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
