#!/usr/bin/env node
// `npx peersync …`: runs the bundled sidecar binary with the same arguments, stdio and exit code.
'use strict';
const fs = require('node:fs');
const { spawn } = require('node:child_process');
const { binaryPath } = require('..');

const exe = binaryPath();
try {
  fs.accessSync(exe, fs.constants.X_OK);
} catch {
  try {
    fs.chmodSync(exe, 0o755); // a tarball unpacked without its modes
  } catch {
    console.error(`peersync: the bundled sidecar binary is missing or not executable: ${exe}`);
    process.exit(1);
  }
}
const child = spawn(exe, process.argv.slice(2), { stdio: 'inherit' });
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(sig, () => child.kill(sig));
child.on('error', (e) => {
  console.error(`peersync: ${e.message}`);
  process.exit(1);
});
child.on('exit', (code, signal) => {
  if (signal) {
    // end the same way: our forwarding handler off, then the signal's default action
    process.removeAllListeners(signal);
    process.kill(process.pid, signal);
  } else process.exit(code ?? 1);
});
