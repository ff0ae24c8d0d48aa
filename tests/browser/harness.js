// Shared by the browser tests: Debian's Chromium driven by Playwright, and
// axe-core for accessibility. A script reads its input as JSON from
// argv[2] and prints its result as one JSON line; any failure exits
// non-zero with the reason on stderr, which the Rust side reports.
'use strict';

const fs = require('fs');
const { chromium } = require('playwright-core');

const CHROMIUM = process.env.CRISISD_CHROMIUM || '/usr/bin/chromium';
const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

async function launch() {
  if (!fs.existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install chromium`);
  return chromium.launch({ executablePath: CHROMIUM, args: FLAGS, headless: true, timeout: 30000 });
}

// axe-core's violations within `selector` (the part of the page that is
// ours), as rule id, impact and the offending nodes' HTML.
async function axe(page, selector) {
  const source = fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
  await page.addScriptTag({ content: source });
  return page.evaluate(async (selector) => {
    const result = await window.axe.run({ include: [selector] }, { resultTypes: ['violations'] });
    return result.violations.map((v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      nodes: v.nodes.map((n) => n.html),
    }));
  }, selector);
}

// Runs `body(input)` and prints its result; exits 1 with the error.
function main(body) {
  let input;
  try {
    input = JSON.parse(process.argv[2] || '{}');
  } catch (err) {
    console.error(`input is not JSON: ${err.message}`);
    process.exit(2);
  }
  // A long walk through the console may ask for more (`timeout_s`); the
  // Rust side gives up at 150 s.
  const limit = Math.min(input.timeout_s || 60, 140);
  const watchdog = setTimeout(() => {
    console.error(`the browser script took over ${limit} s`);
    process.exit(1);
  }, limit * 1000);
  body(input)
    .then((result) => {
      clearTimeout(watchdog);
      process.stdout.write(JSON.stringify(result) + '\n');
    })
    .catch((err) => {
      clearTimeout(watchdog);
      console.error(err && err.stack ? err.stack : String(err));
      process.exit(1);
    });
}

module.exports = { launch, axe, main };
