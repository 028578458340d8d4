// Where the peers find the server and the token: argv first, then the environment.
//   node <script>.mjs <server-url> [token] [...]
//   TASKCHAT_URL=http://127.0.0.1:8000 TASKCHAT_TOKEN=... node <script>.mjs

export function serverArgs() {
  const [url = process.env.TASKCHAT_URL, token = process.env.TASKCHAT_TOKEN, ...rest] =
    process.argv.slice(2);
  if (!url) {
    console.error('usage: node <script>.mjs <server-url> [token] [...]  (or TASKCHAT_URL, TASKCHAT_TOKEN)');
    process.exit(2);
  }
  const base = url.replace(/\/+$/, '').replace(/\/graphql$/, '');
  return {
    httpUrl: `${base}/graphql`,
    wsUrl: `${base.replace(/^http/, 'ws')}/graphql`,
    token: token || undefined,
    rest,
  };
}

export function requireToken(token) {
  if (!token) {
    console.error('a token is required (argv or TASKCHAT_TOKEN)');
    process.exit(2);
  }
  return token;
}

// POST a GraphQL operation; throws on transport or GraphQL errors.
export async function graphql(httpUrl, token, query, variables) {
  const response = await fetch(httpUrl, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/graphql-response+json, application/json',
      authorization: `Bearer ${token}`,
    },
    body: JSON.stringify({ query, variables }),
  });
  const body = await response.json();
  if (!response.ok || body.errors) {
    throw new Error(`HTTP ${response.status}: ${JSON.stringify(body)}`);
  }
  return body.data;
}
