// The operators' dashboard in headless Chromium against a running `yiwang-sim demo`:
//   node dashboard.mjs DASHBOARD_URL SCREENSHOT_DIR
// It loads the page (the token in the URL's fragment), waits for every site to be up, cuts a
// county off from the dashboard and waits for the partition to show on the map, heals it and
// waits for the mesh to be whole again, adds a list entry through the page, and saves a
// screenshot at each stage. Nothing outside the dashboard's origin may be fetched (it works
// offline), and the page must log no error. Exits 1 with the reason on any failure.
import { chromium } from 'playwright-core';

const [url, outDir] = process.argv.slice(2);
if (!url || !outDir) {
  console.error('usage: node dashboard.mjs DASHBOARD_URL SCREENSHOT_DIR');
  process.exit(2);
}
const COUNTY = process.env.YIWANG_CUT_SITE || 'county-1';
const WAIT = { timeout: 90_000, polling: 250 };

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu'],
});
const problems = [];
try {
  const page = await browser.newPage({ viewport: { width: 1500, height: 1100 } });
  page.on('pageerror', (e) => problems.push('page error: ' + e.message));
  page.on('console', (m) => { if (m.type() === 'error') problems.push('console: ' + m.text()); });
  const origin = new URL(url).origin;
  await page.route('**/*', (route) => {
    const target = route.request().url();
    if (!target.startsWith(origin)) {
      problems.push('fetched from outside: ' + target);
      return route.abort();
    }
    return route.continue();
  });

  const states = () => page.$$eval('#map circle.site', (cs) => cs.map((c) => [c.dataset.id, c.dataset.state]));
  const step = (what) => console.log(`[dashboard] ${what}`);

  await page.goto(url);
  await page.waitForFunction(() => {
    const sites = [...document.querySelectorAll('#map circle.site')];
    return sites.length > 3 && sites.every((c) => c.dataset.state === 'up' || c.dataset.state === 'self');
  }, null, WAIT);
  const sites = await states();
  step(`${sites.length} sites up`);
  if (!(await page.$(`#map circle.site[data-id="${COUNTY}"]`))) throw new Error(`no ${COUNTY} on the map`);
  const links = await page.$$eval('#map line.link', (ls) => ls.length);
  if (links < sites.length - 1) throw new Error(`${links} links drawn for ${sites.length} sites`);
  await page.waitForFunction(() => document.querySelectorAll('#fences tbody tr').length > 0
    && document.querySelectorAll('#fence-map path.boundary').length > 0
    && document.querySelectorAll('#fence-map circle.vessel').length > 0, null, WAIT);
  step('fence alerts drawn against the boundary');
  await page.screenshot({ path: `${outDir}/dashboard-healthy.png`, fullPage: true });

  // The partition: cut the county off from the page, and watch it show.
  await page.click(`#map circle.site[data-id="${COUNTY}"]`);
  await page.click('#site-detail button[data-action="isolate"]');
  await page.waitForFunction(() => /cut off/.test(document.getElementById('fault-result').textContent), null, WAIT);
  await page.waitForFunction((county) => {
    const c = document.querySelector(`#map circle.site[data-id="${county}"]`);
    const link = document.querySelector(`#map line.link[data-from="${county}"]`);
    const row = document.querySelector(`#nodes tr[data-id="${county}"]`);
    return c && ['stale', 'partitioned'].includes(c.dataset.state)
      && link && ['stale', 'partitioned'].includes(link.dataset.state)
      && row && row.classList.contains('bad');
  }, COUNTY, WAIT);
  step(`${COUNTY} shows as cut off`);
  await page.screenshot({ path: `${outDir}/dashboard-partition.png`, fullPage: true });

  // The heal.
  await page.click('#site-detail button[data-action="heal"]');
  await page.waitForFunction(() => /links are back/.test(document.getElementById('fault-result').textContent), null, WAIT);
  await page.waitForFunction(() => [...document.querySelectorAll('#map circle.site')]
    .every((c) => c.dataset.state === 'up' || c.dataset.state === 'self'), null, WAIT);
  step('the mesh is whole again');

  // A list entry added through the page shows in the lists and their history.
  const subject = 'mmsi:412999001';
  await page.fill('#add-entry input[name=subject]', subject);
  await page.fill('#add-entry input[name=name]', 'Browser Test 1');
  await page.fill('#add-entry input[name=authority]', 'Municipal Ocean and Fisheries Bureau');
  await page.fill('#add-entry input[name=legal_basis]', 'Fisheries Law art. 38');
  await page.fill('#add-entry input[name=effective]', '2026-01-01');
  await page.fill('#add-entry input[name=expires]', '2027-01-01');
  await page.fill('#add-entry input[name=why]', 'dashboard browser test');
  await page.click('#add-entry button[type=submit]');
  await page.waitForFunction((s) => [...document.querySelectorAll('#lists tbody td')].some((td) => td.textContent === s)
    && [...document.querySelectorAll('#history tbody td')].some((td) => td.textContent === 'dashboard browser test'), subject, WAIT);
  step('a list entry added from the page is in the lists and their history');
  await page.screenshot({ path: `${outDir}/dashboard-healed.png`, fullPage: true });
} catch (e) {
  problems.push(e.message);
} finally {
  await browser.close();
}
if (problems.length) {
  console.error('[dashboard] FAILED:\n  ' + problems.join('\n  '));
  process.exit(1);
}
console.log('[dashboard] passed');
