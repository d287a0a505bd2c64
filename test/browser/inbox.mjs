// The agent's side of the inbox browser test (browser_test.go runs it).
// It drives Debian's Chromium through playwright-core and talks to the Go
// test over stdout, one line each:
//
//   READY                 logged in, the conversation list is open
//   REPLY <text>          the reply it sent the customer
//   NOTE <text>           the internal note it added
//   DONE                  everything checked, screenshots saved
//
// Inputs, from the environment: CONSOLE_URL, INBOX_LOGIN, INBOX_PASSWORD,
// CUSTOMERS (the addresses whose rows must appear, comma-separated),
// ANSWER (the customer whose conversation the agent handles), ASKED (that
// customer's message text), SHOTS (where screenshots go), PROFILE (a fresh
// Chromium user-data directory), CHROMIUM (the browser binary).
import { chromium } from 'playwright-core';
import path from 'node:path';

const env = (k) => {
  const v = process.env[k];
  if (!v) { throw new Error(`missing environment variable ${k}`); }
  return v;
};
const url = env('CONSOLE_URL');
const customers = env('CUSTOMERS').split(',');
const answer = env('ANSWER');
const shots = env('SHOTS');
const say = (line) => process.stdout.write(line + '\n');
const step = (what) => process.stderr.write(`browser: ${what}\n`);
const timeout = 20000;

const context = await chromium.launchPersistentContext(env('PROFILE'), {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-background-networking', '--disable-gpu',
    '--disable-component-update', '--no-first-run'],
  viewport: { width: 1280, height: 900 },
});
context.setDefaultTimeout(timeout);
const page = context.pages()[0] || await context.newPage();
try {
  page.on('pageerror', (e) => step(`page error: ${e}`));

  step('log in');
  await page.goto(url);
  await page.waitForSelector('form#login');
  await page.fill('form#login input[name=login]', env('INBOX_LOGIN'));
  await page.fill('form#login input[name=password]', env('INBOX_PASSWORD'));
  await Promise.all([page.waitForURL((u) => !u.pathname.startsWith('/login')), page.click('form#login button[type=submit]')]);
  await page.waitForSelector('#list');
  // A mark on the window survives live updates but not a reload.
  await page.evaluate(() => { window.__sameDocument = true; });
  say('READY');

  step('wait for the customers to appear live');
  for (const c of customers) {
    await page.waitForSelector(`[data-testid=conversation-row][data-customer="${c}"]`);
  }
  if (!(await page.evaluate(() => window.__sameDocument === true))) {
    throw new Error('the list was reloaded: rows did not arrive live');
  }
  await page.screenshot({ path: path.join(shots, 'list.png'), fullPage: true });

  step(`open ${answer}'s conversation`);
  const row = page.locator(`[data-testid=conversation-row][data-customer="${answer}"]`);
  await Promise.all([page.waitForURL(/\/c\/\d+/), row.locator('a[data-testid=open-conversation]').click()]);
  await page.locator('[data-testid=message][data-own=false] [data-testid=message-text]', { hasText: env('ASKED') }).waitFor();

  step('assign it to myself');
  const assign = page.locator('select[data-testid=assign-agent]');
  const mine = await assign.locator('option', { hasText: 'Administrator' }).first().getAttribute('value');
  await assign.selectOption(mine);
  await page.click('button[data-testid=assign-submit]');
  await page.locator('[data-testid=conversation-assignee]', { hasText: 'Administrator' }).waitFor();

  const reply = `Your parcel left our warehouse today (ref ${Date.now().toString(36)}).`;
  step('reply');
  await page.fill('textarea[data-testid=reply-text]', reply);
  await page.click('button[data-testid=reply-send]');
  await page.locator('[data-testid=message][data-own=true] [data-testid=message-text]', { hasText: reply }).waitFor();
  say(`REPLY ${reply}`);

  const note = 'Internal: customer asked twice, offer a discount if it is late again.';
  step('add a note');
  await page.fill('textarea[data-testid=note-text]', note);
  await page.click('button[data-testid=note-add]');
  await page.locator('[data-testid=note]', { hasText: note }).waitFor();
  say(`NOTE ${note}`);

  step('add a label');
  await page.fill('input[data-testid=label-input]', 'shipping');
  await page.click('button[data-testid=label-add]');
  await page.locator('[data-testid=label]', { hasText: 'shipping' }).first().waitFor();

  step('resolve');
  await page.click('button[data-testid=status-resolved]');
  await page.locator('[data-testid=conversation-status]', { hasText: 'resolved' }).waitFor();
  await page.screenshot({ path: path.join(shots, 'conversation.png'), fullPage: true });
  say('DONE');
} catch (e) {
  // Leave what the agent saw for whoever reads the failure.
  step(`failed at ${page.url()}: ${e.message}`);
  await page.screenshot({ path: path.join(shots, 'failure.png'), fullPage: true }).catch(() => {});
  step('page text: ' + (await page.locator('body').innerText().catch(() => '?')).slice(0, 1500));
  process.exitCode = 1;
} finally {
  await context.close();
}
