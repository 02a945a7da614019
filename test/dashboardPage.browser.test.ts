import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from './support/eventually.ts';
import {
  chromiumAvailable,
  collectPageErrors,
  launchChromium,
  saveScreenshot,
} from './support/launchChromium.ts';
import {
  FAKE_ADMIN,
  FAKE_CUSTOMER,
  startFakeDashboardBackend,
  type FakeDashboardBackend,
} from './support/startFakeDashboardBackend.ts';

// The page on its own, against a stand-in that speaks the dashboard's part of API.md (HTTP +
// graphql-ws): sign-in, live figures, the feed and reconnection. test/dashboard.browser.test.ts
// runs the same page against the whole system.
const DAY_MS = 86_400_000;
let backend: FakeDashboardBackend;
let browser: Browser;

const text = (page: Page, testId: string) => page.getByTestId(testId).innerText();
/** Money as shown (e.g. "$1,234.56" or "1.234,56 $") back to cents. */
const cents = (shown: string) => Number(shown.replace(/\D/g, ''));

async function signIn(page: Page, account: { email: string; password: string }) {
  await page.goto(`${backend.origin}/dashboard`);
  await page.getByLabel('Email').fill(account.email);
  await page.getByLabel('Password').fill(account.password);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

describe.skipIf(!chromiumAvailable())('the dashboard page', () => {
  beforeAll(async () => {
    backend = await startFakeDashboardBackend();
    // A week of history, so the chart and the top products have something to show.
    for (let day = 6; day >= 1; day--) {
      backend.recordOrder({
        status: 'CONFIRMED',
        at: new Date(Date.now() - day * DAY_MS),
        items: [
          { product: 'Mechanical Keyboard', quantity: 1 + (day % 3), unitPriceCents: 8_999 },
          { product: 'USB-C Cable', quantity: day, unitPriceCents: 999 },
        ],
      });
    }
    backend.recordOrder({
      status: 'CANCELLED',
      failureReason: 'card declined',
      items: [{ product: '27" Monitor', quantity: 1, unitPriceCents: 32_900 }],
    });
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
    await backend?.stop();
  });

  it('is served with a strict CSP and content-hashed, long-cached assets', async () => {
    const page = await fetch(`${backend.origin}/dashboard`);
    expect(page.status).toBe(200);
    const csp = page.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toContain('unsafe-inline');
    expect(csp).toContain(`ws://${new URL(backend.origin).host}`);
    expect(page.headers.get('cache-control')).toBe('no-cache');
    const html = await page.text();
    const assets = [...html.matchAll(/\/dashboard\/assets\/[\w.-]+/g)].map(([path]) => path);
    expect(assets).toHaveLength(2);
    expect(html).not.toMatch(/<script>|https?:\/\//);
    for (const path of assets) {
      const asset = await fetch(`${backend.origin}${path}`);
      expect(asset.status).toBe(200);
      expect(asset.headers.get('cache-control')).toContain('immutable');
    }
    expect((await fetch(`${backend.origin}/dashboard/assets/nothing.js`)).status).toBe(404);
  });

  it('refuses a wrong password and a customer account with a clear message', async () => {
    const page = await browser.newPage();
    await signIn(page, { email: FAKE_ADMIN.email, password: 'wrong' });
    await expect.poll(() => text(page, 'sign-in-error')).toBe('Wrong email or password.');
    await signIn(page, FAKE_CUSTOMER);
    await expect.poll(() => text(page, 'sign-in-error')).toContain('is not an administrator');
    expect(await page.getByTestId('total-orders').isVisible()).toBe(false);
    await page.close();
  });

  it('signed in, the figures and the feed follow the pushed metrics without a reload', async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const errors = collectPageErrors(page);
    await signIn(page, FAKE_ADMIN);
    await expect.poll(() => text(page, 'connection-status')).toBe('live');
    const before = backend.metrics();
    await expect.poll(() => text(page, 'total-orders')).toBe(String(before.totalOrders));
    expect(cents(await text(page, 'revenue'))).toBe(before.revenueCents);
    // Anything that reloaded the page would lose this.
    await page.evaluate('window.notReloaded = true');

    const order = backend.recordOrder({
      status: 'CONFIRMED',
      items: [{ product: 'Wireless Mouse', quantity: 2, unitPriceCents: 2_999 }],
    });
    await expect.poll(() => text(page, 'total-orders')).toBe(String(before.totalOrders + 1));
    expect(cents(await text(page, 'revenue'))).toBe(before.revenueCents + order.totalCents);
    await expect.poll(() => text(page, 'order-feed')).toContain(`Order ${order.id.slice(0, 8)}`);
    expect(await text(page, 'success-rate')).toMatch(/%/);
    expect(await text(page, 'top-products')).toContain('Mechanical Keyboard');
    expect(await page.evaluate<boolean>("'notReloaded' in window")).toBe(true);
    await saveScreenshot(page, 'dashboard-fake.png');

    // Readable on a phone: nothing wider than the screen once the chart has resized.
    await page.setViewportSize({ width: 390, height: 844 });
    await expect
      .poll(() => page.evaluate<number>('document.documentElement.scrollWidth'))
      .toBeLessThanOrEqual(390);
    await saveScreenshot(page, 'dashboard-fake-phone.png');

    await page.getByRole('button', { name: 'Sign out' }).click();
    await expect.poll(() => text(page, 'connection-status')).toBe('offline');
    expect(await page.getByLabel('Email').isVisible()).toBe(true);
    expect(errors).toEqual([]);
    await page.close();
  });

  it('when the gateway restarts, the status recovers to live and the figures catch up', async () => {
    const page = await browser.newPage();
    await signIn(page, FAKE_ADMIN);
    await expect.poll(() => text(page, 'connection-status')).toBe('live');

    await backend.stop();
    await expect.poll(() => text(page, 'connection-status')).toBe('reconnecting');
    // Missed while the socket was down: the page must fetch it once it is back.
    backend.recordOrder({
      status: 'CONFIRMED',
      items: [{ product: 'USB-C Cable', quantity: 3, unitPriceCents: 999 }],
    });
    await backend.start();
    await eventually(
      () => text(page, 'connection-status'),
      (status) => status === 'live',
    );
    await expect.poll(() => text(page, 'total-orders')).toBe(String(backend.metrics().totalOrders));

    // And the subscriptions were renewed: a new order shows up without a reload.
    backend.recordOrder({
      status: 'CONFIRMED',
      items: [{ product: 'USB-C Cable', quantity: 1, unitPriceCents: 999 }],
    });
    await expect.poll(() => text(page, 'total-orders')).toBe(String(backend.metrics().totalOrders));
    await page.close();
  });
});
