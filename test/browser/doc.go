// Package browser holds the inbox console's browser test: a Go test that
// starts real providers, a business inbox and two customers, and a
// Playwright script (inbox.mjs, playwright-core pinned in package.json)
// that drives Debian's Chromium headless as the agent. Run 'npm ci' here
// and install chromium first; .ci/run does both and sets
// SWITCHBOARD_BROWSER_TEST=1, which turns the test's skip into a failure.
// Screenshots of the list and the conversation go to ./screenshots (kept
// out of git), or to $SWITCHBOARD_SCREENSHOTS.
package browser
