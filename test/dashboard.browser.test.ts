import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from './support/eventually.ts';
import { ADMIN, createProduct, logIn, signUp } from './support/fixtures.ts';
import {
  chromiumAvailable,
  collectPageErrors,
  launchChromium,
  saveScreenshot,
} from './support/launchChromium.ts';
import { startTestSystem, type TestSystem } from './support/startTestSystem.ts';

// The acceptance test of the live dashboard (issue #5): a real Chromium on the whole system,
// orders placed through the API, figures pushed over the gateway's graphql-ws subscriptions.
const PLACE_ORDER = `mutation($input: PlaceOrderInput!) { placeOrder(input: $input) { id status totalCents } }`;

let system: TestSystem;
let browser: Browser;
let page: Page;
let pageErrors: string[];
let customer: { token: string };
let product: { id: string };

const text = (testId: string) => page.getByTestId(testId).innerText();
/** A count, or money as shown ("$1,234.56") in cents; NaN for the placeholder shown before data. */
const digits = (shown: string) => (/\d/.test(shown) ? Number(shown.replace(/\D/g, '')) : NaN);
const poll = <T>(probe: () => Promise<T>, accept: (value: T) => boolean) =>
  eventually(probe, accept, { timeoutMs: 20_000, intervalMs: 100 });

async function placeConfirmedOrder(quantity: number) {
  const response = await system.graphql<{ placeOrder: { id: string; status: string; totalCents: number } }>(
    PLACE_ORDER,
    { input: { items: [{ productId: product.id, quantity }], paymentToken: 'tok_visa' } },
    customer.token,
  );
  expect(response.errors).toBeUndefined();
  expect(response.data?.placeOrder.status).toBe('CONFIRMED');
  return response.data!.placeOrder;
}

async function figures() {
  return { totalOrders: digits(await text('total-orders')), revenueCents: digits(await text('revenue')) };
}

describe.skipIf(!chromiumAvailable())('the live dashboard', () => {
  beforeAll(async () => {
    system = await startTestSystem();
    const adminToken = await logIn(system, ADMIN.email, ADMIN.password);
    product = await createProduct(system, adminToken, {
      name: 'Dashboard Lamp',
      priceCents: 4_250,
      stock: 100,
    });
    customer = await signUp(system, 'Grace');
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    pageErrors = collectPageErrors(page);
  });
  afterAll(async () => {
    await browser?.close();
    await system?.stop();
  });

  it('signed in as the admin, total orders and revenue follow new orders without a reload', async () => {
    await page.goto(new URL('/dashboard', system.gatewayUrl).href);
    await page.getByLabel('Email').fill(ADMIN.email);
    await page.getByLabel('Password').fill(ADMIN.password);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await poll(
      () => text('connection-status'),
      (status) => status === 'live',
    );
    // The figures are shown (a number, not the placeholder) before anything is ordered.
    const before = await poll(figures, (f) => !Number.isNaN(f.totalOrders) && !Number.isNaN(f.revenueCents));
    // Anything that reloaded the page would lose this.
    await page.evaluate('window.notReloaded = true');

    const order = await placeConfirmedOrder(2);
    const after = await poll(
      figures,
      (f) => f.totalOrders > before.totalOrders && f.revenueCents >= before.revenueCents + order.totalCents,
    );
    expect(after.totalOrders).toBe(before.totalOrders + 1);
    expect(await page.evaluate<boolean>("'notReloaded' in window")).toBe(true);
    expect(await text('connection-status')).toBe('live');
    await poll(
      () => text('order-feed'),
      (feed) => feed.includes(`Order ${order.id.slice(0, 8)}`),
    );
    expect(await text('top-products')).toContain('Dashboard Lamp');
    await saveScreenshot(page, 'dashboard.png');
    expect(pageErrors).toEqual([]);
  }, 90_000);

  it('when the gateway restarts, the connection comes back live and updates resume', async () => {
    // Every status the page shows, so a short "reconnecting" is not missed between two polls.
    await page.evaluate(`
      window.statuses = [];
      const status = document.querySelector('[data-testid="connection-status"]');
      new MutationObserver(() => window.statuses.push(status.textContent)).observe(status, {
        childList: true, characterData: true, subtree: true,
      });
    `);
    await system.restartGateway();
    await poll(
      () => page.evaluate<string[]>('window.statuses'),
      (statuses) => statuses.includes('reconnecting') && statuses.at(-1) === 'live',
    );

    const before = await figures();
    const order = await placeConfirmedOrder(1);
    await poll(
      figures,
      (f) => f.totalOrders > before.totalOrders && f.revenueCents >= before.revenueCents + order.totalCents,
    );
    expect(await text('connection-status')).toBe('live');
    await saveScreenshot(page, 'dashboard-after-restart.png');
  }, 90_000);
});
