// Settle a conflict on a paired device's sidecar, signed (RFC 9421, ed25519) with this device's own key.
// node resolve_conflict.mjs URL DEVICE_ID KEY_FILE CONFLICT_ID CHOICE
import { createHash, createPrivateKey, randomBytes, sign } from 'node:crypto';
import { readFileSync } from 'node:fs';

export async function resolve(url, deviceId, keyFile, conflictId, choice) {
  const key = createPrivateKey(readFileSync(keyFile)); // this device's key file (PKCS#8 PEM)
  const target = new URL(`/conflicts/${conflictId}/resolve`, url);
  const body = JSON.stringify({ choice });
  const digest = `sha-256=:${createHash('sha256').update(body).digest('base64')}:`;
  const created = Math.floor(Date.now() / 1000);
  const nonce = randomBytes(16).toString('base64'); // a fresh nonce for every request
  const params =
    `("@method" "@target-uri" "content-digest");created=${created};keyid="${deviceId}";alg="ed25519";nonce="${nonce}"`;
  const base = [
    `"@method": POST`,
    `"@target-uri": ${target.href}`,
    `"content-digest": ${digest}`,
    `"@signature-params": ${params}`,
  ].join('\n');
  const signature = sign(null, Buffer.from(base), key).toString('base64');
  const res = await fetch(target, {
    method: 'POST',
    body,
    headers: {
      'content-type': 'application/json',
      'content-digest': digest,
      'signature-input': `sig1=${params}`,
      signature: `sig1=:${signature}:`,
    },
  });
  const answer = await res.json();
  if (!res.ok) throw new Error(`${res.status}: ${answer.error}`);
  return answer; // {id, status, conflict}
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [url, deviceId, keyFile, id, choice] = process.argv.slice(2);
  const answer = await resolve(url, deviceId, keyFile, Number(id), choice.startsWith('{') ? JSON.parse(choice) : choice);
  console.log(JSON.stringify(answer));
}
