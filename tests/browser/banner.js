// The banner as a reader meets it: a page that embeds banner.js, at the
// given viewport. Measures the notices collapsed and expanded, checks them
// with axe-core both ways, whether each address stays on one line, and
// where focus goes as each notice is dismissed.
//
// Input: { url, width, height }.
'use strict';

const { launch, axe, main } = require('./harness');

const ROOT = '#crisisd-banner';

async function measure(page) {
  return page.evaluate((root) => {
    const banner = document.querySelector(root);
    const notices = Array.from(banner.querySelectorAll('section'));
    return {
      height: banner.getBoundingClientRect().height,
      notices: notices.map((n) => ({
        height: n.getBoundingClientRect().height,
        text: n.innerText,
        expanded: n.querySelector('[aria-expanded]').getAttribute('aria-expanded'),
      })),
      // Each visible address as the number of line boxes it takes.
      addresses: Array.from(banner.querySelectorAll('a[href^="tel:"], a[href^="sms:"]'))
        .filter((a) => a.offsetParent !== null)
        .map((a) => ({ text: a.textContent, lines: a.getClientRects().length })),
      links: Array.from(banner.querySelectorAll('a')).map((a) => a.href),
    };
  }, ROOT);
}

function focused(page) {
  return page.evaluate(() => {
    const el = document.activeElement;
    if (!el || el === document.body) return 'body';
    return el.tagName.toLowerCase() + (el.getAttribute('aria-label') ? `[${el.getAttribute('aria-label')}]` : '');
  });
}

main(async ({ url, width, height }) => {
  const browser = await launch();
  try {
    const page = await browser.newPage({ viewport: { width, height } });
    await page.goto(url, { waitUntil: 'load' });
    await page.waitForSelector(`${ROOT} section`, { timeout: 10000 });
    const collapsed = await measure(page);
    const collapsedViolations = await axe(page, ROOT);

    const toggles = await page.$$(`${ROOT} [aria-expanded]`);
    for (const toggle of toggles) {
      if ((await toggle.getAttribute('aria-expanded')) === 'false') await toggle.click();
    }
    const expanded = await measure(page);
    const expandedViolations = await axe(page, ROOT);

    const focusAfterDismiss = [];
    for (;;) {
      const button = await page.$(`${ROOT} [data-crisisd-dismiss]`);
      if (!button) break;
      await button.focus();
      await page.keyboard.press('Enter');
      focusAfterDismiss.push(await focused(page));
    }
    const left = await page.$(ROOT);
    return {
      viewport: { width, height },
      collapsed,
      expanded,
      violations: { collapsed: collapsedViolations, expanded: expandedViolations },
      focusAfterDismiss,
      bannerGone: left === null,
    };
  } finally {
    await browser.close();
  }
});
