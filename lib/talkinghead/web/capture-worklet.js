// Microphone capture for talkinghead's page: mono float32 blocks of ~20 ms posted to the page with the audio-clock
// time of their first sample (AudioWorkletGlobalScope's currentTime).
class Capture extends AudioWorkletProcessor {
  constructor() {
    super();
    this.block = Math.round(sampleRate * 0.02);
    this.buf = new Float32Array(this.block);
    this.n = 0;
    this.start = 0;
  }

  process(inputs) {
    const chans = inputs[0];
    if (!chans || chans.length === 0) return true;
    const len = chans[0].length;
    for (let i = 0; i < len; i++) {
      let v = 0;
      for (let c = 0; c < chans.length; c++) v += chans[c][i];
      if (this.n === 0) this.start = currentTime + i / sampleRate;
      this.buf[this.n++] = v / chans.length;
      if (this.n === this.block) {
        this.port.postMessage({ samples: this.buf, time: this.start });
        this.buf = new Float32Array(this.block);
        this.n = 0;
      }
    }
    return true;
  }
}

registerProcessor('talkinghead-capture', Capture);
