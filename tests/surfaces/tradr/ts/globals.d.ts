// Seed 003's samples call `tradrApi`, which its "Using an Account API Key" sample exports. The runner
// (run_samples.mjs) imports that sample and makes its export global before each other sample runs.
import type { Tradr } from '@tradrapi/trading-sdk';

declare global {
  var tradrApi: Tradr;
}

export {};
