// GraphiQL in a real browser (Debian's chromium, headless, via playwright-core): the page
// loads with no failed request, no request off this server and no console error; the
// headers pane holds the demo token; a query runs with it; a sendMessageStream
// subscription streams over the WebSocket.
//   node graphiql.mjs <server-url> <demo-token>
import { chromium } from 'playwright-core';
import { requireToken, serverArgs } from './args.mjs';

const { httpUrl, token: maybeToken } = serverArgs();
const token = requireToken(maybeToken);
const origin = new URL(httpUrl).origin;
const problems = [];

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
});
let code = 1;
try {
  const page = await browser.newPage();
  page.on('console', (message) => {
    if (message.type() === 'error') problems.push(`console error: ${message.text()}`);
  });
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  page.on('requestfailed', (request) =>
    problems.push(`failed request: ${request.url()} (${request.failure()?.errorText})`),
  );
  page.on('request', (request) => {
    const url = request.url();
    if (!url.startsWith(origin) && !url.startsWith('data:') && !url.startsWith(origin.replace(/^http/, 'ws'))) {
      problems.push(`request off this server: ${url}`);
    }
  });
  page.on('response', (response) => {
    if (response.status() >= 400) problems.push(`HTTP ${response.status()}: ${response.url()}`);
  });
  const frames = [];
  page.on('websocket', (socket) => {
    socket.on('framereceived', (frame) => frames.push(String(frame.payload)));
  });

  await page.goto(httpUrl, { waitUntil: 'load' });
  await page.locator('.graphiql-container').waitFor({ timeout: 15000 });
  // the headers pane holds the demo token
  await page.getByText('Headers', { exact: true }).click();
  const headersText = await page.locator('.graphiql-editor-tool .CodeMirror').last().innerText();
  if (!headersText.includes(token)) throw new Error(`the headers pane lacks the demo token: ${headersText}`);
  console.log('headers pane holds the demo token');

  const tabs = await page.locator('.graphiql-tab').allInnerTexts();
  console.log(`tabs: ${JSON.stringify(tabs)}`);
  for (const name of ['SendMessage', 'Conversations', 'Stream']) {
    if (!tabs.some((tab) => tab.includes(name))) throw new Error(`no example tab ${name}`);
  }

  async function runTab(name, expected) {
    await page.locator('.graphiql-tab', { hasText: name }).first().click();
    await page.locator('.graphiql-query-editor', { hasText: name }).waitFor({ timeout: 15000 });
    await page.locator('.graphiql-execute-button').click();
    const result = page.locator('.result-window');
    await result.getByText(expected).first().waitFor({ timeout: 15000 });
    return result.innerText();
  }

  const sent = await runTab('SendMessage', 'Added \\"buy milk\\" to your tasks.');
  if (sent.includes('UNAUTHENTICATED')) throw new Error(`the query ran without the token: ${sent}`);
  console.log('query ran with the demo token');

  const streamed = await runTab('Stream', 'ReplyCompleted');
  const deltas = frames.filter((frame) => frame.includes('"type":"next"') && frame.includes('ReplyDelta'));
  if (deltas.length === 0) throw new Error(`no ReplyDelta arrived over the WebSocket: ${JSON.stringify(frames)}`);
  if (!streamed.includes('buy milk')) throw new Error(`the streamed reply lacks the task: ${streamed}`);
  console.log(`subscription streamed ${deltas.length} deltas over the WebSocket`);

  if (problems.length) throw new Error(`problems:\n  ${problems.join('\n  ')}`);
  console.log('ok: GraphiQL works offline');
  code = 0;
} catch (error) {
  console.error(`FAILED: ${error.message}`);
  if (problems.length) console.error(problems.join('\n'));
} finally {
  await browser.close();
}
process.exit(code);
