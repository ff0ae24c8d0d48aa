// The web console as comms staff use it: one browser session follows the
// steps it is given (sign in, fill forms, click, press keys) and reports
// what it saw, so the Rust test can set the scene (a daemon, a loopback
// SMTP server, a webhook) and judge the outcome.
//
// Input: { base, shots, locale?, steps: [step, ...] } (locale: the
// browser's language, sent as Accept-Language), where a step is one of
//   { goto: PATH }                      load a page and wait for it
//   { reload: true }                    load the page anew
//   { fill: SELECTOR, value: TEXT }     type into a field
//   { select: SELECTOR, value: V }     pick an option of a <select>
//   { check: SELECTOR, on: BOOL }       tick (or untick) a checkbox or radio
//   { click: SELECTOR }                 click, and wait for the page it opens
//   { keyboard: SELECTOR, enter: BOOL } Tab from the top of the page until
//                                       SELECTOR has the focus (at most 80
//                                       presses), then press Enter if asked
//   { audit: NAME }                     axe-core, document width and a
//                                       screenshot at 1280 and at 390 px wide
//   { read: SELECTOR, as: NAME }        the element's text (null if absent)
//   { style: SELECTOR, property: P, as: NAME }
//                                       the element's computed style P
//                                       (null if absent)
//   { frame: SELECTOR, as: NAME }      the text an <iframe> shows, and how
//                                       tall its content is
//   { until: SELECTOR, as: NAME, timeout_ms }
//                                       wait for SELECTOR without reloading;
//                                       reports whether the page was reloaded
//                                       and what `read` had seen before
//   { paint: PATH, loads: N, as: NAME } first paint over N fresh loads
// Output: { url, seen: { NAME: ... } }, the page's final URL included.
'use strict';

const path = require('path');
const { launch, axe, main } = require('./harness');

const WIDTHS = [
  [1280, 900],
  [390, 844],
];

async function audit(page, shots, name) {
  const views = [];
  for (const [width, height] of WIDTHS) {
    await page.setViewportSize({ width, height });
    const shot = path.join(shots, `${name}-${width}.png`);
    await page.screenshot({ path: shot, fullPage: true });
    views.push({
      width,
      status: await page.evaluate(() => document.readyState),
      lang: await page.evaluate(() => document.documentElement.lang),
      scrollWidth: await page.evaluate(() => document.documentElement.scrollWidth),
      violations: await axe(page, 'html'),
      screenshot: shot,
    });
  }
  await page.setViewportSize({ width: WIDTHS[0][0], height: WIDTHS[0][1] });
  return views;
}

// Tab from the start of the document until `selector` holds the focus.
async function keyboard(page, selector, enter) {
  await page.evaluate(() => {
    if (document.activeElement) document.activeElement.blur();
    window.scrollTo(0, 0);
  });
  for (let presses = 1; presses <= 80; presses += 1) {
    await page.keyboard.press('Tab');
    const there = await page.evaluate(
      (selector) => document.activeElement && document.activeElement.matches(selector),
      selector,
    );
    if (there) {
      if (enter) {
        await Promise.all([
          page.waitForNavigation({ waitUntil: 'load' }),
          page.keyboard.press('Enter'),
        ]);
      }
      return { presses };
    }
  }
  throw new Error(`${selector} was not reached with 80 presses of Tab on ${page.url()}`);
}

async function read(page, selector) {
  const el = await page.$(selector);
  return el ? (await el.textContent()).trim().replace(/\s+/g, ' ') : null;
}

async function style(page, selector, property) {
  return page.evaluate(
    ([selector, property]) => {
      const el = document.querySelector(selector);
      return el ? getComputedStyle(el).getPropertyValue(property) : null;
    },
    [selector, property],
  );
}

async function frame(page, selector) {
  const el = await page.waitForSelector(selector);
  const inner = await el.contentFrame();
  if (!inner) return null;
  await inner.waitForLoadState('load');
  return inner.evaluate(() => ({
    text: document.body ? document.body.innerText.trim() : '',
    height: document.documentElement.scrollHeight,
  }));
}

