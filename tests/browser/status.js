// The public crisis page as a reader meets it, at each viewport given:
// whether the crisis title and the emergency route are on the first
// screen, whether anything overflows sideways, what axe-core finds, and a
// screenshot for people to look at.
//
// Input: { url, title, emergency, viewports: [[width, height], ...], shots }.
'use strict';

const path = require('path');
const { launch, axe, main } = require('./harness');

// Where an element whose text contains `text` sits, if one is visible.
function place(page, text) {
  return page.evaluate((text) => {
    const all = Array.from(document.querySelectorAll('h1, h2, h3, p, li, strong, a'));
    const el = all.find((e) => e.offsetParent !== null && e.textContent.includes(text));
    if (!el) return null;
    const box = el.getBoundingClientRect();
    return { tag: el.tagName.toLowerCase(), top: box.top, bottom: box.bottom };
  }, text);
}

async function view(browser, input, [width, height]) {
  const page = await browser.newPage({ viewport: { width, height } });
  const response = await page.goto(input.url, { waitUntil: 'load' });
  const shot = path.join(input.shots, `${width}x${height}.png`);
  await page.screenshot({ path: shot });
  const result = {
    width,
    height,
    status: response.status(),
    lang: await page.evaluate(() => document.documentElement.lang),
    scrollWidth: await page.evaluate(() => document.documentElement.scrollWidth),
    title: await place(page, input.title),
    emergency: await place(page, input.emergency),
    violations: await axe(page, 'html'),
    screenshot: shot,
  };
  await page.close();
  return result;
}

main(async (input) => {
  const browser = await launch();
  try {
    const views = [];
    for (const viewport of input.viewports) views.push(await view(browser, input, viewport));
    return { views };
  } finally {
    await browser.close();
  }
});
