// GraphQL over HTTP conformance: graphql-http's server audit against taskchat.
// Prints every result; exits 1 when a required audit ("error") fails. Warnings are
// recommendations: printed, never fatal.
import { auditServer } from 'graphql-http';
import { serverArgs } from './args.mjs';

const { httpUrl, token } = serverArgs();

// the audits send anonymous requests; with a token every request carries it
const fetchFn = token
  ? (input, init = {}) => {
      const headers = new Headers(init.headers);
      headers.set('authorization', `Bearer ${token}`);
      return fetch(input, { ...init, headers });
    }
  : undefined;

const results = await auditServer({ url: httpUrl, fetchFn });
const counts = { ok: 0, notice: 0, warn: 0, error: 0 };
for (const result of results) {
  counts[result.status] += 1;
  const line = `${result.status.toUpperCase().padEnd(6)} ${result.id} ${result.name}`;
  if (result.status === 'ok') {
    console.log(line);
    continue;
  }
  let body = '';
  try {
    body = await result.response.clone().text();
  } catch {
    body = '<body already read>';
  }
  console.log(`${line}\n       reason: ${result.reason}\n       response: ${result.response.status} ${body.slice(0, 300)}`);
}
console.log(`\n${results.length} audits: ${JSON.stringify(counts)}`);
process.exit(counts.error > 0 ? 1 : 0);