// Waits for `selector` while watching that the page is never loaded anew:
// a marker set on the window now must still be there when it appears.
async function until(page, step) {
  const before = await read(page, step.read || step.until);
  await page.evaluate(() => {
    window.__notReloaded = true;
  });
  const started = Date.now();
  await page.waitForSelector(step.until, { timeout: step.timeout_ms || 20000 });
  return {
    before,
    waited_ms: Date.now() - started,
    reloaded: !(await page.evaluate(() => window.__notReloaded === true)),
    text: await read(page, step.read || step.until),
  };
}

// First paint (and first contentful paint) of PATH, loaded N times in the
// signed-in session, with the navigation's own timings.
async function paint(page, base, step) {
  const loads = [];
  for (let i = 0; i < (step.loads || 5); i += 1) {
    await page.goto(base + step.paint, { waitUntil: 'load' });
    // Paint entries are recorded once the frame is painted, which may
    // come after the load event: wait for two frames.
    await page.evaluate(
      () => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done))),
    );
    loads.push(
      await page.evaluate(() => {
        const nav = performance.getEntriesByType('navigation')[0];
        const paints = Object.fromEntries(
          performance.getEntriesByType('paint').map((p) => [p.name, p.startTime]),
        );
        return {
          first_paint: paints['first-paint'] ?? null,
          first_contentful_paint: paints['first-contentful-paint'] ?? null,
          response_end: nav.responseEnd,
          dom_content_loaded: nav.domContentLoadedEventEnd,
        };
      }),
    );
  }
  const median = (key) => {
    const xs = loads.map((l) => l[key]).filter((x) => x !== null).sort((a, b) => a - b);
    return xs.length ? xs[Math.floor(xs.length / 2)] : null;
  };
  return {
    loads,
    median_first_paint: median('first_paint'),
    median_first_contentful_paint: median('first_contentful_paint'),
    median_response_end: median('response_end'),
  };
}

async function run(page, input, step, seen) {
  if (step.goto !== undefined) {
    const response = await page.goto(input.base + step.goto, { waitUntil: 'load' });
    if (step.as) seen[step.as] = response.status();
  } else if (step.reload) {
    await page.reload({ waitUntil: 'load' });
  } else if (step.fill !== undefined) {
    await page.fill(step.fill, step.value);
  } else if (step.select !== undefined) {
    await page.selectOption(step.select, step.value);
  } else if (step.check !== undefined) {
    await page.setChecked(step.check, step.on !== false);
  } else if (step.click !== undefined) {
    await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), page.click(step.click)]);
  } else if (step.keyboard !== undefined) {
    seen[step.as || step.keyboard] = await keyboard(page, step.keyboard, step.enter);
  } else if (step.audit !== undefined) {
    seen[step.audit] = await audit(page, input.shots, step.audit);
  } else if (step.read !== undefined && step.until === undefined) {
    seen[step.as] = await read(page, step.read);
  } else if (step.style !== undefined) {
    seen[step.as] = await style(page, step.style, step.property);
  } else if (step.frame !== undefined) {
    seen[step.as] = await frame(page, step.frame);
  } else if (step.until !== undefined) {
    seen[step.as] = await until(page, step);
  } else if (step.paint !== undefined) {
    seen[step.as] = await paint(page, input.base, step);
  } else {
    throw new Error(`unknown step ${JSON.stringify(step)}`);
  }
  if (step.as && step.url) seen[`${step.as}_url`] = page.url();
}

main(async (input) => {
  const browser = await launch();
  try {
    // The console's Content-Security-Policy forbids inline scripts, which
    // is how axe-core is put on the page: the test lifts it for itself.
    const context = await browser.newContext({
      viewport: { width: WIDTHS[0][0], height: WIDTHS[0][1] },
      bypassCSP: true,
      ...(input.locale ? { locale: input.locale } : {}),
    });
    const page = await context.newPage();
    const seen = {};
    for (const step of input.steps) {
      try {
        await run(page, input, step, seen);
      } catch (err) {
        const shot = path.join(input.shots, 'failed.png');
        await page.screenshot({ path: shot, fullPage: true }).catch(() => {});
        throw new Error(`step ${JSON.stringify(step)} on ${page.url()} (see ${shot}): ${err.message}`);
      }
    }
    return { url: page.url(), seen };
  } finally {
    await browser.close();
  }
});
