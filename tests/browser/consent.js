// The unsubscribe and preference page as a reader meets it on a phone:
// its language, whether it runs off the side, what axe-core finds, where
// the save button sits; then the reader picks a choice and saves, and the
// page that answers is checked the same way.
//
// Input: { url, choice, viewport: [width, height], shots }.
'use strict';

const path = require('path');
const { launch, axe, main } = require('./harness');

async function look(page, response, shot) {
  await page.screenshot({ path: shot, fullPage: true });
  return {
    status: response.status(),
    lang: await page.evaluate(() => document.documentElement.lang),
    scrollWidth: await page.evaluate(() => document.documentElement.scrollWidth),
    heading: await page.evaluate(() => document.querySelector('h1')?.textContent ?? null),
    saveBottom: await page.evaluate(() => document.querySelector('button')?.getBoundingClientRect().bottom ?? null),
    saved: await page.evaluate(() => document.querySelector('[role=status]')?.textContent ?? null),
    checked: await page.evaluate(() => document.querySelector('input[name=choice]:checked')?.value ?? null),
    violations: await axe(page, 'html'),
    screenshot: shot,
  };
}

main(async (input) => {
  const browser = await launch();
  try {
    const [width, height] = input.viewport;
    const page = await browser.newPage({ viewport: { width, height } });
    const first = await page.goto(input.url, { waitUntil: 'load' });
    const before = await look(page, first, path.join(input.shots, `${width}x${height}.png`));
    // As a person does it: the label, then the button.
    await page.click(`label[for=choice-${input.choice}]`);
    const [answer] = await Promise.all([
      page.waitForNavigation({ waitUntil: 'load' }),
      page.click('button[type=submit]'),
    ]);
    const after = await look(page, answer, path.join(input.shots, `${width}x${height}-saved.png`));
    return { before, after };
  } finally {
    await browser.close();
  }
});
