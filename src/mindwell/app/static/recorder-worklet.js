/* mindwell push-to-talk: passes the microphone's samples from the audio thread to the page
   in blocks, as mono (the channels averaged). The page keeps them in memory only, until the
   recording is sent to the mindwell server to be turned into text. */
"use strict";

const BLOCK = 2048;

class MindwellRecorder extends AudioWorkletProcessor {
  constructor() {
    super();
    this.block = new Float32Array(BLOCK);
    this.filled = 0;
  }

  process(inputs) {
    const input = inputs[0];
    if (input && input.length) {
      const channels = input.length;
      const frames = input[0].length;
      for (let i = 0; i < frames; i++) {
        let sum = 0;
        for (let c = 0; c < channels; c++) sum += input[c][i];
        this.block[this.filled++] = sum / channels;
        if (this.filled === BLOCK) {
          this.port.postMessage(this.block, [this.block.buffer]);
          this.block = new Float32Array(BLOCK);
          this.filled = 0;
        }
      }
    }
    return true;
  }
}

registerProcessor("mindwell-recorder", MindwellRecorder);
