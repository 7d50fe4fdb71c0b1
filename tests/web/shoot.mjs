// Screenshots of test pages in the system chromium (no downloaded browser):
//   node shoot.mjs jobs.json   with jobs [{"url", "out", "width", "height"}]
import { readFile } from "node:fs/promises";
import { chromium } from "playwright-core";

const jobs = JSON.parse(await readFile(process.argv[2], "utf8"));
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--force-color-profile=srgb", "--hide-scrollbars"],
});
let failed = 0;
try {
  for (const job of jobs) {
    const page = await browser.newPage({ viewport: { width: job.width, height: job.height }, deviceScaleFactor: 1 });
    page.on("console", (m) => console.error(`console ${m.type()}: ${m.text()}`));
    page.on("pageerror", (e) => console.error(`pageerror: ${e.message}`));
    try {
      await page.goto(job.url);
      await page.waitForFunction("window.READY === true || window.FAILED", null, { timeout: 30000 });
      const failure = await page.evaluate("window.FAILED");
      if (failure) throw new Error(failure);
      await page.screenshot({ path: job.out });
    } catch (e) {
      failed += 1;
      console.error(`FAILED ${job.url}: ${e.message}`);
    } finally {
      await page.close();
    }
  }
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
