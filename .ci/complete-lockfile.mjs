// The npm registry mirror this project's machines use does not serve some
// platform-specific optional packages (other OSes' native builds of msgpackr
// and unrs-resolver), so `npm install` leaves them out of package-lock.json and
// `npm ci` then refuses the lock file as out of sync. This adds the entries the
// public registry would have recorded (version from the parent's spec, os/cpu/
// libc from the package name); npm skips them on every other platform.
// Run after `npm install` changes dependencies: node .ci/complete-lockfile.mjs
import { readFileSync, writeFileSync } from 'node:fs';

const file = new URL('../package-lock.json', import.meta.url);
const lock = JSON.parse(readFileSync(file, 'utf8'));
const platform = /-(android|darwin|freebsd|linux|openharmony|win32)-(arm64|arm|x64|ia32|loong64|ppc64|riscv64|s390x|wasm32)(?:-(gnu|musl|msvc|eabi|gnueabihf|musleabihf))?$/;
let added = 0;
for (const entry of Object.values(lock.packages)) {
  for (const [name, spec] of Object.entries(entry.optionalDependencies ?? {})) {
    const key = `node_modules/${name}`;
    const m = platform.exec(name);
    if (lock.packages[key] || !m) continue;
    const [, os, cpu, abi] = m;
    const libc = abi === 'gnu' || abi === 'gnueabihf' ? ['glibc'] : abi === 'musl' || abi === 'musleabihf' ? ['musl'] : undefined;
    lock.packages[key] = { version: spec.replace(/^[\^~=]/, ''), cpu: [cpu], license: 'MIT', optional: true, os: [os], ...(libc ? { libc } : {}) };
    added += 1;
  }
}
const sorted = Object.fromEntries(Object.entries(lock.packages).sort(([a], [b]) => (a === '' ? -1 : b === '' ? 1 : a < b ? -1 : a > b ? 1 : 0)));
writeFileSync(file, `${JSON.stringify({ ...lock, packages: sorted }, null, 2)}\n`);
console.log(`package-lock.json: ${added} platform entries added`);
