// Run seed 003's samples, compiled by tsc, on Strongroom's client against a live server.
//
//   node run_samples.mjs RUN_DIR
//
// RUN_DIR/steps.json lists the steps in order: {"name", "dir", "make": bool}. In each step's dir,
// sample.js is one sample of the seed, verbatim; with "make", tradr.js is the seed's "Using an Account
// API Key" sample (its placeholder key replaced by a real one) and its exported `tradrApi` is made
// global first, wrapped so that every call, its arguments and what it returned or threw are recorded.
// Prints one JSON document; asserts nothing itself (test_tradr_sdk.py does).

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import * as sdk from '@tradrapi/trading-sdk';

const runDir = process.argv[2];
if (!runDir) {
  console.error('usage: node run_samples.mjs RUN_DIR');
  process.exit(2);
}

function describe(error) {
  return {
    name: error?.constructor?.name ?? typeof error,
    isTradrError: error instanceof sdk.TradrError,
    status: error?.status ?? null,
    error: error?.error ?? null,
    message: String(error?.message ?? error),
  };
}

// `tradrApi`, with each method of `accounts` and `users` recorded in `calls`.
function recorded(api, calls) {
  const namespace = (target, name) => new Proxy(target, {
    get(object, property) {
      const value = object[property];
      if (typeof value !== 'function') return value;
      return async (...args) => {
        const call = { method: `${name}.${String(property)}`, args: JSON.parse(JSON.stringify(args)) };
        calls.push(call);
        try {
          call.result = await value.apply(object, args);
          call.type = Array.isArray(call.result) ? 'array' : typeof call.result;
          return call.result;
        } catch (error) {
          call.error = describe(error);
          throw error;
        }
      };
    },
  });
  return new Proxy(api, {
    get(object, property) {
      const value = object[property];
      return property === 'accounts' || property === 'users' ? namespace(value, property) : value;
    },
  });
}

const steps = JSON.parse(readFileSync(join(runDir, 'steps.json'), 'utf8'));
const out = { UserRole: { ...sdk.UserRole }, steps: {} };
for (const step of steps) {
  const calls = [];
  const record = { calls, error: null, exports: [] };
  out.steps[step.name] = record;
  try {
    if (step.make) {
      const made = await import(pathToFileURL(join(runDir, step.dir, 'tradr.js')).href);
      record.madeTradr = made.tradrApi instanceof sdk.Tradr;
      globalThis.tradrApi = recorded(made.tradrApi, calls);
    }
    const sample = await import(pathToFileURL(join(runDir, step.dir, 'sample.js')).href);
    record.exports = Object.keys(sample);
    if (sample.UserRole) record.UserRole = { ...sample.UserRole };
  } catch (error) {
    record.error = describe(error);
  } finally {
    delete globalThis.tradrApi;
  }
}
console.log(JSON.stringify(out));
